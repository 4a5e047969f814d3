"""The reviewer's check that two report summaries agree (stages.compare_reports)."""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.compare_reports import main, means_agree

REPO = Path(__file__).resolve().parents[1]


def stat(mean: float, half: float | None, n: int = 3) -> dict:
    if half is None:
        return {"n": 1, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    return {"n": n, "mean": mean, "std": half / 2.5, "ci_low": mean - half, "ci_high": mean + half}


def summary() -> dict:
    return {
        "primary_metric": "accuracy", "alpha": 0.05, "confidence": 0.95, "seeds": [0, 1, 2],
        "models": {
            "vit": {"accuracy": stat(0.95, 0.02), "macro_f1": stat(0.94, 0.02)},
            "resnet50": {"accuracy": stat(0.90, 0.02), "macro_f1": stat(0.89, 0.03)},
        },
        "pairs": {"vit_vs_resnet50": {"metric": "accuracy", "n": 3, "diff_mean": 0.05, "diff_ci_low": 0.03,
                                      "diff_ci_high": 0.07, "t_p": 0.004, "t_p_holm": 0.004, "wilcoxon_p": 0.25,
                                      "wilcoxon_p_holm": 0.25, "significant": True, "better": "vit",
                                      "verdict": "vit better than resnet50 on accuracy by +0.050"}},
    }


def verdict_pair(verdict: str, better: str | None = None, x: float | None = None) -> dict:
    """vit vs resnet50 as stages.analysis.verdicts.decide writes it: a verdict label, not a sentence
    (a data-size curve point when ``x`` is given)."""
    diff = {"better": 0.05 if better == "vit" else -0.05, "equivalent": 0.002, "undecided": 0.01}[verdict]
    p_diff, p_equiv = {"better": (0.004, 0.9), "equivalent": (0.6, 0.003), "undecided": (0.2, 0.3)}[verdict]
    pair = {"a": "vit", "b": "resnet50", "metric": "accuracy", "n": 3, "n_images": 500, "diff_mean": diff,
            "seed_sd": 0.01, "image_se": 0.008, "se": 0.01, "df": 12.0, "ci_low": diff - 0.02, "ci_high": diff + 0.02,
            "p_diff": p_diff, "p_equiv": p_equiv, "p_diff_holm": p_diff, "p_equiv_holm": p_equiv, "margin": 0.01,
            "alpha_used": 0.05, "alpha_power": 0.05, "verdict": verdict, "better": better,
            "equivalent": verdict == "equivalent", "runs_needed": 6 if verdict == "undecided" else None,
            "sentence": f"vit vs resnet50 on accuracy: {verdict}"}
    if x is not None:
        return {"x": x, **pair}
    return {**pair, "mcnemar": {"statistic": 3.0, "p": 0.08, "p_holm": 0.08}}


def with_verdict(verdict: str, better: str | None = None) -> dict:
    """The summary with its pair written the new way."""
    out = summary()
    out["pairs"]["vit_vs_resnet50"] = verdict_pair(verdict, better)
    return out


def legacy_no_difference() -> dict:
    """The summary as written before the three verdicts, its pair not significant."""
    out = summary()
    out["pairs"]["vit_vs_resnet50"].update(
        t_p=0.3, t_p_holm=0.3, significant=False, better=None,
        verdict="no significant difference between vit and resnet50 on accuracy: vit - resnet50 = +0.010")
    return out


def write(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def run(tmp_path, a, b, *extra) -> int:
    return main([write(tmp_path, "a.json", a), write(tmp_path, "b.json", b), *extra])


def disagreements(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("DISAGREE")]


def test_means_agree_uses_the_combined_interval():
    # Half-widths 0.03 and 0.04 combine to 0.05, not to 0.07 as overlapping intervals would.
    assert means_agree(stat(0.90, 0.03), stat(0.949, 0.04))
    assert not means_agree(stat(0.90, 0.03), stat(0.951, 0.04))
    assert means_agree(stat(0.9, None), stat(0.9 + 1e-12, 0.05))
    assert not means_agree(stat(0.9, None), stat(0.9001, 0.05))  # one side has no interval: exact only


def test_a_ceiling_s_zero_width_interval_is_widened_to_one_test_image(tmp_path, capsys):
    # Every run of A at 1.000 (zero width) vs B's 0.991 +- 0.008: 0.009 apart, 1.6 of 180 test images.
    assert not means_agree(stat(1.0, 0.0), stat(0.991, 0.008))
    assert means_agree(stat(1.0, 0.0), stat(0.991, 0.008), resolution=1 / 180)
    assert not means_agree(stat(1.0, 0.0), stat(0.98, 0.008), resolution=1 / 180)  # 3.6 images: not one
    a, b = summary(), summary()
    a["test_images"] = b["test_images"] = 180
    a["models"]["vit"]["top3_accuracy"], b["models"]["vit"]["top3_accuracy"] = stat(1.0, 0.0), stat(0.991, 0.008)
    a["models"]["vit"]["log_loss"], b["models"]["vit"]["log_loss"] = stat(0.1, 0.0), stat(0.109, 0.008)
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a)), pb.write_text(json.dumps(b))
    main([str(pa), str(pb)])
    bad = disagreements(capsys.readouterr().out)
    assert [line.split(":")[0] for line in bad] == ["DISAGREE  vit log_loss"] or \
        (len(bad) == 1 and "log_loss" in bad[0]), bad  # only the per-image metric is widened


