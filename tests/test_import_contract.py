"""The layers of stages/ are a checked rule: .importlinter's contracts (docs/development.md: Repository layout).

`lint-imports` runs here, so `make test` and CI check them; each contract is shown to fail on a
planted import, in a copy of stages/, so a contract that checks nothing cannot pass unnoticed.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.core.code_deps import PACKAGES

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"
LAYERS = "Stage modules on top, concern packages below, models and core at the bottom"
NO_TF = "No TensorFlow in core, data, analysis or the stages that train no model"


def lint(root: Path) -> subprocess.CompletedProcess:
    # The copy's stages/ must be the one analysed: it comes first on the path, nothing else does.
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(LINT), "--no-cache", "--no-logo"], cwd=root, env=env,
                          capture_output=True, text=True)


def layers() -> list[set[str]]:
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    rows = config["importlinter:contract:layers"]["layers"].strip().splitlines()
    return [{name.strip() for name in row.replace("|", ":").split(":")} for row in rows]


def test_the_import_contracts_hold():
    proc = lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 2 kept, 0 broken." in proc.stdout, proc.stdout


def test_the_layers_name_every_stage_module_and_every_package():
    """A new stage module or package outside the layers would be checked by nothing."""
    top, *below = layers()
    assert top == {p.stem for p in (REPO / "stages").glob("*.py")} - {"__init__"}
    packages = {p.parent.name for p in (REPO / "stages").glob("*/__init__.py")}
    assert set().union(*below) == packages
    # every package but the model registry is a marker, left out of dvc.yaml's deps
    assert set(PACKAGES) == packages - {"models"}


# (file, planted import, contract it breaks)
PLANTED = [
    ("stages/core/layout.py", "from stages import split", LAYERS),  # a package importing a stage
    ("stages/core/files.py", "from stages.data import images", LAYERS),  # core importing upwards
    ("stages/training/subsets.py", "from stages.data import selection", LAYERS),  # between siblings
    ("stages/models/_common.py", "from stages.training import fit", LAYERS),  # models below training
    ("stages/data/labels.py", "import tensorflow", NO_TF),
    ("stages/evaluate.py", "from stages.models import build_model", NO_TF),
]


@pytest.mark.parametrize("path,line,contract", PLANTED, ids=[p for p, _, _ in PLANTED])
def test_a_planted_import_breaks_its_contract(tmp_path, path, line, contract):
    shutil.copytree(REPO / "stages", tmp_path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / ".importlinter", tmp_path)
    planted = tmp_path / path
    planted.write_text(planted.read_text() + f"\n\ndef _planted():\n    {line}\n")
    proc = lint(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Contracts: 1 kept, 1 broken." in proc.stdout, proc.stdout
    assert f"{contract} BROKEN" in proc.stdout, proc.stdout
