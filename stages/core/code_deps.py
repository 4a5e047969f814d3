"""The repository's Python files a module runs: its static local imports, transitively.

dvc.yaml declares each stage's code as deps; tests/test_dvc_deps.py derives the same list
from the imports and fails when the two disagree. The one import that is not static -- the
registry importing a model's family module by name (stages/models/__init__.py) -- is covered
by the `family@<model>` stage, whose output hashes that module's files (stages/family.py).

Hand-written: modulefinder (stdlib) also follows third-party imports and executes nothing
but needs the whole environment importable; this reads only our own files, with ast.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT_PACKAGE = "stages"
# Package markers, not deps: they hold only a docstring and process-environment set-up that
# cannot change a result (tests/test_dvc_deps.py checks that), so editing them reruns nothing.
# stages/models/__init__.py is no marker: it is the model registry.
PACKAGES = ("core", "data", "training", "analysis", "attribution", "planning")
PACKAGE_MARKERS = ("stages/__init__.py", *(f"stages/{package}/__init__.py" for package in PACKAGES))
# ... and what they install: the filter of TensorFlow's start-up lines, which touches only
# stderr (tests/test_tf_startup.py).
PROCESS_SETUP = (*PACKAGE_MARKERS, "stages/core/tf_startup.py")


def module_file(module: str, root: Path) -> Path | None:
    """``stages.core.files`` -> ``stages/core/files.py`` (or a package's __init__.py); None if not ours."""
    if module != ROOT_PACKAGE and not module.startswith(ROOT_PACKAGE + "."):
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str) -> set[str]:
    """Module names ``path`` imports anywhere (function bodies too), relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def local_imports(module: str, root: str | Path = ".") -> set[str]:
    """Repository-relative paths of ``module``'s file and every local module it imports,
    transitively, parent packages included; without :data:`PROCESS_SETUP`."""
    root = Path(root)
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if path is None or name in seen:
            continue
        seen[name] = path
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo.extend(parents + sorted(_imported_modules(path, name)))
    files = {path.relative_to(root).as_posix() for path in seen.values()}
    return files - set(PROCESS_SETUP)
