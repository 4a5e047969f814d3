"""Check an experiment before running it (not a DVC stage).

    python -m stages.preflight                          # params.yaml as `dvc repro` reads it
    python -m stages.preflight +experiment=dogs13       # as `dvc exp run -S '+experiment=dogs13'` composes it
    python -m stages.preflight +experiment=products7 'study.seeds=[0,1]' --params-only
    python -m stages.preflight --write                  # regenerate params.yaml from conf/ (`make params`)

Every stage's params are validated by that stage's own parser, all at once, so a
typo in a preset fails in seconds instead of after an hour of training. Unless
--params-only, it also checks what a run needs on disk: the dataset folder (and
labels CSV) and, by building each model, its pretrained weights in the offline
caches. With overrides (Hydra syntax, as given to `dvc exp run -S`), params come
from conf/ composed exactly as DVC composes them. When the params are valid it prints the
projected time of every stage (stages/planning/runtime.py: from the benchmarks' measured rates,
with the machine and date they were measured on), counting the dataset's images where the
params leave the numbers to the data.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path


from stages.core.errors import DataError, ParamError, PipelineError

PARAMS_FILE = Path("params.yaml")
CONF_DIR, CONFIG_NAME = Path("conf"), "config"  # DVC's defaults (hydra.config_dir / config_name)
# The datasets a stage writes itself (stages/<name>.py -> data/raw/<name>), for `embedded`.
EMBEDDED_DATASETS = ("digits",)
SECTIONS = ("embedded", "balance", "split", "prepare", "study", "train", "models", "predict", "evaluate", "report", "explain")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # becomes train@<name> and file names


def compose(overrides: list[str], output: Path) -> None:
    """Write params composed from conf/ with ``overrides``, through DVC's own composition."""
    from dvc.utils.hydra import compose_and_dump

    if not (CONF_DIR / f"{CONFIG_NAME}.yaml").is_file():
        raise ParamError("conf", f"{CONF_DIR / CONFIG_NAME}.yaml not found: run from the repository root")
    try:
        compose_and_dump(output, str(CONF_DIR.resolve()), None, CONFIG_NAME, str(Path.cwd()), overrides)
    except Exception as err:  # hydra's composition errors: unknown preset, bad override syntax, ...
        raise ParamError(" ".join(overrides) or "conf", f"cannot compose: {err}") from err


def param_checks(params: dict) -> list[tuple[str, callable]]:
    """(label, check) pairs: each stage's own validation of the params it reads."""
    from stages import balance, evaluate, explain, prepare, report, split, train
    from stages.core.params import study_percents, study_seeds
    from stages.models import check_options

    def sizes() -> list[int]:
        return prepare.parse_params(params.get("prepare"))["image_sizes"]

    checks = [
        ("params", lambda: _known_sections(params)),
        ("embedded", lambda: _check_embedded(params)),
        ("balance", lambda: balance.parse_params(params.get("balance"))),
        ("split", lambda: split.parse_params(params.get("split"))),
        ("prepare", sizes),
        ("study", lambda: (study_seeds(params.get("study")), study_percents(params.get("study")))),
        ("train", lambda: train.parse_run_params(params.get("train"))),
    ]
    models = params.get("models")
    if not isinstance(models, dict) or not models:
        checks.append(("models", lambda: _fail("models", "expected at least one model")))
        models = {}
    for name, values in models.items():
        def model(name=name, values=values):
            if not MODEL_NAME.match(str(name)):
                raise ParamError(f"models.{name}", "model names may hold only letters, digits, '_', '.', '-'")
            cfg = train.parse_model_params(name, values, sizes())
            check_options(cfg["family"], cfg["options"], f"models.{name}")
            return single_token_warning(name, cfg)
        checks.append((f"models.{name}", model))
    checks += [
        ("predict", lambda: train.parse_predict_params(params.get("predict"))),
        ("evaluate", lambda: evaluate.parse_eval_params(params.get("evaluate"))),
        ("report", lambda: report.parse_params(params)),
        ("explain", lambda: explain.parse_params(params)),
    ]
    return checks