def test_agreeing_reports_exit_0(tmp_path, capsys):
    b = summary()
    b["models"]["vit"]["accuracy"] = stat(0.96, 0.025)  # within sqrt(0.02^2 + 0.025^2) = 0.032
    assert run(tmp_path, summary(), b) == 0
    out = capsys.readouterr().out
    assert disagreements(out) == []
    assert out.splitlines()[-1] == "5 checks: 5 agree, 0 soft, 0 disagree"  # 2 models x 2 metrics + 1 pair
    assert "agree     vit accuracy: A 0.9500 [0.9300, 0.9700]  B 0.9600 [0.9350, 0.9850]" in out


def test_shifted_metric_disagrees_and_is_named(tmp_path, capsys):
    b = summary()
    b["models"]["resnet50"]["macro_f1"] = stat(0.93, 0.01)  # |0.04| > sqrt(0.03^2 + 0.01^2) = 0.032
    assert run(tmp_path, summary(), b) == 1
    out = capsys.readouterr().out
    assert disagreements(out) == ["DISAGREE  resnet50 macro_f1: A 0.8900 [0.8600, 0.9200]  B 0.9300 [0.9200, 0.9400]"]
    assert out.splitlines()[-1] == "5 checks: 4 agree, 0 soft, 1 disagree"


def test_metrics_option_restricts_the_checks(tmp_path, capsys):
    b = summary()
    b["models"]["resnet50"]["macro_f1"] = stat(0.93, 0.01)
    assert run(tmp_path, summary(), b, "--metrics", "accuracy") == 0  # the shifted macro_f1 is not checked
    assert capsys.readouterr().out.splitlines()[-1] == "3 checks: 3 agree, 0 soft, 0 disagree"
    assert run(tmp_path, summary(), b, "--metrics", "top3_accuracy") == 1  # asked for, but in neither report
    assert "vit top3_accuracy: only in neither" in capsys.readouterr().out


def test_a_metric_missing_from_one_report_disagrees_and_names_the_report_that_has_it(tmp_path, capsys):
    """A fresh run that lost a metric does not "agree" on the metrics left: the lost one is a disagreement."""
    lost = summary()
    del lost["models"]["vit"]["macro_f1"]
    assert run(tmp_path, summary(), lost) == 1
    out = capsys.readouterr().out
    assert disagreements(out) == ["DISAGREE  vit macro_f1: only in A"]  # B, the fresh run, lacks it
    assert out.splitlines()[-1] == "5 checks: 4 agree, 0 soft, 1 disagree"
    assert run(tmp_path, lost, summary()) == 1  # the other way round: a metric only the fresh run has
    assert disagreements(capsys.readouterr().out) == ["DISAGREE  vit macro_f1: only in B"]
    assert run(tmp_path, summary(), lost, "--metrics", "accuracy") == 0  # --metrics still restricts the checks
    assert capsys.readouterr().out.splitlines()[-1] == "3 checks: 3 agree, 0 soft, 0 disagree"
    assert run(tmp_path, summary(), lost, "--metrics", "accuracy", "macro_f1") == 1
    assert disagreements(capsys.readouterr().out) == ["DISAGREE  vit macro_f1: only in A"]
    timed = summary()
    timed["models"]["vit"]["fit_time_s"] = stat(60.0, 2.0)  # a timing in one report only: not checked unless asked
    assert run(tmp_path, timed, summary()) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "5 checks: 5 agree, 0 soft, 0 disagree"
    assert run(tmp_path, timed, summary(), "--metrics", "fit_time_s") == 1
    assert disagreements(capsys.readouterr().out) == ["DISAGREE  vit fit_time_s: only in A",
                                                      "DISAGREE  resnet50 fit_time_s: only in neither"]


