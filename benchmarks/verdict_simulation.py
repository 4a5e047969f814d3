"""Benchmark of known truth: error rates, coverage and power of the two ways to compare runs.

Thousands of synthetic studies, each decided by the shipped method (stages/analysis/verdicts.py:
seed + test-image variance, better / equivalent / undecided) and by today's (over_runs.compare_models:
paired t over seeds, Holm, "no significant difference" otherwise).

Model of one study. A population of test images has latent difficulty ``z_i ~ N(0, 1)``; a study
draws N of them (180: the default pipeline's test set; also 1000). Model M trained with seed j gets
image i right with probability ``sigmoid(mu_M + beta z_i + v_Mi + u_Mj)``, Bernoulli:

- ``u_Mj ~ N(0, sigma_seed)``: training randomness, shared by all images of one run;
- ``v_Mi ~ N(0, sigma_int)``: model x image interaction -- two architectures get different images
  right, so the difference of two models depends on which test images were drawn; without it the
  test-set sampling would cancel out of a paired difference and only seeds would matter;
- the Bernoulli draw: a retrained model flips some images (seed churn).

Defaults (:class:`World`): mu = 4.5, beta = 5, sigma_int = 1.5, sigma_seed = 0.3, for the targets
accuracy 0.7-0.85, seed sd of accuracy ~0.02 and 10-20 % of images on which two models disagree; they
give 0.79, 0.023 at N = 180 (0.017 at N = 1000) and 14 % (printed on every run). beta is large so
that most images are easy or hopeless and a rerun flips only ~10 % of them (seed churn).

The truth is the population difference ``Delta = E[P_A] - E[P_B]`` over z, v and u, evaluated once on
2 million Monte-Carlo draws common to every mu (so it is smooth in mu; within 1e-4 of quadrature);
mu_B is found by brentq so that Delta is exactly the planted 0, 0.01, 0.02 or 0.05. At Delta = 0 a
study has three equal models (three pairs, one Holm family: a study is a false "better" if any pair
reads better); the pair A-B is also decided alone, as the default two-model pipeline would, for the
pair measures. At Delta > 0 a study has two models. Runs n = 3, 5, 10 are the first n seeds of the
same studies (as when seeds are added). The sequential rows add seeds (looks at n = 3, 5, 7, 9) and
stop once every pair is decided or any reads "better": the shipped schedule (alpha / 4 per look)
against naive re-testing at full alpha.

Re-drawn splits (``study.vary_split``; rows "split world, sigma_train ..."). A study is a pool of
1,200 images (180 test, 840 train, 180 val: the default's); each run draws its own split, and the
training set moves a model's skill by ``sigma_train * sum(h_Mi over its training images) /
sqrt(n_train)`` (``h_Mi ~ N(0, 1)``: how much image i helps model M), so runs on overlapping training
sets are correlated. The truth is again the population difference, over datasets too. Three
methods on the same studies: Nadeau-Bengio's corrected resampled t (shipped with re-drawn splits),
the naive t over re-drawn splits, and the shipped fixed-split method (run 0's split, seeds only).
sigma_train 0: the training set does not matter; 0.3: it matters as much as the seed.

    python benchmarks/verdict_simulation.py [--studies 1000] [--split-studies N] [--seed 0] [--margin 0.02] [--out CSV]

Writes benchmarks/verdict_simulation.csv (one row per design x method x N x n x Delta); 2,000
studies (1,000 per re-drawn-split setting) take about 5 min on 2 busy CPU cores. Deterministic for a
given --seed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import sys
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from unittest import mock

import numpy as np
from scipy import optimize, special, stats

from common import ROOT, write_csv  # (standard library only)

sys.path.insert(0, str(ROOT))
from stages.analysis import over_runs, verdicts  # noqa: E402

OUT = Path(__file__).with_name("verdict_simulation.csv")
NAMES = "ABC"
SIZES, RUNS, DELTAS, LOOKS = (180, 1000), (3, 5, 10), (0.0, 0.01, 0.02, 0.05), (3, 5, 7, 9)
CHUNK = 100  # studies drawn at once: each [models, 100, 10, 1000] array stays under 30 MB
CHECK = 20  # studies per setting on which the vectorised t-test must equal over_runs.compare_models
COLUMNS = ["design", "method", "N", "n", "delta", "margin", "studies", "false_better_family", "better_wrong",
           "better_right", "equivalent", "undecided", "coverage", "ci_half_width", "mean_runs"]


@dataclass(frozen=True)
class World:
    mu: float = 4.5
    beta: float = 5.0
    sigma_int: float = 1.5
    sigma_seed: float = 0.3
    sigma_train: float = 0.0  # the training set's effect (the re-drawn-split design): see simulate_resampled


@functools.lru_cache
def planted_mu(world: World, delta: float, draws: int = 2_000_000, seed: int = 12345) -> float:
    """mu_B such that E[P_A] - E[P_B] = delta exactly (on one large common Monte-Carlo draw)."""
    if delta == 0:
        return world.mu
    rng = np.random.default_rng(seed)
    s = (world.beta * rng.standard_normal(draws) + world.sigma_int * rng.standard_normal(draws)
         + world.sigma_seed * rng.standard_normal(draws))
    if world.sigma_train:
        s = s + world.sigma_train * rng.standard_normal(draws)
    acc_a = special.expit(world.mu + s).mean()
    return optimize.brentq(lambda m: acc_a - special.expit(m + s).mean() - delta, world.mu - 5, world.mu, xtol=1e-10)


def draw_correct(world: World, mus, n_images: int, seeds: int, studies: int, rng) -> np.ndarray:
    """Per-image correctness [models, studies, seeds, N]: each study its own test images."""
    z = rng.standard_normal((1, studies, 1, n_images))
    v = world.sigma_int * rng.standard_normal((len(mus), studies, 1, n_images))
    u = world.sigma_seed * rng.standard_normal((len(mus), studies, seeds, 1))
    logit = np.asarray(mus)[:, None, None, None] + world.beta * z + v + u
    return rng.random(logit.shape) < special.expit(logit)


def calibration(world: World, n_images: int, studies: int = 200, seed: int = 0) -> dict:
    """What the world looks like: mean accuracy, seed sd of accuracy, images two equal models disagree on."""
    correct = draw_correct(world, [world.mu] * 2, n_images, 10, studies, np.random.default_rng(seed))
    acc = correct.mean(axis=-1)
    return {"accuracy": acc.mean(), "seed_sd": acc.std(axis=-1, ddof=1).mean(),
            "disagreement": (correct[0] != correct[1]).mean()}


@contextlib.contextmanager
def fast_verdicts():
    """The shipped code as is, minus two costs that do not change a verdict.

    statsmodels' Holm calls gc.collect() on every call (50 ms with scipy loaded): freezing the heap
    hides the import-time objects from it. decide() searches "runs needed" (up to 100 noncentral-t
    evaluations) for each undecided pair: advice, not part of the verdict, so it is skipped here.
    """
    gc.freeze()
    try:
        with mock.patch.object(verdicts, "runs_needed", lambda *args, **kwargs: None):
            yield
    finally:
        gc.unfreeze()


def shipped_points(correct: np.ndarray, margin: float) -> list[dict]:
    """paired_difference for every pair of one study's models; correct: [models, seeds, N]."""
    acc, n_images = correct.mean(axis=-1), correct.shape[-1]
    points = []
    for a, b in combinations(range(len(correct)), 2):
        image_var = verdicts.accuracy_image_variance(correct[a], correct[b])
        points.append({"a": NAMES[a], "b": NAMES[b], "n_images": n_images,
                       **verdicts.paired_difference(acc[a], acc[b], margin=margin, image_var=image_var,
                                                    n_images=n_images)})
    return points


