"""What the documentation shows that a committed file already knows, rendered from that file.

Nothing here holds a figure: the parameter reference comes from the params schemas (pydantic models
next to the code that reads each section), the families' ``DEFAULTS`` and the comments of ``conf/``;
the benchmark tables from ``benchmarks/*.csv``; the test counts from ``pytest --collect-only``; the
studies' projected run times from preflight's own projection (``stages/planning/runtime.py``).

``docs/hooks.py`` (an MkDocs hook) replaces each ``<!-- gen:NAME [ARG] -->`` marker of a page by
:func:`render` of it, at build time. ``python docs/generate.py readme`` rewrites the README's
generated block (the two commands' run times), which ``tests/test_docs.py`` checks is current.
"""

from __future__ import annotations

import ast
import csv
import importlib
import inspect
import re
import subprocess
import sys
import typing
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
MARKER = re.compile(r"<!-- gen:([a-z_]+)(?: ([^>]*?))? -->")

# --- small helpers ----------------------------------------------------------------------------


def rows(name: str) -> list[dict]:
    with (BENCH / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def table(header: list[str], body: list[list]) -> str:
    """A Markdown table; ``|`` inside a cell escaped."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in body]
    return "\n".join(lines)


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def measured_on(row: dict) -> str:
    """'AMD EPYC, 2 cores, 2026-12-03' from a benchmark row's machine, cores and date columns."""
    cores = row.get("cores") or row.get("cpu_count")
    parts = [row.get("machine") or "", f"{cores} cores" if cores else "", (row.get("date") or "")[:10]]
    return ", ".join(p for p in parts if p)


# --- the parameter reference ------------------------------------------------------------------

# Each params section and the schema that validates it (the stage's own parser uses the same class).
SECTIONS = [
    ("balance", "stages.data.balance_params", "BalanceParams"),
    ("split", "stages.split", "Split"),
    ("prepare", "stages.prepare", "Prepare"),
    ("study", "stages.core.params", "Study"),
    ("train", "stages.training.fit", "Run"),
    ("predict", "stages.training.fit", "Predict"),
    ("evaluate", "stages.evaluate", "Evaluate"),
    ("report", "stages.report", "Report"),
    ("explain", "stages.explain", "Explain"),
    ("models.<name>", "stages.training.fit", "ModelTraining"),
]


def yaml_comments(path: Path, prefix: str = "") -> dict[str, str]:
    """dotted key -> its comment in a conf/ YAML file: the comment lines right above the key and the
    comment at the end of its line (flow mappings' inner keys have none)."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^(\s*)([A-Za-z_][\w.-]*):(.*)$", raw)
        if not match:
            pending = []
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        inline = ""
        value_part = rest
        if "#" in rest and not re.search(r"""["'][^"']*#[^"']*["']""", rest):
            value_part, inline = rest.split("#", 1)
        dotted = ".".join([prefix, *[k for _, k in stack]] if prefix else [k for _, k in stack])
        text = " ".join([*pending, inline.strip()]).strip()
        if text:
            found[dotted] = text
        pending = []
        del value_part
    return found


@lru_cache(maxsize=None)
def conf_comments() -> dict[str, str]:
    """Comments of conf/config.yaml, by dotted key (conf/models/*.yaml's comments speak of one model's
    value, not of the key: they are not used)."""
    return yaml_comments(REPO / "conf" / "config.yaml")


MEANINGS = Path(__file__).with_name("params_meanings.yaml")


@lru_cache(maxsize=None)
def meanings() -> dict[str, str]:
    """docs/params_meanings.yaml: the meaning of a key that no description or comment gives."""
    import yaml

    return yaml.safe_load(MEANINGS.read_text(encoding="utf-8")) or {}


def source_comments(cls: type) -> dict[str, str]:
    """field -> the comment beside it (or on the lines above it) in the class's source."""
    found, pending = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^\s+(\w+)\s*:", line)
        if match and not stripped.startswith(("def ", "@", "model_config")):
            inline = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            text = " ".join([*pending, inline]).strip()
            if text:
                found[match.group(1)] = text
        pending = []
    return found


def type_name(annotation, metadata=()) -> str:
    """A reader's name for a field's type: ``int (>= 1)``, ``one of a | b``, ``list of int (1..100)``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    bounds = constraints(metadata)
    if origin is typing.Annotated:
        return type_name(args[0], (*args[1:], *metadata))
    if origin is typing.Literal:
        text = "one of " + " | ".join(f"`{a}`" for a in args)
    elif origin in (list, tuple):
        text = "list of " + type_name(args[0]) if args else "list"
    elif origin is dict:
        text = f"mapping {type_name(args[0])} -> {type_name(args[1])}" if args else "mapping"
    elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [type_name(a) for a in args if a is not type(None)]
        text = " or ".join(inner) + (" or null" if type(None) in args else "")
    elif annotation is typing.Any:
        checks = [getattr(m, "func", None) for m in metadata]
        names = [f"`{f.__name__}`" for f in checks if f is not None and hasattr(f, "__name__")]
        text = "checked by " + ", ".join(names) if names else "any"
    elif isinstance(annotation, type):
        text = {"str": "string", "int": "integer", "float": "number", "bool": "true/false"}.get(
            annotation.__name__, annotation.__name__)
    else:
        text = str(annotation).replace("typing.", "")
    return f"{text} ({bounds})" if bounds else text


def constraints(metadata) -> str:
    out = []
    flat = []
    for item in metadata:  # a Field(...) inside Annotated carries its bounds in .metadata
        flat += [item, *getattr(item, "metadata", [])] if type(item).__name__ == "FieldInfo" else [item]
    for item in flat:
        for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                out.append(f"{symbol} {getattr(item, attr)}")
        if getattr(item, "min_length", None):
            out.append(f"at least {item.min_length}" if item.min_length > 1 else "not empty")
    return ", ".join(out)


def default_text(field) -> str:
    from pydantic_core import PydanticUndefined

    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if hasattr(value, "model_dump"):
        return "(below)"
    return f"`{yaml_value(value)}`"


def yaml_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def lookup(params: dict, dotted: str):
    value = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return "—"
        value = value[part]
    return f"`{yaml_value(value)}`"


def schema_rows(prefix: str, cls: type, params: dict) -> list[list[str]]:
    """One row per key of ``cls`` (nested schemas flattened): key, type, schema default, value in
    params.yaml, meaning."""
    from pydantic import BaseModel

    comments, here = conf_comments(), source_comments(cls)
    out = []
    for name, field in cls.model_fields.items():
        key = f"{prefix}.{name}"
        meaning = field.description or comments.get(key) or here.get(name) or meanings().get(key, "")
        nested = [a for a in (field.annotation, *typing.get_args(field.annotation))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        shown = lookup(params, key) if not key.startswith("models.") else "(below)"
        if nested:
            optional = type(None) in typing.get_args(field.annotation)
            out.append([f"`{key}`", "mapping" + (" or null" if optional else ""), default_text(field), "(below)",
                        meaning])
            out += schema_rows(key, nested[0], params)
        else:
            out.append([f"`{key}`", type_name(field.annotation, field.metadata), default_text(field), shown, meaning])
    return out


def family_defaults() -> dict[str, list[tuple[str, object, str]]]:
    """family -> [(option, default, comment)] from ``DEFAULTS`` of each stages/models/<family>.py,
    read without importing the module (no Keras at build time)."""
    out = {}
    for path in sorted((REPO / "stages" / "models").glob("*.py")):
        if path.name.startswith("_"):
            continue
        source = path.read_text(encoding="utf-8")
        node = next(n for n in ast.parse(source).body if isinstance(n, ast.Assign)
                    and any(getattr(t, "id", None) == "DEFAULTS" for t in n.targets))
        lines = source.splitlines()
        options = []
        for key, value in zip(node.value.keys, node.value.values):
            line = lines[key.lineno - 1]
            comment = line.split("  # ", 1)[1].strip() if "  # " in line and node.lineno != node.end_lineno else ""
            options.append((key.value, ast.literal_eval(value), comment))
        out[path.stem] = options
    return out


def params_reference() -> str:
    """The parameter reference: every key of every section, with its type, default and meaning."""
    import yaml

    sys.path.insert(0, str(REPO))
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    comments = conf_comments()
    preflight_source = (REPO / "stages" / "preflight.py").read_text(encoding="utf-8")
    embedded = re.search(r"EMBEDDED_DATASETS = \((.*?)\)", preflight_source).group(1)
    parts = ["## `embedded`", "",
             table(["key", "type", "schema default", "params.yaml", "meaning"],
                   [["`embedded`", f"list of names, each one of {embedded.strip(',')}", "required",
                     lookup(params, "embedded"), comments.get("embedded", "")]]), ""]
    header = ["key", "type", "schema default", "params.yaml", "meaning"]
    for prefix, module, name in SECTIONS:
        cls = getattr(importlib.import_module(module), name)
        intro = comments.get(prefix, "") or inspect.cleandoc(cls.__doc__ or "")
        parts += [f"## `{prefix}`", "", f"Schema: `{module}.{name}`." + (f" {intro}" if intro else ""), "",
                  table(header, schema_rows(prefix, cls, params)), ""]
    parts += ["The default experiment's entries (`models:` of `params.yaml`):", "",
              "```yaml", yaml.safe_dump({"models": params["models"]}, sort_keys=False).strip(), "```", ""]
    parts += ["## Family options", "",
              "Every other key of a `models.<name>` entry is an option of its family, with these defaults "
              "(`DEFAULTS` in `stages/models/<family>.py`, checked by the family's `build`):", ""]
    for family, options in family_defaults().items():
        parts += [f"### `{family}`", "",
                  table(["option", "default", "meaning"],
                        [[f"`{k}`", f"`{yaml_value(v)}`", c or meanings().get(f"options.{k}", "")]
                         for k, v, c in options]), ""]
    return "\n".join(parts)


def reference_keys() -> set[str]:
    """Every key the reference documents, as generic dotted keys (``models.<name>.epochs``)."""
    text = params_reference()
    keys = set(re.findall(r"^\| `([\w.<>]+)` \|", text, re.MULTILINE))
    options = {f"models.<name>.{k}" for opts in family_defaults().values() for k, _, _ in opts}
    return keys | options


# --- benchmark tables -------------------------------------------------------------------------

def pipeline_table() -> str:
    """benchmarks/pipeline.csv grouped as a reader asks: data stages, fixed costs, training per model
    and size, evaluation, report, explanations, total."""
    data = rows("pipeline.csv")
    groups: dict[str, list[float]] = {}
    for r in data:
        stage = r["stage"]
        if stage == "total":
            continue
        match = re.match(r"train@(.+)-(\d+)-\d+$", stage)
        group = (f"train@{match.group(1)}-{match.group(2)}-* (each also predicts the test split)" if match else
                 "family@*, features@*" if stage.startswith(("family@", "features@")) else
                 "embedded@*, balance, split, prepare" if stage in ("balance", "split", "prepare")
                 or stage.startswith("embedded@") else stage)
        groups.setdefault(group, []).append(float(r["seconds"]))
    body = []
    for group, secs in groups.items():
        each = f"{sum(secs) / len(secs):.1f} ({min(secs):.1f}–{max(secs):.1f})" if len(secs) > 1 else ""
        body.append([group, len(secs), f"{sum(secs):.1f}", each])
    total = next(r for r in data if r["stage"] == "total")
    body.append(["**total**", sum(len(s) for s in groups.values()), f"**{float(total['seconds']):.0f} "
                 f"({minutes(float(total['seconds']))})**", ""])
    return (table(["stages", "runs", "seconds", "per run (min–max)"], body)
            + f"\n\nMeasured on {measured_on(total)}; Python {total['python']}, TensorFlow {total['tensorflow']} "
              "(`benchmarks/pipeline.csv`).")


def memory_table() -> str:
    data = rows("memory.csv")
    sizes = sorted({int(r["images"]) for r in data})
    body = []
    for stage in dict.fromkeys(r["stage"] for r in data):
        at = {int(r["images"]): r for r in data if r["stage"] == stage}
        cells = [f"{float(at[s]['main_peak_rss_mb']):.0f} / {float(at[s]['tree_peak_pss_mb']):.0f} MiB" for s in sizes]
        lo, hi = at[sizes[0]], at[sizes[-1]]
        ratio = (f"{float(hi['main_peak_rss_mb']) / float(lo['main_peak_rss_mb']):.2f} / "
                 f"{float(hi['tree_peak_pss_mb']) / float(lo['tree_peak_pss_mb']):.2f}")
        body.append([f"`{stage}`", *cells, ratio])
    header = ["stage", *[f"{s:,} images: RSS / tree PSS" for s in sizes], "ratio (RSS / PSS)"]
    return table(header, body) + f"\n\nMeasured on {measured_on(data[0])} (`benchmarks/memory.csv`)."


def input_pipeline_table() -> str:
    data = rows("input_pipeline.csv")
    body = [[r["model"], r["memmap_img_per_s"], r["in_memory_img_per_s"], r["ratio"],
             f"{r['stage_img_per_s']} on {r['stage_cpu_cores']}", r["stage_ratio"]] for r in data]
    return table(["model", "memmap img/s", "in RAM img/s", "memmap / RAM", "train stage img/s on cores",
                  "stage / memmap"], body) + "\n\n(`benchmarks/input_pipeline.csv`)"


def frozen_features_table() -> str:
    data = rows("frozen_features.csv")
    body = [[r["model"], r["epochs"], r["cached_s"], r["uncached_s"], f"**{float(r['speedup']):.1f}x**", r["method"]]
            for r in data]
    return (table(["model", "epochs", "cached s", "uncached s", "speed-up", "how"], body)
            + f"\n\n{data[0]['image_size']} px, {data[0]['train_images']} train + {data[0]['val_images']} val images; "
              f"{data[0]['cpu_count']} cores, {data[0]['date']}, TensorFlow {data[0]['tensorflow']} "
              "(`benchmarks/frozen_features.csv`).")


def gpu_training_table() -> str:
    data = rows("gpu_training.csv")
    body = [[r["config"], r["policy"], r["jit_compile"], r["loss_scale"], r["img_per_s"], r["speedup_vs_fp32"],
             r["peak_gpu_memory_mib"] or "n/a", r["device"]] for r in data]
    return table(["config", "policy", "XLA", "loss scaling", "img/s", "x fp32", "peak memory (MiB)", "device"],
                 body) + f"\n\n{data[0]['model']}, {data[0]['image_size']} px, {data[0]['date'][:10]} " \
                         "(`benchmarks/gpu_training.csv`)."


def study_runtime_table() -> str:
    data = rows("study_runtime.csv")
    body = [[r["experiment"], r["model"], r["image_size"], r["batch_size"], f"{int(r['trainable_params']):,}",
             r["train_img_per_s"], r["infer_img_per_s"], r["head_train_img_per_s"] or "—"] for r in data]
    return table(["experiment", "model", "px", "batch", "trainable params", "train img/s", "predict img/s",
                  "head on features img/s"], body) + f"\n\nMeasured on {measured_on(data[0])} " \
                                                      "(`benchmarks/study_runtime.csv`)."


def stage_overhead_table() -> str:
    data = rows("stage_overhead.csv")
    return table(["stage", "seconds beyond the rates", "measured on"],
                 [[r["stage"], r["seconds"], measured_on(r)] for r in data]) + "\n\n(`benchmarks/stage_overhead.csv`)"


def verdict_simulation_table() -> str:
    """The simulation's fixed-design rows: one row per method x test images x runs."""
    data = [r for r in rows("verdict_simulation.csv") if r["design"] == "fixed"]
    at = {(r["method"], r["N"], r["n"], float(r["delta"])): r for r in data}
    body = []
    for method, label in (("shipped", "three verdicts (shipped)"), ("t-test", "paired t over seeds (before)")):
        for size in sorted({r["N"] for r in data}, key=int):
            for n in sorted({r["n"] for r in data}, key=int):
                null = at[method, size, n, 0.0]
                power = " / ".join(f"{float(at[method, size, n, d]['better_right']):.2f}" for d in (0.01, 0.02, 0.05))
                equivalent = f"{float(null['equivalent']):.3f}" if null["equivalent"] else "n/a"
                body.append([label, f"{int(size):,}", n, f"{float(null['false_better_family']):.3f}", equivalent,
                             f"{float(null['coverage']):.3f}", power])
    studies = data[0]["studies"]
    return table(["method", "test images", "runs", 'false "better", 3 equal models', '"equivalent" when equal',
                  "95 % CI covers the truth", "power at 1 / 2 / 5 points"], body) + \
        f"\n\n{int(studies):,} synthetic studies per setting (`benchmarks/verdict_simulation.csv`)."


def split_simulation_table() -> str:
    """The re-drawn-split rows: one row per world x method x runs."""
    data = [r for r in rows("verdict_simulation.csv") if r["design"].startswith("split world")]
    at = {(r["design"], r["method"], r["n"], float(r["delta"])): r for r in data}
    body = []
    for design in dict.fromkeys(r["design"] for r in data):
        for method in dict.fromkeys(r["method"] for r in data):
            for n in sorted({r["n"] for r in data}, key=int):
                null = at[design, method, n, 0.0]
                power = " / ".join(f"{float(at[design, method, n, d]['better_right']):.2f}" for d in (0.02, 0.05))
                body.append([design.replace("split world, ", ""), method, n, f"{float(null['false_better_family']):.3f}",
                             f"{float(null['coverage']):.3f}", power])
    studies = data[0]["studies"]
    return table(["world", "method", "runs", 'false "better", 3 equal models', "95 % CI covers the truth",
                  "power at 2 / 5 points"], body) + \
        f"\n\n{int(studies):,} synthetic studies per setting, 180 test images of 1,200 " \
        "(`benchmarks/verdict_simulation.csv`)."


def scale_out_table(name: str = "scale_out.csv") -> str:
    """benchmarks/scale_out.py's rows: a plain `dvc repro` on one core, then the study over N one-core workers."""
    data = rows(name)
    reference = next((r for r in data if r["mode"] == "dvc repro"), None)
    one = next(r for r in data if r["mode"] == "stages.cluster")
    body = []
    for r in data:
        wall = float(r["wall_s"])
        cluster = r["mode"] == "stages.cluster"
        versus_repro = f"{float(reference['wall_s']) / wall:.2f}x" if reference else "—"
        phases = (f"{float(r['upstream_s']):.0f} / {float(r['dispatch_s']):.0f} / {float(r['finish_s']):.0f} s"
                  if cluster else "—")
        runs_speedup = f"{float(one['dispatch_s']) / float(r['dispatch_s']):.2f}x" if cluster else "—"
        per_run = f"{r['pull_s']} / {r['run_s']} / {r['push_s']} s" if cluster else "—"
        body.append(["`dvc repro`, one core" if not cluster else f"`stages.cluster`, {r['workers']} worker(s)",
                     r["runs"], minutes(wall), f"**{float(r['speedup']):.2f}x**" if cluster else "—", versus_repro,
                     phases, runs_speedup, per_run, r["quality"]])
    return table(["how", "runs", "wall", "speed-up vs 1 worker", "vs `dvc repro`",
                  "upstream / runs / finish", "runs phase speed-up", "per run: pull / train / push", "quality"],
                 body) + f"\n\n{data[0]['grid'].capitalize()} grid, measured on {measured_on({**data[0], 'cores': data[0]['cpus']})} " \
                         f"(`benchmarks/{name}`).{scale_out_reading(data)}"


def scale_out_reading(data: list[dict]) -> str:
    """What the widest study's row says: its speed-up, and how much of its wall time did not spread."""
    widest = max((r for r in data if r["mode"] == "stages.cluster"), key=lambda r: int(r["workers"]))
    if widest["workers"] == "1":
        return ""
    wall = float(widest["wall_s"])
    serial = float(widest["upstream_s"]) + float(widest["finish_s"])
    overhead = float(widest["pull_s"]) + float(widest["push_s"])
    return (f" With {widest['workers']} workers the study ran {float(widest['speedup']):.2f}x as fast as with one; "
            f"{serial / wall:.0%} of its wall time was the upstream and final stages, which run on the coordinator "
            f"whatever the worker count, and each run spent {overhead:.1f} s pulling its inputs and pushing its "
            f"outputs ({overhead / (overhead + float(widest['run_s'])):.0%} of its time on the worker).{beyond_linear(data, widest)}")


def beyond_linear(data: list[dict], widest: dict) -> str:
    """Why the runs phase sped up by more than the worker count, when it did: the runs themselves got faster."""
    one = next(r for r in data if r["mode"] == "stages.cluster" and r["workers"] == "1")
    ratio = float(one["dispatch_s"]) / float(widest["dispatch_s"])
    if ratio <= int(widest["workers"]):
        return ""
    return (f" The runs phase's {ratio:.2f}x exceeds {widest['workers']} because the mean run itself took "
            f"{float(widest['run_s']):.0f} s against {float(one['run_s']):.0f} s with one worker: the two studies ran "
            "one after the other on a shared machine, whose speed drifts.")


def last_changed(path: str) -> str:
    """The date (YYYY-MM-DD) of the last commit that touched ``path``; '' outside a git checkout."""
    proc = subprocess.run(["git", "log", "-1", "--format=%cs", "--", path], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def mutation_table() -> str:
    """The committed scores, each saying whether its module changed after it was measured (then it is stale)."""
    data = rows("mutation.csv")
    body = []
    for r in data:
        changed = last_changed(r["module"])
        state = f"**stale**: module changed {changed}" if changed > r["date"][:10] else "current"
        body.append([f"`{r['module']}`", r["mutants"], r["killed"], r["equivalent"], r["score"], r["tests"],
                     measured_on(r), state])
    return table(["module", "mutants", "killed", "equivalent", "score", "tests", "measured on", "since"],
                 body) + "\n\n(`benchmarks/mutation.csv`; *stale*: the module's last commit is later than the measurement)"


def planted_faults_table() -> str:
    data = rows("planted_faults.csv")
    caught = sum(r["caught"] == "yes" for r in data)
    return (f"{caught} of {len(data)} planted faults caught (`benchmarks/planted_faults.csv`, "
            f"{measured_on(data[0])}):\n\n"
            + table(["promise", "file", "test", "caught"],
                    [[r["promise"], f"`{r['file']}`", f"`{r['test']}`", r["caught"]] for r in data]))


# --- preflight's projection of each experiment ------------------------------------------------

@lru_cache(maxsize=None)
def projection(preset: str) -> str:
    """What `make check [EXP=<preset>]` prints as projected time, for the study datasets' counts."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(BENCH))
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    study_runtime = importlib.import_module("study_runtime")
    from stages.planning import runtime
    from stages.training.fit import parse_model_params, parse_run_params

    cwd = Path.cwd()
    os.chdir(REPO)  # compose() reads conf/ relative to the working directory
    try:
        params = study_runtime.preset_params(preset)
    finally:
        os.chdir(cwd)
    counts = study_runtime.split_sizes(preset, params)
    sizes = params["prepare"]["image_sizes"]
    models = {n: parse_model_params(n, v, sizes) for n, v in params["models"].items()}
    figures = runtime.load_figures()
    stages = runtime.project(params, models, parse_run_params(params["train"]), counts, figures)
    return "```\n" + runtime.format_projection(stages, figures) + "\n```"


def projection_total(preset: str) -> str:
    return re.search(r"^total\s+\d+\s+(\S+ \S+)", projection(preset), re.MULTILINE).group(1)


# --- the test suite ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def test_counts() -> tuple[int, int]:
    """(all tests, tests outside the slow mark), from one ``pytest --collect-only -m "not slow"``."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", "not slow"], cwd=REPO, capture_output=True, text=True, timeout=300)
    match = re.search(r"(\d+)/(\d+) tests? collected", proc.stdout) or re.search(r"(\d+) tests? collected", proc.stdout)
    if not match:
        raise RuntimeError(f"pytest --collect-only: no count in its output:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    fast = int(match.group(1))
    total = int(match.group(2)) if match.lastindex == 2 else fast
    return total, fast


def suite_time(which: str) -> dict:
    """The row of benchmarks/suite.csv for ``all`` (make test) or ``fast`` (make test-fast)."""
    return next(r for r in rows("suite.csv") if r["run"] == which)


def suite_table() -> str:
    total, fast = test_counts()
    body = []
    for r in rows("suite.csv"):
        body.append([f"`{r['command']}`", r["tests"], r.get("processes") or "1", minutes(float(r["seconds"])),
                     measured_on(r)])
    return (f"The suite holds **{total} tests** today, {fast} of them outside the `slow` mark "
            "(counted by `pytest --collect-only` when this page was built).\n\n"
            + table(["command", "tests run then", "test processes", "took", "measured on"], body)
            + "\n\n(`benchmarks/suite.csv`, written by `python benchmarks/suite.py`)")


# --- the committed report ---------------------------------------------------------------------

def report_summary() -> str:
    """The opening summary of the committed report, plots/report.md (what `dvc repro` wrote)."""
    text = (REPO / "plots" / "report.md").read_text(encoding="utf-8")
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0].strip()
    return "\n".join("> " + line if line else ">" for line in summary.splitlines())