def test_flipped_verdict_disagrees(tmp_path, capsys):
    assert run(tmp_path, summary(), with_verdict("equivalent")) == 1  # a summary from before the labels, too
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  vit_vs_resnet50: A vit better on accuracy  B equivalent on accuracy"]


def test_the_verdict_labels_are_those_the_report_writes():
    from stages.analysis.verdicts import VERDICTS
    from stages.compare_reports import VERDICTS as READ
    assert READ == VERDICTS


def test_opposite_winners_contradict(tmp_path, capsys):
    assert run(tmp_path, with_verdict("better", "vit"), with_verdict("better", "resnet50")) == 1
    out = capsys.readouterr().out
    assert disagreements(out) == [
        "DISAGREE  vit_vs_resnet50: A vit better on accuracy  B resnet50 better on accuracy"]
    assert out.splitlines()[-1] == "5 checks: 4 agree, 0 soft, 1 disagree"


@pytest.mark.parametrize("a, b, line", [
    (("better", "vit"), ("equivalent",), "A vit better on accuracy  B equivalent on accuracy"),
    (("equivalent",), ("better", "resnet50"), "A equivalent on accuracy  B resnet50 better on accuracy"),
])
def test_better_against_equivalent_contradicts(tmp_path, capsys, a, b, line):
    assert run(tmp_path, with_verdict(*a), with_verdict(*b)) == 1
    out = capsys.readouterr().out
    assert disagreements(out) == [f"DISAGREE  vit_vs_resnet50: {line}"]
    assert out.splitlines()[-1] == "5 checks: 4 agree, 0 soft, 1 disagree"


def test_undecided_against_a_decision_is_soft_listed_and_exits_0(tmp_path, capsys):
    """An undecided verdict claims nothing a decision contradicts: listed as SOFT, not a failure."""
    assert run(tmp_path, with_verdict("undecided"), with_verdict("better", "vit")) == 0
    out = capsys.readouterr().out
    assert disagreements(out) == []
    assert "SOFT      vit_vs_resnet50: A undecided on accuracy  B vit better on accuracy" in out.splitlines()
    assert out.splitlines()[-1] == "5 checks: 4 agree, 1 soft, 0 disagree"
    assert run(tmp_path, with_verdict("equivalent"), with_verdict("undecided")) == 0  # either way round
    out = capsys.readouterr().out
    assert "SOFT      vit_vs_resnet50: A equivalent on accuracy  B undecided on accuracy" in out.splitlines()
    assert out.splitlines()[-1] == "5 checks: 4 agree, 1 soft, 0 disagree"


@pytest.mark.parametrize("verdict", ["equivalent", "undecided"])
def test_the_same_verdict_agrees(tmp_path, capsys, verdict):
    assert run(tmp_path, with_verdict(verdict), with_verdict(verdict)) == 0
    out = capsys.readouterr().out
    assert f"agree     vit_vs_resnet50: A {verdict} on accuracy  B {verdict} on accuracy" in out.splitlines()
    assert out.splitlines()[-1] == "5 checks: 5 agree, 0 soft, 0 disagree"


def test_verdicts_on_different_metrics_disagree_even_where_one_is_undecided(tmp_path, capsys):
    other = with_verdict("undecided")
    other["pairs"]["vit_vs_resnet50"]["metric"] = "macro_f1"
    assert run(tmp_path, with_verdict("better", "vit"), other) == 1
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  vit_vs_resnet50: A vit better on accuracy  B undecided on macro_f1"]


def test_a_summary_from_before_the_three_verdicts_reads_no_difference_as_undecided(tmp_path, capsys):
    """Its ``verdict`` is a sentence: a named better model reads as better, "no significant difference" as
    undecided (it was never a decision), so against a new "equivalent" it is a soft difference."""
    assert run(tmp_path, legacy_no_difference(), with_verdict("equivalent")) == 0
    out = capsys.readouterr().out
    assert "SOFT      vit_vs_resnet50: A undecided on accuracy  B equivalent on accuracy" in out.splitlines()
    assert out.splitlines()[-1] == "5 checks: 4 agree, 1 soft, 0 disagree"
    assert run(tmp_path, summary(), with_verdict("better", "vit")) == 0  # legacy vit better, new vit better
    out = capsys.readouterr().out
    assert "agree     vit_vs_resnet50: A vit better on accuracy  B vit better on accuracy" in out.splitlines()
    assert out.splitlines()[-1] == "5 checks: 5 agree, 0 soft, 0 disagree"
    assert run(tmp_path, with_verdict("better", "resnet50"), summary()) == 1
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  vit_vs_resnet50: A resnet50 better on accuracy  B vit better on accuracy"]


