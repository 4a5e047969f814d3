"""Stage `family@<model>`: the fingerprint of the code a model's family module runs.

Usage: ``python -m stages.family <model>``. Writes ``data/families/<model>.json``: the family
name and the sha256 of its module (``stages/models/<family>.py``) and of every local module it
imports (stages/core/code_deps.py). The registry imports a family module by name at run time,
which DVC cannot see, so `features@<model>` and `train@<model>-...` depend on this file
instead of on the whole ``stages/models/`` folder: editing one family's module changes only
that family's fingerprint, and DVC re-runs only the runs of the models that use it. This stage
itself re-runs on any change in the folder; it reads files and imports nothing heavy (< 1 s).

Params: ``models.<model>.family``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from stages.core.code_deps import local_imports
from stages.core.errors import ParamError, run_stage
from stages.core.files import write_json
from stages.core.layout import family_path
from stages.core.params import matrix_stage_params
from stages.models import available_models


def fingerprint(family: str, root: str | Path = ".") -> dict:
    """{"family", "files": {path: sha256}} of ``stages.models.<family>`` and its local imports."""
    files = sorted(local_imports(f"stages.models.{family}", root))
    return {"family": family,
            "files": {f: hashlib.sha256((Path(root) / f).read_bytes()).hexdigest() for f in files}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.family")
    parser.add_argument("model", help="a key of the `models` section of params.yaml")
    name = parser.parse_args(argv).model
    params = matrix_stage_params(f"family@{name}", f"models.{name}", f"is {name!r} a key of models?")
    models = params.get("models") or {}
    entry = models.get(name)
    if not isinstance(entry, dict):
        raise ParamError(f"models.{name}", "no such model in params.yaml")
    family = entry.get("family")
    if family not in available_models():
        raise ParamError(f"models.{name}.family",
                         f"unknown model family {family!r}; available: {', '.join(available_models())}")
    out, print_ = family_path(name), fingerprint(family)
    write_json(out, {"model": name, **print_})
    print(f"family@{name}: {family}, {len(print_['files'])} files -> {out}")


if __name__ == "__main__":
    run_stage(main)