def decided(points: list[dict], alpha: float, looks: int = 1) -> list[dict]:
    return verdicts.decide([dict(p) for p in points], alpha, looks)  # copies: one set of points, many decisions


def ttest_family(acc: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Today's rule vectorised over studies; acc: [models, studies, n] -> significant, mean, ci low/high [pairs, S].

    compare_models also runs an exact Wilcoxon test per pair that the verdict does not use; calling it
    per study would take most of the time budget, so it is checked on CHECK studies instead.
    """
    pairs = list(combinations(range(len(acc)), 2))
    d = np.stack([acc[a] - acc[b] for a, b in pairs])
    n = d.shape[-1]
    mean, sd = d.mean(axis=-1), d.std(axis=-1, ddof=1)
    constant = np.ptp(d, axis=-1) <= 1e-12  # over_runs: a steady difference has t_p 0 (1 if zero)
    t = np.abs(mean) / np.where(constant, 1.0, sd / np.sqrt(n))
    p = np.where(constant, (np.abs(mean) <= 1e-12).astype(float), 2 * stats.t.sf(t, n - 1))
    order = np.argsort(p, axis=0)
    steps = (len(pairs) - np.arange(len(pairs)))[:, None]
    adjusted = np.minimum(np.maximum.accumulate(np.take_along_axis(p, order, 0) * steps, axis=0), 1.0)
    holm = np.empty_like(adjusted)
    np.put_along_axis(holm, order, adjusted, 0)
    half = np.where(constant, 0.0, stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))
    return holm < alpha, mean, mean - half, mean + half


def check_ttest(acc: np.ndarray, alpha: float, significant, low, high) -> None:
    """The vectorised rule must give over_runs.compare_models' verdicts and intervals.

    Its Wilcoxon p is not part of the verdict and, on tied accuracies (k / N), scipy computes it by
    permutation (0.1 s a pair): stubbed out for the check.
    """
    stub = mock.Mock(return_value=mock.Mock(pvalue=0.5))
    for s in range(min(CHECK, acc.shape[1])):
        with mock.patch.object(over_runs.stats, "wilcoxon", stub):
            result = over_runs.compare_models({NAMES[m]: list(acc[m, s]) for m in range(len(acc))}, alpha=alpha)
        for k, r in enumerate(result.values()):
            assert r["significant"] == significant[k, s], (s, k, r)
            assert np.allclose((r["diff_ci_low"], r["diff_ci_high"]), (low[k, s], high[k, s]), atol=1e-9), (s, r)


def _outcome(family_better, verdict, sign, low, high) -> dict:  # one study's result, one method
    return {"family": family_better, "verdict": verdict, "sign": sign, "low": low, "high": high}


def simulate(world: World, n_images: int, delta: float, studies: int, *, margin: float = 0.02,
             alpha: float = 0.05, runs=RUNS, seed: int = 0) -> dict:
    """One (N, Delta) setting: {(method, n): outcome arrays over studies} for both methods.

    Outcomes: family (any pair read better), verdict of A-B ("better"/"equivalent"/"undecided"),
    sign (+1 A named better, -1 B, 0 neither) and A-B's interval.
    """
    rng = np.random.default_rng([seed, n_images, round(delta * 1e4)])  # one stream per setting
    mus = [world.mu, planted_mu(world, delta)] + ([world.mu] if delta == 0 else [])
    out = {(m, n): [] for m in ("shipped", "t-test") for n in runs}
    with fast_verdicts():
        for start in range(0, studies, CHUNK):
            correct = draw_correct(world, mus, n_images, max(runs), min(CHUNK, studies - start), rng)
            for n in runs:
                acc = correct[:, :, :n].mean(axis=-1)
                sig, mean, low, high = ttest_family(acc, alpha)
                if start == 0:
                    check_ttest(acc, alpha, sig, low, high)
                alone = ttest_family(acc[:2], alpha)[0][0]  # A-B decided alone, as for the shipped method
                for s in range(acc.shape[1]):
                    out["t-test", n].append(_outcome(bool(sig[:, s].any()), "better" if alone[s] else "undecided",
                                                     int(np.sign(mean[0, s])) * int(alone[s]), low[0, s], high[0, s]))
                    points = shipped_points(correct[:, s, :n], margin)
                    family = decided(points, alpha)
                    ab = decided(points[:1], alpha)[0] if len(points) > 1 else family[0]
                    sign = {"A": 1, "B": -1, None: 0}[ab["better"]]
                    out["shipped", n].append(_outcome(any(p["verdict"] == "better" for p in family), ab["verdict"],
                                                      sign, ab["ci_low"], ab["ci_high"]))
    return {key: {f: np.array([o[f] for o in rows]) for f in rows[0]} for key, rows in out.items()}


def measures(o: dict, delta: float, method: str) -> dict:
    """Rates over studies: family-wise false better (Delta = 0), wrong/right winner, verdicts, coverage."""
    wrong = (o["sign"] != 0) if delta == 0 else (o["sign"] < 0)
    return {"false_better_family": o["family"].mean() if delta == 0 else None, "better_wrong": wrong.mean(),
            "better_right": (o["sign"] > 0).mean() if delta > 0 else None,
            "equivalent": (o["verdict"] == "equivalent").mean() if method == "shipped" else None,
            "undecided": (o["verdict"] == "undecided").mean(),
            "coverage": ((o["low"] <= delta) & (delta <= o["high"])).mean(),
            "ci_half_width": ((o["high"] - o["low"]) / 2).mean()}


def sequential(world: World, n_images: int, studies: int, *, margin: float = 0.02, alpha: float = 0.05,
               looks=LOOKS, seed: int = 0) -> dict:
    """Three equal models, seeds added look by look; {method: (false better per study, runs at stop)}."""
    rng = np.random.default_rng([seed, n_images, 99])
    schedules = {"shipped looks=4": len(looks), "naive re-test": 1}
    out = {name: ([], []) for name in schedules}
    with fast_verdicts():
        for start in range(0, studies, CHUNK):
            correct = draw_correct(world, [world.mu] * 3, n_images, max(looks), min(CHUNK, studies - start), rng)
            for s in range(correct.shape[1]):
                active = dict(schedules)
                for n in looks:
                    points = shipped_points(correct[:, s, :n], margin)
                    for name, planned in list(active.items()):
                        verdict = [p["verdict"] for p in decided(points, alpha, planned)]
                        if "better" in verdict or "undecided" not in verdict or n == looks[-1]:
                            out[name][0].append("better" in verdict)
                            out[name][1].append(n)
                            del active[name]
    return {name: (np.array(fb), np.array(used)) for name, (fb, used) in out.items()}


SPLIT_WORLDS = (0.0, 0.3)  # sigma_train: no training-set effect; one as large as the seeds' (sigma_seed)
SPLIT_DELTAS = (0.0, 0.02, 0.05)


def draw_split_studies(world: World, mus, n_test: int, n_train: int, n_val: int, runs: int, studies: int, rng):
    """Per-image correctness when every run re-draws the split: [models, studies, runs, n_test] for the
    re-drawn splits, and the same for one fixed split (run 0's) with only the seed varying."""
    pool = n_test + n_train + n_val
    models = len(mus)
    z = rng.standard_normal((studies, pool))
    v = world.sigma_int * rng.standard_normal((models, studies, pool))
    h = rng.standard_normal((models, studies, pool))  # how much image i helps model M when trained on
    u = world.sigma_seed * rng.standard_normal((models, studies, runs))
    order = np.argsort(rng.random((studies, runs, pool)), axis=-1)
    test, train = order[..., :n_test], order[..., n_test:n_test + n_train]
    # The run's training set shifts the model's skill: sigma_train * (sum of h over it) / sqrt(n_train),
    # so a model trained on another draw of the same pool shares n_train^2 / pool of that sum.
    shift = world.sigma_train * np.take_along_axis(h[:, :, None, :], train[None], -1).sum(-1) / np.sqrt(n_train)
    mu = np.asarray(mus)[:, None, None, None]

    def correct(test_idx, run_shift, seed_u):
        zt = np.take_along_axis(z[:, None, :], test_idx, -1)[None]
        vt = np.take_along_axis(v[:, :, None, :], test_idx[None], -1)
        logit = mu + world.beta * zt + vt + run_shift[..., None] + seed_u[..., None]
        return rng.random(logit.shape) < special.expit(logit)

    varied = correct(test, shift, u)
    fixed = correct(np.repeat(test[:, :1], runs, axis=1), np.repeat(shift[:, :, :1], runs, axis=2), u)
    return varied, fixed


def simulate_resampled(world: World, n_test: int, delta: float, studies: int, *, margin: float = 0.02,
                       alpha: float = 0.05, runs=RUNS, seed: int = 0) -> dict:
    """The re-drawn-split design (``study.vary_split``) against one fixed split, in a world where the
    training set matters (``sigma_train``). Pool: n_test / 0.15 images split 70/15/15 (the default's
    proportions: 1,200 images, 840 train, 180 test). Methods: Nadeau-Bengio (shipped with re-drawn
    splits), the naive t-test over re-drawn splits (runs taken as independent) and the shipped fixed-split
    method (seeds + test images, crossed). {(method, n): outcome arrays}."""
    n_val = n_test
    n_train = round(n_test / 0.15) - n_test - n_val
    rng = np.random.default_rng([seed, n_test, round(delta * 1e4), round(world.sigma_train * 100), 7])
    mus = [world.mu, planted_mu(world, delta)] + ([world.mu] if delta == 0 else [])
    methods = ("nadeau-bengio", "resampled t", "shipped fixed split")
    out = {(m, n): [] for m in methods for n in runs}
    chunk = max(1, CHUNK * 1000 // (n_test + n_train + n_val) // 2)
    with fast_verdicts():
        for start in range(0, studies, chunk):
            varied, fixed = draw_split_studies(world, mus, n_test, n_train, n_val, max(runs),
                                               min(chunk, studies - start), rng)
            for n in runs:
                for s in range(varied.shape[1]):
                    acc = varied[:, s, :n].mean(axis=-1)
                    for method, overlap in (("nadeau-bengio", n_test / n_train), ("resampled t", 0.0)):
                        points = [{"a": NAMES[a], "b": NAMES[b], "n_images": n_test,
                                   **verdicts.paired_difference(acc[a], acc[b], margin=margin, overlap=overlap)}
                                  for a, b in combinations(range(len(acc)), 2)]
                        out[method, n].append(_decided_outcome(points, alpha))
                    out["shipped fixed split", n].append(_decided_outcome(shipped_points(fixed[:, s, :n], margin), alpha))
    return {key: {f: np.array([o[f] for o in rows]) for f in rows[0]} for key, rows in out.items()}


def _decided_outcome(points: list[dict], alpha: float) -> dict:
    family = decided(points, alpha)
    ab = decided(points[:1], alpha)[0] if len(points) > 1 else family[0]
    sign = {"A": 1, "B": -1, None: 0}[ab["better"]]
    return _outcome(any(p["verdict"] == "better" for p in family), ab["verdict"], sign, ab["ci_low"], ab["ci_high"])


def _fmt(x) -> str:
    return "   n/a" if x is None else f"{x:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000, help="studies per setting (N x Delta)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=float, default=0.02, help="equivalence margin of the shipped method")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--split-studies", type=int, default=None,
                        help="studies per setting of the re-drawn-split design (default: --studies / 2)")
    args = parser.parse_args()
    world, began, rows = World(), time.perf_counter(), []
    opts = dict(margin=args.margin, alpha=args.alpha, seed=args.seed)
    for n_images in SIZES:
        for delta in DELTAS:
            for (method, n), o in simulate(world, n_images, delta, args.studies, **opts).items():
                rows.append({"design": "fixed", "method": method, "N": n_images, "n": n, "delta": delta,
                             "margin": args.margin, "studies": args.studies, **measures(o, delta, method)})
    for name, (fb, used) in sequential(world, SIZES[0], args.studies, **opts).items():
        rows.append({"design": "sequential", "method": name, "N": SIZES[0], "n": "+".join(map(str, LOOKS)),
                     "delta": 0.0, "margin": args.margin, "studies": args.studies, "false_better_family": fb.mean(),
                     "mean_runs": used.mean()})
    split_studies = args.split_studies or args.studies // 2
    for sigma_train in SPLIT_WORLDS:
        for delta in SPLIT_DELTAS:
            split_world = World(sigma_train=sigma_train)
            for (method, n), o in simulate_resampled(split_world, SIZES[0], delta, split_studies, **opts).items():
                rows.append({"design": f"split world, sigma_train {sigma_train:g}", "method": method, "N": SIZES[0],
                             "n": n, "delta": delta, "margin": args.margin, "studies": split_studies,
                             **measures(o, delta, "shipped")})
    write_csv(args.out, [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
              COLUMNS, restval="")
    report(rows, args)
    print(f"{time.perf_counter() - began:.0f} s; wrote {args.out}")


def report(rows: list[dict], args) -> None:
    se = np.sqrt(args.alpha * (1 - args.alpha) / args.studies)
    for n_images in SIZES:
        c = calibration(World(), n_images, seed=args.seed)
        print(f"world at N={n_images}: accuracy {c['accuracy']:.3f}, seed sd {c['seed_sd']:.3f}, "
              f"two equal models disagree on {100 * c['disagreement']:.1f} % of images")
    print(f"{args.studies} studies per setting, margin {args.margin}, alpha {args.alpha} "
          f"(simulation SE of a rate near alpha: {se:.3f})\n")
    print(f"{'method':<8} {'N':>5} {'n':>3}  false-better equiv@0 coverage@0  power .01    .02    .05  wrong@.05")
    fixed = {(r["method"], r["N"], r["n"], r["delta"]): r for r in rows if r["design"] == "fixed"}
    for method in ("shipped", "t-test"):
        for n_images in SIZES:
            for n in RUNS:
                r0, rd = fixed[method, n_images, n, 0.0], {d: fixed[method, n_images, n, d] for d in DELTAS[1:]}
                power = " ".join(_fmt(rd[d]["better_right"]) for d in DELTAS[1:])
                print(f"{method:<8} {n_images:>5} {n:>3}  {_fmt(r0['false_better_family']):>12} "
                      f"{_fmt(r0['equivalent']):>7} {_fmt(r0['coverage']):>10}  {power} "
                      f"{_fmt(rd[0.05]['better_wrong'])}")
    print()
    for n_images, n in ((size, k) for size in SIZES for k in RUNS):
        a, b = (fixed[m, n_images, n, 0.0]["false_better_family"] for m in ("shipped", "t-test"))
        print(f"false-better: shipped {a:.3f} vs t-test {b:.3f} at N={n_images}, n={n}")
    split = {(r["design"], r["method"], r["n"], r["delta"]): r for r in rows if r["design"].startswith("split")}
    if split:
        print(f"\nre-drawn splits (N={SIZES[0]} test of {round(SIZES[0] / 0.15)} images): false-better (3 equal "
              f"models), coverage at 0, power at .02 / .05")
    for design, method, n, delta in split:
        if delta == 0:
            r0 = split[design, method, n, 0.0]
            power = " / ".join(_fmt(split[design, method, n, d]["better_right"]) for d in SPLIT_DELTAS[1:])
            print(f"{design:<28} {method:<20} n={n:<3} {_fmt(r0['false_better_family'])} "
                  f"{_fmt(r0['coverage'])}  {power}")
    for r in rows:
        if r["design"] == "sequential":
            print(f"sequential N={r['N']}, looks {r['n']}: {r['method']}: false-better {r['false_better_family']:.3f}, "
                  f"mean runs {r['mean_runs']:.1f}")


if __name__ == "__main__":
    main()