def test_missing_model_and_pair_disagree(tmp_path, capsys):
    b = summary()
    del b["models"]["resnet50"]
    b["pairs"]["vit_vs_cnn"] = {**b["pairs"]["vit_vs_resnet50"], "better": None}
    assert run(tmp_path, summary(), b) == 1
    bad = disagreements(capsys.readouterr().out)
    assert bad == ["DISAGREE  model resnet50: only in A", "DISAGREE  pair vit_vs_cnn: only in B"]


def test_single_run_reports_must_match_exactly(tmp_path, capsys):
    a, b = summary(), summary()
    a["models"]["vit"]["accuracy"] = stat(0.95, None)
    assert run(tmp_path, a, copy.deepcopy(a)) == 0
    b["models"]["vit"]["accuracy"] = stat(0.951, None)
    assert run(tmp_path, a, b) == 1
    assert "DISAGREE  vit accuracy: A 0.9500 (no CI)  B 0.9510 (no CI)" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"pairs": {}}), "no 'models' object"),
    (json.dumps({"models": {"vit": {"accuracy": {"mean": "high"}}}}), "models.vit.accuracy"),
])
def test_malformed_input_exits_2_naming_the_file(tmp_path, capsys, content, message):
    good, bad = write(tmp_path, "good.json", summary()), write(tmp_path, "broken.json", content)
    assert main([good, bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: ") and message in err and len(err.splitlines()) == 1
    assert main([str(tmp_path / "absent.json"), good]) == 2
    assert "absent.json: cannot read" in capsys.readouterr().err


def test_command_line_exit_code(tmp_path):
    b = summary()
    b["pairs"]["vit_vs_resnet50"]["better"] = "resnet50"
    a_path, b_path = write(tmp_path, "a.json", summary()), write(tmp_path, "b.json", b)
    done = subprocess.run([sys.executable, "-m", "stages.compare_reports", a_path, b_path],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "DISAGREE  vit_vs_resnet50: A vit better on accuracy  B resnet50 better on accuracy" in done.stdout
    assert done.stdout.splitlines()[-1] == "5 checks: 4 agree, 0 soft, 1 disagree"


def test_timings_are_compared_only_when_asked(tmp_path):
    """Another machine is slower by design: fit and eval times are not part of the default check."""
    from stages.compare_reports import checks

    def summary(fit):
        return {"models": {"m": {"accuracy": {"mean": 0.9, "ci_high": 0.92},
                                 "fit_time_s": {"mean": fit, "ci_high": fit + 1}}}, "pairs": {}}

    fast, slow = summary(10.0), summary(40.0)
    assert [ok for ok, _ in checks(fast, slow)] == [True]  # accuracy only
    assert [ok for ok, _ in checks(fast, slow, ["accuracy", "fit_time_s"])] == [True, False]


def test_cost_summaries_compare_their_timings_when_named(tmp_path, capsys):
    """metrics/cost/comparison.json has the same ``models`` shape: its timings are checked with --metrics only."""
    def cost(fit: float) -> dict:
        return {"confidence": 0.95, "seeds": [0, 1, 2], "train_percent": 100,
                "models": {"vit": {"fit_time_s": stat(fit, 2.0), "latency_ms_b1": stat(9.0, 0.5)}},
                "data_size_curve": [{"model": "vit", "train_percent": 100, "x": 84.0, "runs": 3,
                                     "fit_time_s_mean": fit}]}

    assert run(tmp_path, cost(60.0), cost(90.0)) == 0  # by default nothing machine-dependent is compared
    assert capsys.readouterr().out.splitlines() == ["0 checks: 0 agree, 0 soft, 0 disagree"]
    assert run(tmp_path, cost(60.0), cost(90.0), "--metrics", "fit_time_s", "latency_ms_b1") == 1
    assert capsys.readouterr().out.splitlines() == [
        "DISAGREE  vit fit_time_s: A 60.0000 [58.0000, 62.0000]  B 90.0000 [88.0000, 92.0000]",
        "agree     vit latency_ms_b1: A 9.0000 [8.5000, 9.5000]  B 9.0000 [8.5000, 9.5000]",
        "2 checks: 1 agree, 0 soft, 1 disagree"]


def with_curve(data: dict, vit_small: float = 0.60, crossing: dict | None = None, points: list | None = None) -> dict:
    """The summary plus a data-size section: two models at 25 % and 100 %, and the pair's ``points``."""
    def point(model, percent, mean, half):
        return {"model": model, "train_percent": percent, "x": percent * 0.84, "runs": 3,
                "accuracy_mean": mean, "accuracy_std": half / 2.5, "accuracy_ci_low": mean - half,
                "accuracy_ci_high": mean + half}
    out = copy.deepcopy(data)
    out["data_size"] = {"metric": "accuracy", "percents": [25, 100],
                        "curve": [point("vit", 25, vit_small, 0.05), point("vit", 100, 0.95, 0.02),
                                  point("resnet50", 25, 0.70, 0.04), point("resnet50", 100, 0.90, 0.02)],
                        "pairs": {"vit_vs_resnet50": {"points": points or [], "crossing": crossing,
                                                      "mean_crossing": None}},
                        "statement": "..."}
    return out


def test_the_data_size_curve_is_checked_point_by_point_and_crossing_by_crossing(tmp_path, capsys):
    base = with_curve(summary())
    assert run(tmp_path, base, with_curve(summary(), vit_small=0.62)) == 0  # within the combined interval
    out = capsys.readouterr().out
    assert "agree     curve vit at 25 % accuracy: A 0.6000" in out and "curve vit_vs_resnet50: A no supported" in out
    assert run(tmp_path, base, with_curve(summary(), vit_small=0.75)) == 1  # 0.15 apart: beyond sqrt(0.05²+0.05²)
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  curve vit at 25 % accuracy: A 0.6000 [0.5500, 0.6500]  B 0.7500 [0.7000, 0.8000]"]
    crossed = with_curve(summary(), crossing={"winner": "vit", "loser": "resnet50", "x_below": 21, "x_above": 84})
    assert run(tmp_path, base, crossed) == 1
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  curve vit_vs_resnet50: A no supported crossing  B vit overtakes resnet50"]
    assert run(tmp_path, summary(), base) == 1  # a curve in one report only
    assert "DISAGREE  data-size curve: only in B" in capsys.readouterr().out
    broken = with_curve(summary())
    broken["data_size"]["curve"][0].pop("accuracy_mean")
    assert run(tmp_path, base, broken) == 2
    assert "data_size needs" in capsys.readouterr().err


def test_help_names_the_command_its_purpose_and_its_arguments(capsys):
    """``--help`` is how a reviewer learns the call: it shows the module to run, what it checks and each argument."""
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert out.startswith("usage: python -m stages.compare_reports ")
    assert "A.json B.json" in out
    assert "Check that two report summaries agree: does a fresh run reproduce the committed results?" in out
    assert "A.json a report summary (metrics/comparison.json) B.json the summary to check it against" in out
    assert out.endswith(
        "--metrics METRICS [METRICS ...] only these metrics (default: every metric in either but times and throughputs)")


def test_means_agree_counts_the_boundary_as_agreement():
    # Exactly on the edge still agrees: fit times 10 s +- 3 and 15 s +- 4 are 5 s apart = hypot(3, 4).
    assert means_agree(stat(10.0, 3.0), stat(15.0, 4.0))
    assert means_agree(stat(0.0, None), stat(1e-9, None))  # single runs: within the 1e-9 tolerance, inclusive
    assert not means_agree(stat(0.0, None), stat(2e-9, None))


def test_intervals_are_shown_as_the_report_gives_them(tmp_path, capsys):
    """An asymmetric interval (a bootstrap one, say) is printed with its own lower end, not mean - half-width;
    a summary with only an upper end is shown symmetric about the mean."""
    a = summary()
    a["models"]["vit"]["accuracy"] = {"n": 3, "mean": 0.95, "ci_low": 0.90, "ci_high": 0.97}
    b = copy.deepcopy(a)
    b["models"]["vit"]["accuracy"] = {"n": 3, "mean": 0.95, "ci_high": 0.97}
    assert run(tmp_path, a, b) == 0
    assert "agree     vit accuracy: A 0.9500 [0.9000, 0.9700]  B 0.9500 [0.9300, 0.9700]" in capsys.readouterr().out


def test_a_missing_model_metric_or_pair_does_not_stop_the_checks_after_it(tmp_path, capsys):
    """Whatever is first in the report and missing from the other, everything after it is still compared."""
    b = summary()
    del b["models"]["vit"]  # the first model
    del b["models"]["resnet50"]["accuracy"]  # the first metric of the next model
    b["models"]["resnet50"]["macro_f1"] = stat(0.95, 0.01)  # ... and the one after it disagrees
    a = summary()
    a["pairs"] = {"vit_vs_deit": {"metric": "accuracy", "better": "vit"}, **a["pairs"]}  # a pair only A has, first
    b["pairs"]["vit_vs_resnet50"]["better"] = "resnet50"
    assert run(tmp_path, a, b) == 1
    assert capsys.readouterr().out.splitlines() == [
        "DISAGREE  model vit: only in A",
        "DISAGREE  resnet50 accuracy: only in A",
        "DISAGREE  resnet50 macro_f1: A 0.8900 [0.8600, 0.9200]  B 0.9500 [0.9400, 0.9600]",
        "DISAGREE  pair vit_vs_deit: only in A",
        "DISAGREE  vit_vs_resnet50: A vit better on accuracy  B resnet50 better on accuracy",
        "5 checks: 0 agree, 0 soft, 5 disagree"]


def test_a_pair_without_a_metric_reads_as_the_bare_verdict(tmp_path, capsys):
    a, b = summary(), summary()
    for data, better in ((a, "vit"), (b, "resnet50")):
        data["pairs"] = {"vit_vs_resnet50": {"better": better}}
    assert run(tmp_path, a, b) == 1
    assert disagreements(capsys.readouterr().out) == ["DISAGREE  vit_vs_resnet50: A vit better  B resnet50 better"]
    b["pairs"]["vit_vs_resnet50"]["better"] = None
    assert run(tmp_path, a, b) == 0
    assert "SOFT      vit_vs_resnet50: A vit better  B undecided" in capsys.readouterr().out.splitlines()


def test_the_curve_is_checked_besides_the_models_and_pairs(tmp_path, capsys):
    base = with_curve(summary())
    assert run(tmp_path, base, copy.deepcopy(base)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("agree     vit accuracy: ")  # the model checks come first ...
    assert out[-1] == "10 checks: 10 agree, 0 soft, 0 disagree"  # ... 4 metrics + 1 pair + 4 curve points + 1 crossing
    assert run(tmp_path, base, summary()) == 1  # a curve only A, the committed report, has
    assert disagreements(capsys.readouterr().out) == ["DISAGREE  data-size curve: only in A"]


def test_curves_on_different_metrics_disagree(tmp_path, capsys):
    other = with_curve(summary())
    size = other["data_size"]
    size["metric"] = "macro_f1"
    size["curve"] = [{k.replace("accuracy", "macro_f1"): v for k, v in r.items()} for r in size["curve"]]
    assert run(tmp_path, with_curve(summary()), other) == 1
    assert disagreements(capsys.readouterr().out) == ["DISAGREE  data-size curve: A on accuracy  B on macro_f1"]


def test_curve_points_and_pairs_in_one_report_only_are_named(tmp_path, capsys):
    lost = with_curve(summary())
    lost["data_size"]["curve"].pop(0)  # vit at 25 %: the first point
    del lost["data_size"]["pairs"]  # an older summary may have no curve pairs at all
    assert run(tmp_path, with_curve(summary()), lost) == 1
    assert capsys.readouterr().out.splitlines()[-6:] == [
        "DISAGREE  curve point vit at 25 %: only in A",
        "agree     curve vit at 100 % accuracy: A 0.9500 [0.9300, 0.9700]  B 0.9500 [0.9300, 0.9700]",
        "agree     curve resnet50 at 25 % accuracy: A 0.7000 [0.6600, 0.7400]  B 0.7000 [0.6600, 0.7400]",
        "agree     curve resnet50 at 100 % accuracy: A 0.9000 [0.8800, 0.9200]  B 0.9000 [0.8800, 0.9200]",
        "DISAGREE  curve pair vit_vs_resnet50: only in A",
        "10 checks: 8 agree, 0 soft, 2 disagree"]
    assert run(tmp_path, lost, with_curve(summary())) == 1
    assert disagreements(capsys.readouterr().out) == ["DISAGREE  curve point vit at 25 %: only in B",
                                                      "DISAGREE  curve pair vit_vs_resnet50: only in B"]
    assert run(tmp_path, lost, copy.deepcopy(lost)) == 0  # neither has curve pairs: nothing to compare there
    assert capsys.readouterr().out.splitlines()[-1] == "8 checks: 8 agree, 0 soft, 0 disagree"


def legacy_curve_point(x: float, better: str | None) -> dict:
    """A pair's point on the data-size curve as written before the three verdicts."""
    diff = {"vit": 0.05, "resnet50": -0.05, None: 0.01}[better]
    return {"x": x, "n": 3, "diff_mean": diff, "diff_ci_low": diff - 0.02, "diff_ci_high": diff + 0.02,
            "t_p": 0.3 if better is None else 0.004, "t_p_holm": 0.3 if better is None else 0.008,
            "significant": better is not None, "better": better}


def test_each_curve_point_verdict_is_compared_three_ways(tmp_path, capsys):
    """The pair's verdict at every training size: opposite winners disagree, undecided against a decision is soft."""
    a = with_curve(summary(), points=[verdict_pair("better", "resnet50", x=21.0), verdict_pair("undecided", x=84.0)])
    b = with_curve(summary(), points=[verdict_pair("better", "vit", x=21.0), verdict_pair("better", "vit", x=84.0)])
    assert run(tmp_path, a, b) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-4:] == [
        "agree     curve vit_vs_resnet50: A no supported crossing  B no supported crossing",
        "DISAGREE  curve vit_vs_resnet50 at 21 images per class: A resnet50 better on accuracy  B vit better on accuracy",
        "SOFT      curve vit_vs_resnet50 at 84 images per class: A undecided on accuracy  B vit better on accuracy",
        "12 checks: 10 agree, 1 soft, 1 disagree"]
    b["data_size"]["pairs"]["vit_vs_resnet50"]["points"][0] = verdict_pair("equivalent", x=21.0)
    assert run(tmp_path, a, b) == 1  # better against equivalent at one size
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  curve vit_vs_resnet50 at 21 images per class: A resnet50 better on accuracy  B equivalent on accuracy"]
    b["data_size"]["pairs"]["vit_vs_resnet50"]["points"][0] = verdict_pair("better", "resnet50", x=21.0)
    assert run(tmp_path, a, b) == 0  # the rest agrees: the one soft difference does not fail the check
    assert capsys.readouterr().out.splitlines()[-1] == "12 checks: 11 agree, 1 soft, 0 disagree"


def test_curve_point_verdicts_are_matched_by_size_or_by_position(tmp_path, capsys):
    points = [verdict_pair("better", "resnet50", x=21.0), verdict_pair("better", "vit", x=84.0)]
    a, b = with_curve(summary(), points=points), with_curve(summary(), points=points[::-1])
    assert run(tmp_path, a, b) == 0  # by x, not by position
    assert capsys.readouterr().out.splitlines()[-1] == "12 checks: 12 agree, 0 soft, 0 disagree"
    b["data_size"]["pairs"]["vit_vs_resnet50"]["points"] = points[:1]
    assert run(tmp_path, a, b) == 1  # a size only one report has stays a disagreement
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  curve point vit_vs_resnet50 at 84 images per class: only in A"]
    unsized = [{k: v for k, v in p.items() if k != "x"} for p in points]
    a, b = with_curve(summary(), points=unsized), with_curve(summary(), points=unsized[::-1])
    assert run(tmp_path, a, b) == 1  # neither has x: matched by position
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  curve vit_vs_resnet50 at point 1: A resnet50 better on accuracy  B vit better on accuracy",
        "DISAGREE  curve vit_vs_resnet50 at point 2: A vit better on accuracy  B resnet50 better on accuracy"]


def test_curve_points_from_before_the_three_verdicts_still_compare(tmp_path, capsys):
    old = with_curve(summary(), points=[legacy_curve_point(21.0, None), legacy_curve_point(84.0, "vit")])
    new = with_curve(summary(), points=[verdict_pair("equivalent", x=21.0), verdict_pair("better", "vit", x=84.0)])
    assert run(tmp_path, old, new) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "SOFT      curve vit_vs_resnet50 at 21 images per class: A undecided on accuracy  B equivalent on accuracy",
        "agree     curve vit_vs_resnet50 at 84 images per class: A vit better on accuracy  B vit better on accuracy",
        "12 checks: 11 agree, 1 soft, 0 disagree"]
    new["data_size"]["pairs"]["vit_vs_resnet50"]["points"][1] = verdict_pair("better", "resnet50", x=84.0)
    assert run(tmp_path, old, new) == 1
    assert disagreements(capsys.readouterr().out) == [
        "DISAGREE  curve vit_vs_resnet50 at 84 images per class: A vit better on accuracy  B resnet50 better on accuracy"]


def test_curve_points_show_their_own_interval(tmp_path, capsys):
    skewed = with_curve(summary())
    skewed["data_size"]["curve"][0]["accuracy_ci_low"] = 0.50  # vit at 25 %: 0.60 [0.50, 0.65]
    assert run(tmp_path, skewed, copy.deepcopy(skewed)) == 0
    assert "agree     curve vit at 25 % accuracy: A 0.6000 [0.5000, 0.6500]  B 0.6000 [0.5000, 0.6500]" in (
        capsys.readouterr().out)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(pairs=[]), "'pairs' is not an object"),
    (lambda d: d["models"].update(vit=0.95), "models.vit is not an object"),
    (lambda d: d["models"]["vit"]["accuracy"].update(ci_high="0.97"),
     "models.vit.accuracy needs a finite 'mean' and 'ci_high'"),
    (lambda d: d["pairs"]["vit_vs_resnet50"].update(better=1), "pairs.vit_vs_resnet50 needs 'better' (a model name or null)"),
    (lambda d: d["pairs"].update(vit_vs_deit="vit better"), "pairs.vit_vs_deit needs 'better' (a model name or null)"),
    (lambda d: d.update(data_size=[]), "data_size needs 'metric', a 'curve' list of points with model, "
                                       "train_percent and <metric>_mean, and 'pairs'"),
    (lambda d: d["pairs"].update(vit_vs_resnet50=verdict_pair("better")),
     "pairs.vit_vs_resnet50: verdict 'better' needs 'better' to be a model name"),
    (lambda d: d["pairs"].update(vit_vs_resnet50={**verdict_pair("equivalent"), "better": "vit"}),
     "pairs.vit_vs_resnet50: verdict 'equivalent' needs 'better' to be null"),
    (lambda d: d.update(data_size=with_curve(d, points=[{"x": 21.0, "better": 1}])["data_size"]),
     "data_size.pairs.vit_vs_resnet50.points[0] needs 'better' (a model name or null)"),
    (lambda d: d.update(data_size={**with_curve(d)["data_size"], "pairs": {"vit_vs_resnet50": {"points": {}}}}),
     "data_size.pairs.vit_vs_resnet50 needs a 'points' list"),
])
def test_malformed_fields_are_named_in_the_error(tmp_path, capsys, change, message):
    """Each malformed field is reported as the file and the field, not a traceback."""
    bad = summary()
    change(bad)
    good, broken = write(tmp_path, "good.json", summary()), write(tmp_path, "broken.json", bad)
    assert main([good, broken]) == 2
    assert capsys.readouterr().err == f"error: {broken}: {message}\n"


