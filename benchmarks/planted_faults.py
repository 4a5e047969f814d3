"""Benchmark: does each guarantee's test fail when the guarantee breaks? One planted fault per promise.

The Guarantees (docs/guarantees.md) name a test for each promise. Here each promise gets a realistic way to break
it -- a one-line edit of the code that keeps it (:data:`FAULTS`) -- planted in a scratch copy of the
repository (as benchmarks/pipeline.py makes it); the named test runs there and must fail. The mutation
benchmark (benchmarks/mutation.py) does the same at scale for the pure-Python modules; these are the
promises that live in stages, signals, files and DVC, where a mutation tool cannot reach.

    python benchmarks/planted_faults.py [--only SUBSTRING]

Writes benchmarks/planted_faults.csv: per fault the promise, the file, the test, caught (yes/no) and
the test's first failure line. tests/test_suite.py checks that every fault is still plantable (its
line still exists) and was caught in the committed CSV. Not run in CI: ~3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from common import copy_repo, machine, write_csv

HERE = Path(__file__).parent
OUT = HERE / "planted_faults.csv"

# (promise, file, line as it is, line as the fault makes it, the test that must fail)
FAULTS = [
    ("CI runs the README's test command", ".ci/run", "make test", "make test-fast",
     "tests/test_quick_start.py::test_ci_runs_the_readme_test_command_and_nothing_else"),
    ("a signal whose exception Python swallows still publishes nothing", "stages/core/files.py",
     "        exit_if_interrupted()  # a signal whose exception an interpreter callback swallowed",
     "        pass",
     "tests/test_interrupted.py::test_a_signal_whose_exception_python_swallows_still_fails_the_stage_and_publishes_nothing"),
    ("train publishes its outputs together or none", "stages/train.py", "        deployable(model).save(tmp_model)",
     "        deployable(model).save(model_path(name, seed, percent=percent))",
     "tests/test_interrupted.py::test_a_signal_while_train_saves_the_model_publishes_none_of_its_outputs"),
    ("the decoder never opens a FIFO, socket or device", "stages/data/images.py",
     "    require_regular_file(path)\n    try:\n        data = Path(path).read_bytes()",
     "    try:\n        data = Path(path).read_bytes()\n        require_regular_file(path)",
     "tests/test_hostile_folders.py::test_a_fifo_socket_or_device_is_refused_unopened_by_the_decoder"),
    ("preflight lists what DVC cannot hash", "stages/data/image_files.py",
     "if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):",
     "if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISSOCK(mode)):",
     "tests/test_hostile_folders.py::test_preflight_lists_everything_dvc_cannot_hash"),
    ("preflight reads params.yaml as DVC does (YAML 1.2)", "stages/preflight.py",
     '    return parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}',
     '    import yaml; return yaml.safe_load(path.read_text(encoding="utf-8")) or {}',
     "tests/test_presets.py::test_preflight_reads_params_yaml_as_dvc_does"),
    ("prepare.image_sizes is bounded", "stages/prepare.py", "MAX_IMAGE_SIZE = 2048", "MAX_IMAGE_SIZE = 4096",
     "tests/test_prepare.py::test_image_sizes_have_an_upper_bound_that_names_the_key"),
    ("identical bytes under two classes are rejected", "stages/balance.py",
     'if p.cross_class_duplicates == "reject":', "if False:",
     "tests/test_balance.py::test_identical_bytes_under_two_classes_are_rejected_in_both_input_forms"),
    ("a balance param the rule does not use is said out loud", "stages/data/balance_params.py",
     'if p.select != "names" and p.class_names:', "if False:",
     "tests/test_balance.py::test_a_param_the_rule_does_not_use_is_said_out_loud"),
    ("a bug inside decoding fails the stage", "stages/data/verify.py", "    except BadImage as err:",
     "    except Exception as err:", "tests/test_balance.py::test_a_bug_inside_decoding_fails_instead_of_skipping_images"),
    ("a skipped file is reported with the error type", "stages/data/images.py",
     '    return BadImage(f"{verb}: {type(err).__name__}: {message}")', '    return BadImage(f"{verb}: {message}")',
     "tests/test_balance.py::test_each_skipped_file_is_reported_with_the_error_type_and_message"),
    ("a metric in one report only disagrees", "stages/compare_reports.py", "dict.fromkeys([*ma, *mb])",
     "[m for m in ma if m in mb]",
     "tests/test_compare_reports.py::test_a_metric_missing_from_one_report_disagrees_and_names_the_report_that_has_it"),
    ("the projection names the benchmarks' machine and date", "stages/planning/runtime.py",
     "rows[0].get('machine', '?')", "'?'",
     "tests/test_runtime.py::test_the_committed_benchmarks_name_their_machine_and_date"),
    ("the report's best model follows report.primary_metric", "stages/report.py",
     'stats[n][primary]["mean"]', 'stats[n]["accuracy"]["mean"]',
     "tests/test_report.py::test_primary_metric_names_the_best_model"),
    ("McNemar p-values are Holm-corrected within a run", "stages/analysis/report_stats.py",
     'zip(keys, over_runs.holm([tests[k]["p_value"] for k in keys]))', 'zip(keys, [tests[k]["p_value"] for k in keys])',
     "tests/test_report.py::test_mcnemar_is_holm_corrected_across_the_pairs_of_each_run"),
]


def plant(path: Path, before: str, after: str) -> str:
    """Replace the first occurrence of ``before`` in ``path``; returns the original text."""
    text = path.read_text(encoding="utf-8")
    if before not in text:
        sys.exit(f"{path}: the line to break is gone ({before!r}): update FAULTS")
    path.write_text(text.replace(before, after, 1), encoding="utf-8")
    return text


def failure_line(output: str) -> str:
    """pytest's first assertion line, else its FAILED/ERROR summary line."""
    lines = output.splitlines()
    first = next((ln for ln in lines if ln.startswith("E ")), None) or \
        next((ln for ln in lines if ln.startswith(("FAILED", "ERROR"))), "")
    return first[2:].strip()[:200] if first.startswith("E ") else first[:200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="plant only the faults whose promise contains this text")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    faults = [f for f in FAULTS if not args.only or args.only in f[0]]
    rows = []
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        work = Path(tmp) / "repo"
        copy_repo(work)
        for promise, rel, before, after, test in faults:
            original = plant(work / rel, before, after)
            try:
                proc = subprocess.run([sys.executable, "-m", "pytest", test, "-x", "-q", "-p", "no:cacheprovider"],
                                      cwd=work, capture_output=True, text=True, timeout=900)
            finally:
                (work / rel).write_text(original, encoding="utf-8")
            caught = proc.returncode == 1  # tests ran and failed (not 4/5: no such test)
            rows.append({"promise": promise, "file": rel, "test": test, "caught": "yes" if caught else "no",
                         "failure": failure_line(proc.stdout) if caught else f"exit {proc.returncode}"})
            print(f"{'caught ' if caught else 'MISSED '} {promise}: {rows[-1]['failure']}", flush=True)
    where, today = machine(), date.today().isoformat()
    write_csv(args.out, [{**row, "machine": where, "date": today} for row in rows])
    missed = [r["promise"] for r in rows if r["caught"] != "yes"]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} planted faults caught; wrote {args.out}")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
