"""Three-way verdicts on two models' paired runs: better, equivalent or undecided.

A pair's runs share everything but the architecture (run ``i`` of each model used seed ``i``
on the same images), so the evidence is the per-seed difference ``d = A - B`` of a metric.
Its interval covers two sources of variance, because the verdict is read as a statement
about the user's images, not about these particular test images:

- training randomness: the spread of ``d`` over seeds, ``s^2 / n``;
- test-set sampling: the variance of the seed-averaged difference when the test images are
  resampled, ``v`` -- exact for accuracy (``var(delta_i) / N`` of the per-image differences
  ``delta_i``), scipy's bootstrap for a metric that is not a mean over images (macro-F1).

The two add once the per-(seed, image) noise both contain is counted once (a crossed two-way
decomposition, :func:`accuracy_image_variance`); the interval is Student's t at Welch-Satterthwaite
degrees of freedom, the seed term taken at its upper 85 % bound (SEED_VARIANCE_UPPER: why).

When each seed also re-drew the split (``study.vary_split``), the spread of ``d`` over seeds holds
all three -- training randomness, which images were tested and which were trained on -- but the
runs' training sets overlap, so they are not independent: Nadeau and Bengio's corrected resampled
t-test (Machine Learning 52, 2003) widens ``s^2 / n`` to ``s^2 (1/n + n_test/n_train)``, the
``overlap`` argument, at ``n - 1`` degrees of freedom. On either interval:

- **better** -- the two-sided test of ``d = 0`` rejects (Holm over every comparison of the family);
- **equivalent** -- TOST, two one-sided tests of ``|d| >= margin``, rejects (Holm likewise); a
  difference that is significant but inside the margin reads as equivalent;
- **undecided** -- neither, with the runs per model that would decide it at the observed mean and
  spread (power 0.8), or the statement that more runs cannot: the test-image term does not shrink
  with seeds.

The false-"better" rate, the "equivalent" rate, interval coverage and power of exactly this
procedure are measured on synthetic studies of known truth by benchmarks/verdict_simulation.py.
For a sequential study (``make decide``, stages/decide.py) ``alpha`` is split over the planned
looks (Bonferroni over a group-sequential schedule), which keeps the error rates although the
runs are looked at after every addition.

Hand-written: statsmodels' power classes and TOST cover one variance source (runs) only; the
decision rule and the runs-needed search over the combined variance are a few lines on scipy.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from stages.analysis.over_runs import holm_keeping_none

POWER = 0.8  # the chance of a decision that "runs needed" promises
MAX_RUNS = 100  # beyond this many runs per model, "runs needed" says "more than 100"
BOOTSTRAP_RESAMPLES = 2000
VERDICTS = ("better", "equivalent", "undecided")
# Differences within this (relative) tolerance count as zero: the same metric computed two ways
# differs by float rounding, which would otherwise read as a tiny, perfectly steady difference.
_TOL = 1e-12


def _vector(values: Sequence[float], name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers, got {values!r}")
    return x


# ---- the test-image variance ---------------------------------------------------------------------

def accuracy_image_variance(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Test-sampling variance of the seed-averaged accuracy difference, the images' share only.

    ``correct_*``: [seeds, N] booleans (or 0/1), run ``j`` of each model in row ``j``. The
    per-(seed, image) differences form a crossed seeds x images table; its two-way ANOVA gives the
    variance of the grand mean as (MS_seeds + MS_images - MS_residual) / (nN). The seed term,
    MS_seeds / (nN), is ``s^2 / n`` of :func:`paired_difference`; this returns the rest,
    ``var(delta_i) / N - MS_residual / (nN)`` (at least 0): ``var(delta_i) / N`` alone, what a
    bootstrap over images gives, counts the residual a second time (measured: 97-98 % coverage of
    nominal 95 % intervals at 180 test images, benchmarks/verdict_simulation.py). One run: no residual
    is separable from the images, ``var(delta_i) / N``.
    """
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"correct_a and correct_b need the same [seeds, images >= 2] shape: {a.shape}, {b.shape}")
    table = a - b
    n, size = table.shape
    delta = table.mean(axis=0)
    if n < 2:
        return float(np.var(delta, ddof=1) / size)
    residual = table - table.mean(axis=1, keepdims=True) - delta + table.mean()
    ms_residual = float((residual ** 2).sum()) / ((n - 1) * (size - 1))
    return max(0.0, float(np.var(delta, ddof=1) / size - ms_residual / (n * size)))


