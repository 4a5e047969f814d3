"""The test suite's own promises (docs/development.md): the fast subset, timeouts, warnings.

(That every test the docs name exists is checked by tests/test_docs.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


def collected(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, capture_output=True, text=True, check=True)
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}


@pytest.mark.slow  # collects the whole suite twice (imports TensorFlow twice): ~20 s
def test_the_fast_subset_leaves_out_every_repository_copy_test_and_nothing_else_unmarked():
    everything, fast = collected(), collected("-m", "not slow")
    slow = everything - fast
    assert fast and slow and fast < everything
    # Every test of a module that only works in repository copies is slow (marked by conftest) ...
    for module in ("tests/test_pipeline.py", "tests/test_experiments.py"):
        ids = {t for t in everything if t.startswith(module)}
        assert ids and ids <= slow, module
    # ... while pure-function tests stay in the edit loop.
    assert {t for t in everything if t.startswith("tests/test_subsets.py")} <= fast


def test_timeout_and_own_deprecations_are_configured(pytestconfig):
    assert int(pytestconfig.getini("timeout")) > 0  # pytest-timeout: a hang fails the test
    filters = pytestconfig.getini("filterwarnings")
    assert filters[-1] == "error::DeprecationWarning:stages"  # last wins: our own deprecations are errors


def test_the_committed_mutation_scores_cover_every_module_and_reach_the_target():
    """benchmarks/mutation.csv (written by benchmarks/mutation.py, not run in CI): every module the
    benchmark mutates has a row whose counts add up, a score >= 0.80 recomputed from them, and each
    mutant counted equivalent is listed with its reason in benchmarks/mutation_equivalent.csv."""
    import csv
    import re

    bench = REPO / "benchmarks"
    mutation = _benchmark_module("mutation")
    with (bench / "mutation.csv").open(newline="") as f:
        rows = {row["module"]: row for row in csv.DictReader(f)}
    modules = [m for group, _ in mutation.GROUPS for m in group]
    assert sorted(rows) == sorted(modules)
    equivalent = mutation.equivalents()
    survivors_md = (bench / "mutation_survivors.md").read_text(encoding="utf-8")
    for module, row in rows.items():
        n = {k: int(row[k]) for k in ("mutants", "killed", "survived", "timeout", "other", "equivalent")}
        assert n["killed"] + n["survived"] + n["timeout"] + n["other"] == n["mutants"] > 0, module
        assert n["equivalent"] <= n["survived"], module
        score = (n["killed"] + n["timeout"]) / (n["mutants"] - n["equivalent"])
        assert float(row["score"]) == pytest.approx(score, abs=5e-4) and score >= 0.80, (module, score)
        assert row["machine"] and re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["date"]), module
        listed = [name for name in equivalent if name.startswith(module[:-3].replace("/", ".") + ".")]
        assert len(listed) >= n["equivalent"], module
    for name, why in equivalent.items():
        assert why.strip(), name
        assert f"`{name}`" in survivors_md, f"{name} is listed equivalent but did not survive the last run"


def _benchmark_module(name: str):
    """benchmarks/<name>.py, imported as a module (its sibling common.py on the path)."""
    import importlib.util

    bench = REPO / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_benchmark", bench / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(bench))
    return module


def test_every_planted_fault_is_still_plantable_and_was_caught():
    """benchmarks/planted_faults.py breaks each guarantee with a one-line edit and runs its test (not in
    CI): each edit's line must still be in the code (else the fault list is stale), its test must exist,
    and the committed CSV must show every fault caught by its test."""
    import ast
    import csv

    faults = _benchmark_module("planted_faults").FAULTS
    with (REPO / "benchmarks" / "planted_faults.csv").open(newline="") as f:
        rows = {(row["promise"], row["test"]): row for row in csv.DictReader(f)}
    assert len(faults) >= 15
    for promise, rel, before, after, test in faults:
        assert before != after and before in (REPO / rel).read_text(encoding="utf-8"), (promise, rel)
        path, name = test.split("::")
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        assert name in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, test
        row = rows.get((promise, test))
        assert row and row["caught"] == "yes" and row["failure"], (promise, row)


def test_the_suite_runs_in_two_processes_and_an_expensive_shared_fixture_in_one():
    """pytest.ini asks pytest-xdist for two processes with loadgroup, and every test that takes a module- or
    session-scoped fixture starting processes (a repository copy, `dvc`, `mkdocs`) carries an xdist_group
    mark, so one process builds that fixture instead of each process building its own."""
    import ast
    import configparser

    parser = configparser.ConfigParser()
    parser.read(REPO / "pytest.ini")
    addopts = parser.get("pytest", "addopts").split()
    assert "--numprocesses=2" in addopts and "--dist=loadgroup" in addopts

    def marks(node) -> str:
        return ast.unparse(node) if node is not None else ""

    expensive = ("copy_repo(", "run(", "subprocess.")
    checked = 0
    for path in sorted((REPO / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_marks = "".join(marks(n.value) for n in tree.body if isinstance(n, ast.Assign)
                               and any(getattr(t, "id", "") == "pytestmark" for t in n.targets))
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        shared = {f.name for f in functions
                  if any("fixture" in marks(d) and ("'module'" in marks(d) or "'session'" in marks(d))
                         for d in f.decorator_list)
                  and any(call in ast.unparse(f) for call in expensive)}
        for test in (f for f in functions if f.name.startswith("test_")):
            if shared & {a.arg for a in test.args.args}:
                checked += 1
                grouped = "xdist_group" in module_marks + "".join(marks(d) for d in test.decorator_list)
                assert grouped, f"{path.name}::{test.name} takes a shared expensive fixture without an xdist_group"
    assert checked >= 4  # test_dvc_views' study (2) and test_docs' site (2) at least