def single_token_warning(name: str, cfg: dict) -> str | None:
    """A warning when a transformer's attention sees a single token at the model's image size:
    its softmax then always returns 1 and the model is no transformer where it matters."""
    from stages.models import attention_tokens

    tokens = attention_tokens(cfg["family"], cfg["image_size"], cfg["options"])
    if tokens is not None and tokens <= 1:
        return (f"WARNING: at {cfg['image_size']} px an attention layer of models.{name} ({cfg['family']}) sees "
                f"{tokens} token: its attention does nothing; raise models.{name}.image_size")
    return None


def asset_checks(params: dict) -> list[tuple[str, callable]]:
    """(label, check) pairs for what a run reads from disk: dataset and pretrained weights."""
    from stages import balance, prepare, train

    checks = [("dataset", lambda: _check_dataset(balance.parse_params(params["balance"])))]
    if ((params.get("balance") or {}).get("labels") or {}).get("csv"):  # a labels CSV: its image folder too, apart
        checks.append(("dataset images", lambda: _check_image_dir(balance.parse_params(params["balance"]))))
    sizes = prepare.parse_params(params["prepare"])["image_sizes"]
    for name, values in params["models"].items():
        checks.append((f"weights of models.{name}", lambda name=name, values=values:
                       _build(name, train.parse_model_params(name, values, sizes))))
    return checks


def _known_sections(params: dict) -> None:
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ParamError(unknown[0], f"unknown section; known: {', '.join(SECTIONS)}")


def _check_embedded(params: dict) -> None:
    """`embedded` lists datasets the pipeline writes (stages/<name>.py -> data/raw/<name>); a
    balance.source that one of them would write must have it listed, or nothing writes it."""
    names = params.get("embedded", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ParamError("embedded", f"expected a list of dataset names (e.g. [digits] or []), got {names!r}")
    for name in names:
        if name not in EMBEDDED_DATASETS:
            raise ParamError("embedded", f"{name!r} is not an embedded dataset; known: {', '.join(EMBEDDED_DATASETS)}")
    source = Path(str((params.get("balance") or {}).get("source", ""))).as_posix().rstrip("/")
    for name in sorted(set(EMBEDDED_DATASETS) - set(names)):
        if source == f"data/raw/{name}":
            raise ParamError("embedded", f"balance.source is {source}, written by the embedded@{name} stage, "
                             f"which `embedded` does not list: add {name!r} (`-S 'embedded=[{name}]'`)")


def _fail(key: str, message: str) -> None:
    raise ParamError(key, message)


def _check_dataset(cfg) -> str:
    """The dataset folder exists, and so does the labels CSV with its columns (``cfg``:
    balance's parsed params). Images themselves are checked by the balance stage."""
    source = Path(cfg.source).expanduser()
    if not source.is_dir():
        raise DataError(f"dataset folder {cfg.source} not found (balance.source); docs/studies.md "
                        "says where each study's dataset goes")
    from stages.data.image_files import entries_dvc_cannot_hash

    blocking = entries_dvc_cannot_hash(source)
    if blocking:
        listed = "\n  ".join(f"{rel}: {why}" for rel, why in blocking[:20])
        more = f"\n  ... and {len(blocking) - 20} more" if len(blocking) > 20 else ""
        raise DataError(f"{cfg.source} (balance.source): {len(blocking)} entries that `dvc repro` cannot hash "
                        "(it waits forever on a FIFO and stops on a socket or dangling link before any stage "
                        f"runs; a device it would read as data); move or delete them:\n  {listed}{more}")
    if cfg.labels is None:
        return f"{cfg.source}: {sum(1 for e in source.iterdir() if e.is_dir())} sub-folders"
    from stages.data.labels import read_table

    table = read_table(source, cfg.labels)  # the balance stage's reader: same checks, same messages
    return f"{source / cfg.labels.csv}: {len(table)} rows, columns {cfg.labels.file_column!r}, " \
           f"{cfg.labels.label_column!r}"


def _check_image_dir(cfg) -> str:
    """The labels CSV's image folder, as balance checks it (stages.data.labels.check_image_dir)."""
    from stages.data.labels import check_image_dir

    source = Path(cfg.source).expanduser()
    if not source.is_dir():
        raise DataError(f"dataset folder {cfg.source} not found (balance.source)")
    folder = check_image_dir(source, cfg.labels)
    return f"{folder}: {sum(1 for _ in folder.iterdir())} entries"


def _build(name: str, cfg: dict) -> str:
    """Build the model as train@<name> will: loads pretrained weights from the offline caches."""
    import keras

    from stages.models import build_model

    model = build_model(cfg["family"], 2, cfg["image_size"], cfg["options"], f"models.{name}")
    count = model.count_params()
    keras.backend.clear_session()
    return f"{cfg['family']} at {cfg['image_size']} px builds ({count / 1e6:.2f} M parameters)"


def run_checks(checks: list[tuple[str, callable]], known: list[PipelineError] = ()) -> list[PipelineError]:
    """Run every check, print one line each, and return the failures (not just the first). A check
    that fails on a problem already in ``known`` (its params did not parse) says so in one word."""
    failures = []
    for label, check in checks:
        try:
            detail = check()
        except PipelineError as err:
            if str(err) in {str(k) for k in known}:
                print(f"skip {label}: its params are invalid (above)", flush=True)
                continue
            failures.append(err)
            print(f"FAIL {label}: {err}", flush=True)
        else:
            print(f"ok   {label}" + (f": {detail}" if isinstance(detail, str) else ""), flush=True)
    return failures


def read_params(path: Path) -> dict:
    """params.yaml exactly as `dvc repro` hands it to the stages: DVC's own YAML 1.2 loader
    (PyYAML reads YAML 1.1, where ``1e-3`` is a string and ``yes`` is true)."""
    from dvc.utils.serialize import parse_yaml

    return parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides as for `dvc exp run -S`, "
                        "e.g. +experiment=dogs13 'study.seeds=[0,1]'")
    parser.add_argument("--params-only", action="store_true", help="validate params only (no dataset, no weights)")
    parser.add_argument("--write", action="store_true", help=f"write the composed params to {PARAMS_FILE}")
    args = parser.parse_args(argv)

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = PARAMS_FILE
            if args.overrides or args.write:
                path = PARAMS_FILE if args.write else Path(tmp) / "params.yaml"
                compose(args.overrides, path)
                print(f"composed conf/ with {args.overrides or 'no overrides'} -> "
                      f"{PARAMS_FILE if args.write else 'a temporary params file'}")
            params = read_params(path)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code

    failures = run_checks(param_checks(params))
    if not args.params_only:  # the data and weights too, whatever the params' problems: all in one run
        failures += run_checks(asset_checks(params), known=failures)
    else:
        print("skip dataset and pretrained weights (--params-only): not checked", flush=True)
    if failures:
        print(f"preflight: {len(failures)} problem(s)", file=sys.stderr)
        # A params problem (exit 2) is reported over a data one (exit 3): fix params first.
        return ParamError.exit_code if any(isinstance(f, ParamError) for f in failures) else failures[0].exit_code
    print(projection(params, scan=not args.params_only), flush=True)
    print("preflight: ok" + (" (params only)" if args.params_only else ""))
    return 0