def test_an_unreadable_file_is_named_with_the_reason(tmp_path, capsys):
    absent = str(tmp_path / "absent.json")
    assert main([absent, write(tmp_path, "good.json", summary())]) == 2
    assert capsys.readouterr().err == f"error: {absent}: cannot read: {os.strerror(errno.ENOENT)}\n"


def test_one_test_image_is_the_finest_step_read_from_the_report_or_its_pairs(tmp_path, capsys):
    """The widening of a zero-width interval is one test image of the smaller test set: from the report's
    ``test_images``, else (older reports) a pair's ``n_images``; with neither, a zero width stays zero."""
    def top3(b_mean: float, a_images=None, b_images=None, pair_images=None) -> list[str]:
        a, b = summary(), summary()
        for report, images in ((a, a_images), (b, b_images)):
            if images:
                report["test_images"] = images
            pair = report["pairs"]["vit_vs_resnet50"]
            pair.pop("n_images", None)
            if pair_images:
                pair["n_images"] = pair_images
        a["models"]["vit"]["top3_accuracy"], b["models"]["vit"]["top3_accuracy"] = stat(1.0, 0.0), stat(b_mean, 0.008)
        run(tmp_path, a, b)
        return [line for line in capsys.readouterr().out.splitlines() if "top3_accuracy" in line]

    agree = "agree     vit top3_accuracy: A 1.0000 [1.0000, 1.0000]  B 0.9910 [0.9830, 0.9990]"
    assert top3(0.991, 180, 180) == [agree]  # 0.009 within hypot(1/180, 0.008) = 0.0098
    assert top3(0.991, 180, 1000) == [agree]  # the smaller test set's step
    assert top3(0.991, pair_images=180) == [agree]  # an older report: its pairs' n_images
    assert top3(0.991)[0].startswith("DISAGREE")  # no test-set size anywhere: no widening
    assert top3(0.988, 180, 180)[0].startswith("DISAGREE")  # 0.012: more than one image's step allows


def test_a_curve_pair_without_points_loads_and_a_size_in_one_report_does_not_end_the_comparison(tmp_path, capsys):
    a = with_curve(summary())
    del a["data_size"]["pairs"]["vit_vs_resnet50"]["points"]  # a summary may carry a crossing without points
    assert run(tmp_path, a, copy.deepcopy(a)) == 0
    capsys.readouterr()
    only_a = verdict_pair("better", "vit", x=10.0)
    a = with_curve(summary(), points=[only_a, verdict_pair("better", "vit", x=84.0)])
    b = with_curve(summary(), points=[verdict_pair("better", "resnet50", x=84.0)])
    assert run(tmp_path, a, b) == 1
    assert disagreements(capsys.readouterr().out) == [  # the size after the unmatched one is still compared
        "DISAGREE  curve point vit_vs_resnet50 at 10 images per class: only in A",
        "DISAGREE  curve vit_vs_resnet50 at 84 images per class: A vit better on accuracy  B resnet50 better on accuracy"]