def report_verdicts() -> str:
    text = (REPO / "plots" / "report.md").read_text(encoding="utf-8")
    verdicts = text.split("## Verdicts", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in verdicts.splitlines() if line.startswith("- "))


# --- the README's generated block -------------------------------------------------------------

README_BEGIN = "<!-- generated by docs/generate.py from benchmarks/pipeline.csv and benchmarks/suite.csv -->"
README_END = "<!-- /generated -->"


def readme_timings() -> str:
    pipe = next(r for r in rows("pipeline.csv") if r["stage"] == "total")
    every, fast = suite_time("all"), suite_time("fast")
    return (f"Measured: `make repro` {minutes(float(pipe['seconds']))} ({measured_on(pipe)}); "
            f"`make test` {minutes(float(every['seconds']))} for {every['tests']} tests "
            f"({measured_on(every)}); `make test-fast` {minutes(float(fast['seconds']))} for {fast['tests']}.")


def readme_block(text: str) -> str:
    return text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()


def write_readme() -> bool:
    path = REPO / "README.md"
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    new = head + README_BEGIN + "\n" + readme_timings() + "\n" + README_END + tail
    changed = new != text
    if changed:
        path.write_text(new, encoding="utf-8")
    return changed


# --- markers ----------------------------------------------------------------------------------