def macro_f1_rows(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, idx: np.ndarray) -> np.ndarray:
    """Macro-F1 of predictions ``y_pred`` [N] restricted to resampled image indices ``idx`` [..., N].

    Vectorised over the resamples (scipy's bootstrap hands them all at once); classes absent from a
    resample's labels and predictions are left out of the mean, as scikit-learn's F1 with
    zero_division=0 over the present labels would.
    """
    t, p = y_true[idx], y_pred[idx]  # [..., N]
    f1 = []
    present = []
    for c in range(num_classes):
        tp = np.sum((t == c) & (p == c), axis=-1)
        fp = np.sum((t != c) & (p == c), axis=-1)
        fn = np.sum((t == c) & (p != c), axis=-1)
        denom = 2 * tp + fp + fn
        f1.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
        present.append(denom > 0)
    f1, present = np.stack(f1, axis=-1), np.stack(present, axis=-1)
    return f1.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def bootstrap_image_variance(metric: Callable[[np.ndarray, np.ndarray], np.ndarray], preds_a: np.ndarray,
                             preds_b: np.ndarray, n_images: int, seed: int = 0) -> float:
    """Test-sampling variance of the seed-averaged difference of any per-test-set ``metric``.

    ``metric(preds, idx)`` scores one run's predictions on resampled image indices ``idx``
    [..., N]; ``preds_*``: one entry per seed. scipy's bootstrap resamples the image indices;
    its standard error, squared, is the variance.
    """
    def difference(idx, axis=-1):
        idx = np.moveaxis(np.asarray(idx, dtype=int), axis, -1)
        return np.mean([metric(pa, idx) - metric(pb, idx) for pa, pb in zip(preds_a, preds_b)], axis=0)

    result = stats.bootstrap((np.arange(n_images),), difference, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.standard_error) ** 2


# ---- one pair ------------------------------------------------------------------------------------

# The seed variance's upper confidence level used for the degrees of freedom (not the error).
# Plain Welch-Satterthwaite trusts a seed variance estimated from 2-4 degrees of freedom: when the
# few seeds happen to agree, the error is too small *and* the df jumps toward the images' N - 1
# (false "better" 0.118 at 1,000 test images and 3 runs, family of 3 pairs, alpha 0.05). df = n - 1
# is safe but throws the images' precision away (coverage 0.99+, power at 5 points 0.06 at n = 3).
# The df from the seed variance's upper 85 % bound was chosen by simulation among 95, 90, 85 and
# 80 % (2,000 studies each, 180/1,000 images x 3/5/10 runs): 80 % let a false "better" reach 0.052
# (1,000 images, 3 runs); 90 % kept it <= 0.037 but over-covered (0.977 at 180 images, 3 runs: wider
# than it needs, less power); 85 % keeps it at 0.028-0.044 with coverage 0.949-0.969
# (benchmarks/verdict_simulation.py; its CSV holds the shipped figures).
SEED_VARIANCE_UPPER = 0.85


def _se_df(seed_var: float, n: int, image_var: float, n_images: int | None,
           overlap: float = 0.0) -> tuple[float, float]:
    """Standard error of the mean difference and its degrees of freedom (Welch-Satterthwaite, the
    seed term at its upper SEED_VARIANCE_UPPER confidence bound). ``overlap``: Nadeau-Bengio's
    n_test / n_train for runs that each re-drew the split (0: one fixed split)."""
    seed_part = seed_var * (1 / n + overlap)
    se2 = seed_part + image_var
    if se2 <= 0:
        return 0.0, float("inf")
    seed_up = seed_part * (n - 1) / stats.chi2.ppf(1 - SEED_VARIANCE_UPPER, n - 1) if seed_part > 0 else 0.0
    pieces = seed_up ** 2 / (n - 1)
    if image_var > 0:
        pieces += image_var ** 2 / max((n_images or 2) - 1, 1)
    return float(np.sqrt(se2)), ((seed_up + image_var) ** 2 / pieces if pieces > 0 else float("inf"))


