"""dvc.yaml's code deps are the stages' imports, and a family's code is a per-model dep.

Every stage's Python deps in dvc.yaml must equal the local modules its command's module
imports (stages/core/code_deps.py); the family modules, imported by name at run time, reach
the per-model stages through `family@<model>`'s fingerprint (stages/family.py).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import yaml

from stages.core.code_deps import PACKAGE_MARKERS, local_imports
from stages.family import fingerprint
from stages.models import available_models
from stages.preflight import EMBEDDED_DATASETS

REPO = Path(__file__).resolve().parents[1]
REGISTRY = "stages/models/__init__.py"
FAMILY_DEP = "data/families/${item.model}.json"


def dvc_stages() -> dict:
    """dvc.yaml's stages; a `foreach` one (embedded@<name>) expanded for every dataset it can take."""
    stages = {}
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        if "foreach" not in stage:
            stages[name] = stage
            continue
        assert stage["foreach"] == "${embedded}", name
        for item in EMBEDDED_DATASETS:
            stages[f"{name}@{item}"] = yaml.safe_load(yaml.safe_dump(stage["do"]).replace("${item}", item))
    return stages


def stage_module(stage: dict) -> str:
    words = stage["cmd"].split()
    assert words[:3] == ["python", "-m", words[2]] and words[2].startswith("stages."), stage["cmd"]
    return words[2]


@pytest.mark.parametrize("name", sorted(dvc_stages()))
def test_declared_code_deps_are_the_imports(name):
    stage = dvc_stages()[name]
    deps = set(stage["deps"])
    declared = {d for d in deps if d.startswith("stages/") and d.endswith(".py")}
    imported = local_imports(stage_module(stage), REPO)
    folders = {d for d in deps if d.startswith("stages") and not d.endswith(".py")}
    imported = {f for f in imported if not any(f.startswith(folder + "/") for folder in folders)}
    assert declared == imported, (f"{name}: declared but not imported: {sorted(declared - imported)}; "
                                  f"imported but not declared: {sorted(imported - declared)}")
    if name == "family":  # the fingerprint hashes the family modules: the one stage on the folder
        assert folders == {"stages/models"}
    else:
        assert not folders, f"{name} depends on whole folders of code: {sorted(folders)}"


@pytest.mark.parametrize("name", sorted(n for n, s in dvc_stages().items() if "matrix" in s and n != "family"))
def test_each_run_depends_on_its_own_family_only(name):
    """A per-model stage that builds or loads a model depends on that model's family fingerprint."""
    stage = dvc_stages()[name]
    if REGISTRY in local_imports(stage_module(stage), REPO):
        assert FAMILY_DEP in stage["deps"], f"{name} lacks {FAMILY_DEP}"
        assert "stages/models" not in stage["deps"]


def test_stages_that_load_every_model_depend_on_every_fingerprint():
    for name, stage in dvc_stages().items():
        if "matrix" not in stage and REGISTRY in local_imports(stage_module(stage), REPO):
            assert "data/families" in stage["deps"], name


def test_editing_one_family_changes_only_its_fingerprint(tmp_path):
    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    before = {f: fingerprint(f, tmp_path) for f in available_models()}
    assert before["vit"]["files"].keys() >= {"stages/models/vit.py", REGISTRY, "stages/models/_common.py"}

    module = tmp_path / "stages/models/mobilenet_v2.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    after = {f: fingerprint(f, tmp_path) for f in available_models()}
    assert [f for f in before if before[f] != after[f]] == ["mobilenet_v2"]

    shared = tmp_path / "stages/models/_common.py"
    shared.write_text(shared.read_text() + "\n# an edit\n")
    assert all(fingerprint(f, tmp_path) != after[f] for f in available_models())


def test_imports_are_followed_into_function_bodies_and_relative_imports(tmp_path):
    pkg = tmp_path / "stages"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core/__init__.py").write_text("")
    (pkg / "core/a.py").write_text("from . import b\n")
    (pkg / "core/b.py").write_text("def f():\n    from stages.core.c import g\n")
    (pkg / "core/c.py").write_text("import os\ng = 1\n")
    (pkg / "core/unused.py").write_text("")
    (pkg / "main.py").write_text("from stages.core import a\n")
    assert local_imports("stages.main", tmp_path) == {
        "stages/main.py", "stages/core/a.py", "stages/core/b.py", "stages/core/c.py"}


def test_package_markers_hold_no_code_that_could_change_a_result():
    """They are left out of the deps, so they may only set environment defaults (log levels)
    and install the filter of TensorFlow's start-up lines (it touches stderr only)."""
    for rel in PACKAGE_MARKERS:
        body = ast.parse((REPO / rel).read_text()).body
        for node in body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            import_os = isinstance(node, ast.Import) and [a.name for a in node.names] == ["os"]
            call = isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            env_default = call and ast.unparse(node.value.func) == "os.environ.setdefault"
            # and the stderr filter of TensorFlow's start-up (tests/test_tf_startup.py)
            tf_startup = ast.unparse(node) in ("from stages.core import tf_startup", "tf_startup.install()")
            assert docstring or import_os or env_default or tf_startup, f"{rel}: {ast.unparse(node)}"


def _paths(entries) -> set[str]:
    """Paths of a dvc.yaml deps/outs/metrics/plots list (entries are strings or {path: options})."""
    return {e if isinstance(e, str) else next(iter(e)) for e in entries or []}


def _resolved(stage: dict, field: str, model: str, percent: int, seed: int) -> set[str]:
    subs = {"${item.model}": model, "${item.percent}": str(percent), "${item.seed}": str(seed)}
    out = set()
    for path in _paths(stage.get(field)):
        for key, value in subs.items():
            path = path.replace(key, value)
        out.add(path)
    return out


def test_per_run_paths_in_dvc_yaml_are_the_layout_module_paths():
    """The per-run paths are spelled in stages/core/layout.py and in dvc.yaml: they must agree."""
    from stages.core import layout

    model, percent, seed = "m", 25, 3
    stages = dvc_stages()
    train = {f for field in ("outs", "metrics", "plots") for f in _resolved(stages["train"], field, model, percent, seed)}
    curves = layout.curves_dir(model, seed, percent=percent).as_posix()
    assert train == {layout.model_path(model, seed, percent=percent).as_posix(),
                     layout.train_metrics_path(model, seed, percent=percent).as_posix(),
                     layout.train_cost_path(model, seed, percent=percent).as_posix(),
                     layout.predictions_path(model, seed, percent=percent).as_posix(),
                     layout.eval_cost_path(model, seed, percent=percent).as_posix(),
                     f"{curves}/metrics.json", f"{curves}/plots/metrics"}
    # One evaluate for every run: the folders holding each run's predictions and metrics.
    assert _paths(stages["evaluate"]["outs"]) == {layout.EVAL_METRICS.as_posix()}
    assert layout.PREDICTIONS.as_posix() in stages["evaluate"]["deps"]
    assert _resolved(stages["features"], "outs", model, percent, seed) == {layout.features_dir(model).as_posix()}
    assert _resolved(stages["family"], "outs", model, percent, seed) == {layout.family_path(model).as_posix()}
    assert layout.EXPLAIN_COST.as_posix() in _paths(stages["explain"]["outs"])