def projection(params: dict, scan: bool) -> str:
    """The projected time of each stage (valid params), or why there is none."""
    from stages import balance, split, train
    from stages.planning import runtime

    cfg = balance.parse_params(params["balance"])
    found = None
    try:
        if scan:
            from stages.data.candidates import find_candidates, source_root

            found = {c: len(files) for c, files in find_candidates(source_root(cfg), cfg).files.items()}
        counts = runtime.counts_from_params(params["balance"], split.parse_params(params["split"])["sizes"], found)
    except PipelineError as err:  # e.g. fewer images than the split asks for: balance and split will say
        return f"projected time: cannot count the images ({err})"
    if counts is None:
        return "projected time: the image counts depend on the dataset (balance.select all or " \
               "images_per_class min): run preflight without --params-only"
    sizes = params["prepare"]["image_sizes"]
    models = {name: train.parse_model_params(name, values, sizes) for name, values in params["models"].items()}
    try:
        figures = runtime.load_figures()
    except (FileNotFoundError, KeyError, ValueError, IndexError, ZeroDivisionError) as err:
        return f"projected time: no benchmark figures ({err})"
    rows = runtime.project(params, models, train.parse_run_params(params["train"]), counts, figures)
    return f"projected time of each stage ({counts['classes']} classes, {counts['train']}/{counts['val']}/" \
           f"{counts['test']} train/val/test images):\n" + runtime.format_projection(rows, figures)


if __name__ == "__main__":
    sys.exit(main())