def _p_values(diff: float, se: float, df: float, margin: float) -> tuple[float, float]:
    """Two-sided p of d = 0, and TOST p of |d| >= margin (the larger of the two one-sided p's)."""
    if se == 0:
        return (1.0 if diff == 0 else 0.0), (0.0 if abs(diff) < margin else 1.0)
    p_diff = float(2 * stats.t.sf(abs(diff) / se, df))
    p_low = stats.t.sf((diff + margin) / se, df)   # H0: d <= -margin
    p_high = stats.t.cdf((diff - margin) / se, df)  # H0: d >= +margin
    return p_diff, float(max(p_low, p_high))


def paired_difference(a: Sequence[float], b: Sequence[float], *, margin: float, image_var: float = 0.0,
                      n_images: int | None = None, confidence: float = 0.95, overlap: float = 0.0) -> dict:
    """The evidence on one pair: n, mean of a - b, its interval (seed + image variance), raw p-values.

    ``overlap`` > 0: run ``i`` of both models used split ``i``, re-drawn per seed; the seed spread
    already holds the test images' sampling (``image_var`` must be 0) and is widened by Nadeau-Bengio's
    ``overlap`` = n_test / n_train. Fewer than 2 runs leave training randomness unmeasured: no
    interval and no p-values (untestable).
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b need one value per seed each: {x.size} vs {y.size}")
    if margin < 0 or image_var < 0 or overlap < 0:
        raise ValueError(f"margin, image_var and overlap must be >= 0, got {margin}, {image_var}, {overlap}")
    if overlap > 0 and image_var > 0:
        raise ValueError("with re-drawn splits (overlap > 0) the seed spread holds the test images' sampling: "
                         "image_var must be 0")
    d = x - y
    tol = _TOL * max(1.0, float(np.max(np.abs(np.concatenate([x, y])))))
    d = np.where(np.abs(d) <= tol, 0.0, d)
    n, diff = int(d.size), float(np.mean(d))
    out = {"n": n, "diff_mean": diff, "seed_sd": None, "image_se": float(np.sqrt(image_var)), "se": None,
           "df": None, "ci_low": None, "ci_high": None, "p_diff": None, "p_equiv": None, "margin": margin,
           "overlap": overlap}
    if n < 2:
        return out
    seed_var = 0.0 if float(np.ptp(d)) <= tol else float(np.var(d, ddof=1))
    se, df = _se_df(seed_var, n, image_var, n_images, overlap)
    half = 0.0 if se == 0 else float(stats.t.ppf(0.5 + confidence / 2, df) * se)
    p_diff, p_equiv = _p_values(diff, se, df, margin)
    out.update(seed_sd=float(np.sqrt(seed_var)), se=se, df=df, ci_low=diff - half, ci_high=diff + half,
               p_diff=p_diff, p_equiv=p_equiv)
    return out


def decision_power(diff: float, seed_sd: float, n: int, image_var: float, n_images: int | None,
                   margin: float, alpha: float, overlap: float = 0.0) -> tuple[float, float]:
    """Power of the "better" test and of TOST at ``n`` runs per model, if the truth is ``diff``.

    Student's t with the Satterthwaite df of ``n`` runs; the two-sided test's far tail and TOST's
    overlap are included (for a single variance source this is statsmodels' TTestPower; test).
    """
    se, df = _se_df(seed_sd ** 2, n, image_var, n_images, overlap)
    if se == 0:
        return float(diff != 0), float(abs(diff) < margin)
    crit = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(diff) / se
    # sf(crit, df, -shift), not cdf(-crit, df, shift): the same number, but scipy's nct.cdf is nan far
    # in the lower tail (df 49, shift 14.1), which made runs_needed skip counts that already decide.
    better = float(stats.nct.sf(crit, df, shift) + stats.nct.sf(crit, df, -shift))
    crit1 = stats.t.ppf(1 - alpha, df)
    # TOST rejects when (d + m)/se > crit1 and (d - m)/se < -crit1.
    upper, lower = (margin - diff) / se, (margin + diff) / se
    equiv = float(max(0.0, stats.nct.sf(crit1, df, upper) + stats.nct.sf(crit1, df, lower) - 1.0))
    return better, equiv


def runs_needed(diff: float, seed_sd: float, image_var: float, n_images: int | None, margin: float,
                alpha: float, start: int, overlap: float = 0.0) -> int | None:
    """The fewest runs per model (from ``start``) at which a decision has POWER, or None up to MAX_RUNS.

    The decision is the likelier one at the observed mean: "better" when |diff| >= margin / 2,
    else "equivalent". None also when the test images alone keep it undecided (or, with re-drawn
    splits, the overlap term, which does not shrink with runs either).
    """
    want_better = abs(diff) >= margin / 2
    for n in range(max(start, 2), MAX_RUNS + 1):
        better, equiv = decision_power(diff, seed_sd, n, image_var, n_images, margin, alpha, overlap)
        if (better if want_better else equiv) >= POWER:
            return n
    return None


# ---- a family of pairs ---------------------------------------------------------------------------

def decide(points: list[dict], alpha: float, looks: int = 1) -> list[dict]:
    """Holm over the family (each test kind apart), then each point's verdict; updates ``points``.

    ``points``: :func:`paired_difference` results with ``a`` and ``b`` (the model names) added.
    ``looks``: the planned looks of a sequential study; each uses ``alpha / looks`` (Bonferroni).
    Adds p_diff_holm, p_equiv_holm, verdict, better (the winner or None), equivalent (bool),
    alpha_used and runs_needed (undecided only; None = more than MAX_RUNS or not by runs).
    """
    level = alpha / looks
    for kind in ("p_diff", "p_equiv"):
        for point, p in zip(points, holm_keeping_none([pt[kind] for pt in points])):
            point[f"{kind}_holm"] = p
    testable = sum(pt["p_diff"] is not None for pt in points)
    for pt in points:
        # Bonferroni's level for one of the family (what Holm asks of its first rejection): the
        # level the runs-needed search plans for.
        pt.update(alpha_used=level, alpha_power=level / max(testable, 1), better=None, equivalent=False,
                  runs_needed=None)
        if pt["p_equiv_holm"] is not None and pt["p_equiv_holm"] < level:
            pt.update(verdict="equivalent", equivalent=True)
        elif pt["p_diff_holm"] is not None and pt["p_diff_holm"] < level:
            pt.update(verdict="better", better=pt["a"] if pt["diff_mean"] > 0 else pt["b"])
        else:
            pt["verdict"] = "undecided"
            if pt["seed_sd"] is not None:
                pt["runs_needed"] = runs_needed(pt["diff_mean"], pt["seed_sd"], pt["image_se"] ** 2,
                                                pt.get("n_images"), pt["margin"], pt["alpha_power"], pt["n"] + 1,
                                                pt.get("overlap", 0.0))
    return points


def compare_pairs(values: dict[str, list[float]], *, margin: float, alpha: float = 0.05, looks: int = 1,
                  image_var: Callable[[str, str], float] | None = None, n_images: int | None = None,
                  confidence: float = 0.95, overlap: float = 0.0) -> dict[str, dict]:
    """Every pair of models (insertion order), keyed ``"<a>_vs_<b>"``, decided as one family.

    ``values[model]``: one metric value per seed (same seed order for every model);
    ``image_var(a, b)``: the pair's test-sampling variance (None: zero, training randomness only);
    ``overlap``: n_test / n_train when every seed re-drew the split (Nadeau-Bengio), else 0.
    """
    keyed = {}
    for a, b in combinations(list(values), 2):
        point = paired_difference(values[a], values[b], margin=margin, confidence=confidence,
                                  image_var=image_var(a, b) if image_var else 0.0, n_images=n_images,
                                  overlap=overlap)
        keyed[f"{a}_vs_{b}"] = {"a": a, "b": b, "n_images": n_images, **point}
    decide(list(keyed.values()), alpha, looks)
    return keyed


# ---- words ---------------------------------------------------------------------------------------

def _num(x: float) -> str:
    return f"{x:.2g}" if abs(x) >= 0.001 or x == 0 else f"{x:.1e}"


def sentence(pair: dict, metric_label: str, confidence: float = 0.95) -> str:
    """One plain sentence on a decided pair (``decide`` output)."""
    a, b, n, diff = pair["a"], pair["b"], pair["n"], pair["diff_mean"]
    runs = f"{n} run" if n == 1 else f"{n} runs"
    if pair["p_diff"] is None:
        return (f"{a} vs {b} on {metric_label}: undecided, only {runs} per model ({a} - {b} = {diff:+.3f}); "
                f"at least 2 runs each measure training randomness")
    level = f"{100 * confidence:g}% CI"
    if pair["verdict"] == "better":
        sign = 1 if diff > 0 else -1
        winner, loser = (a, b) if sign > 0 else (b, a)
        low, high = sorted((sign * pair["ci_low"], sign * pair["ci_high"]))
        return (f"{winner} better than {loser} on {metric_label} by {sign * diff:+.3f} ({level} {low:+.3f} to "
                f"{high:+.3f}; {runs} per model, Holm p = {_num(pair['p_diff_holm'])})")
    if pair["verdict"] == "equivalent":
        return (f"{a} and {b} equivalent on {metric_label} within ±{pair['margin']:g}: {a} - {b} = {diff:+.3f} "
                f"({level} {pair['ci_low']:+.3f} to {pair['ci_high']:+.3f}; {runs} per model, "
                f"TOST Holm p = {_num(pair['p_equiv_holm'])})")
    return (f"{a} vs {b} on {metric_label}: undecided, {a} - {b} = {diff:+.3f} ({level} {pair['ci_low']:+.3f} "
            f"to {pair['ci_high']:+.3f}; {runs} per model); {runs_advice(pair)}")


def short(pair: dict) -> str:
    """A decided pair in a few words: 'vit better', 'equivalent within 0.02', 'undecided (~12 runs)'."""
    if pair["verdict"] == "better":
        return f"{pair['better']} better"
    if pair["verdict"] == "equivalent":
        return f"equivalent within {pair['margin']:g}"
    return "undecided" + (f" (~{pair['runs_needed']} runs)" if pair.get("runs_needed") else "")


def runs_advice(pair: dict) -> str:
    """What would decide an undecided pair: about how many runs per model, or why runs will not."""
    needed = pair.get("runs_needed")
    if needed is not None:
        return f"about {needed} runs per model would likely decide it"
    images = f"{pair['n_images']} test images" if pair.get("n_images") else "test images"
    overlap = pair.get("overlap", 0.0)
    if overlap > 0 and pair["seed_sd"] is not None and runs_needed(
            pair["diff_mean"], pair["seed_sd"], 0.0, None, pair["margin"], pair["alpha_power"], pair["n"] + 1) is not None:
        return (f"more runs alone will not decide it: re-drawn splits share most of their images, so the spread over "
                f"splits ({pair['seed_sd']:.3f}) keeps a floor of {overlap:.2f} x its variance however many runs "
                f"(Nadeau-Bengio, n_test/n_train = {overlap:.2f}); more images would")
    if pair["seed_sd"] is not None and runs_needed(pair["diff_mean"], pair["seed_sd"], 0.0, None, pair["margin"],
                                                   pair["alpha_power"], pair["n"] + 1) is not None:
        return (f"more runs alone will not decide it: the {images} carry a sampling error (SE "
                f"{pair['image_se']:.3f}) too large for the margin ±{pair['margin']:g}; a larger test set would")
    images_part = (f" and the {images} add a sampling error of {pair['image_se']:.3f}"
                   if pair["image_se"] >= 0.0005 else "")  # below that it prints as 0.000: none worth naming
    return (f"even {MAX_RUNS} runs per model would likely not decide it: the runs spread by {pair['seed_sd']:.3f} "
            f"(sd over seeds){images_part}, against a margin of ±{pair['margin']:g}")