GENERATORS = {
    "params": lambda: params_reference(),
    "pipeline": lambda: pipeline_table(),
    "memory": lambda: memory_table(),
    "input_pipeline": lambda: input_pipeline_table(),
    "frozen_features": lambda: frozen_features_table(),
    "gpu_training": lambda: gpu_training_table(),
    "study_runtime": lambda: study_runtime_table(),
    "stage_overhead": lambda: stage_overhead_table(),
    "verdict_simulation": lambda: verdict_simulation_table(),
    "split_simulation": lambda: split_simulation_table(),
    "mutation": lambda: mutation_table(),
    "scale_out": lambda name="scale_out.csv": scale_out_table(name),
    "planted_faults": lambda: planted_faults_table(),
    "projection": lambda preset: projection(preset),
    "projection_total": lambda preset: projection_total(preset),
    "suite": lambda: suite_table(),
    "test_count": lambda: str(test_counts()[0]),
    "report_summary": lambda: report_summary(),
    "report_verdicts": lambda: report_verdicts(),
    "readme_timings": lambda: readme_timings(),
}


def render(name: str, arg: str | None = None) -> str:
    if name not in GENERATORS:
        raise KeyError(f"<!-- gen:{name} -->: no such generator; known: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name](arg) if arg else GENERATORS[name]()


def expand(markdown: str) -> str:
    """Every ``<!-- gen:NAME [ARG] -->`` marker of a page replaced by what it generates."""
    return MARKER.sub(lambda m: render(m.group(1), m.group(2)), markdown)


if __name__ == "__main__":
    if sys.argv[1:] == ["readme"]:
        print("README.md updated" if write_readme() else "README.md is current")
    elif len(sys.argv) > 1:
        print(render(sys.argv[1], *sys.argv[2:]))
    else:
        sys.exit("usage: python docs/generate.py readme | NAME [ARG]")
