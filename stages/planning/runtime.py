"""Projected run time of each stage of a composed experiment, from this repository's benchmarks.

No formula here is a guess: every figure comes from a benchmark CSV, each stating the machine
and date it was measured on, and the projection names them:

- ``benchmarks/study_runtime.csv``: per model architecture (a key over family, image size, batch
  size, architecture options and run flags; the weights do not change the compute) training and
  inference img/s, a frozen base's head training img/s on its features, and the first training
  and inference step's time (graph tracing: paid once per stage, whatever its size);
- ``benchmarks/pipeline.csv``: the default pipeline's measured stage times, for the fixed cost of
  a stage (DVC + Python start-up; + TensorFlow and a model build for a TensorFlow stage) and the
  report's time;
- ``benchmarks/memory.csv``: ``balance`` and ``prepare`` at two dataset sizes, whose difference is
  the cost per image and whose intercept the fixed cost;
- ``benchmarks/stage_overhead.csv``: what a train, evaluate or explain stage costs beyond the
  above (loading and saving models, dvclive, per-epoch callbacks, writing predictions), the
  median gap between the default pipeline's measured stages and their projection
  (:func:`calibrate`, run by benchmarks/study_runtime.py).

Early stopping can end a fit sooner: a fit's projection is its maximum (every epoch).
"""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from stages.core.layout import FULL
from stages.data.split_sizes import split_totals
from stages.models import random_init_options

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
RATES_CSV, PIPELINE_CSV, DATA_CSV, OVERHEAD_CSV = (
    BENCHMARKS / n for n in ("study_runtime.csv", "pipeline.csv", "memory.csv", "stage_overhead.csv"))
CALIBRATED = ("train", "evaluate", "explain")  # the stage kinds with a measured overhead


@dataclass(frozen=True)
class StageTime:
    stage: str          # a DVC stage name, or a group such as "train@vit-*"
    runs: int
    seconds: float      # per run (the largest where runs differ in size)
    total: float        # all runs
    note: str = ""


@dataclass(frozen=True)
class Figures:
    """What the benchmarks measured (see the module docstring); ``sources``: file -> machine, date."""
    rates: dict[str, dict]          # model key -> {train, infer, head} img/s (head: None if none),
                                    # {train_first, infer_first} s (the tracing first step),
                                    # latency: one image's predict_on_batch, s
    plain_stage_s: float            # a stage with no TensorFlow (family@<model>): DVC + Python
    tf_stage_s: float               # a TensorFlow stage with nothing to compute (features@, no cache)
    stage_s: dict[str, float]       # measured stages kept as they are (report, embedded@digits)
    data: dict[str, tuple[float, float]]  # balance/prepare -> (fixed s, s per image)
    sources: dict[str, str]
    overhead: dict[str, float] = field(default_factory=dict)  # train/evaluate/explain -> s per stage


def model_key(cfg: dict, run: dict) -> str:
    """The architecture a model's stages compute: pretrained or not, the same key."""
    described = {"family": cfg["family"], "image_size": cfg["image_size"], "batch_size": cfg["batch_size"],
                 "options": random_init_options(cfg["family"], cfg["options"]),
                 "mixed_precision": run["mixed_precision"], "jit_compile": run["jit_compile"]}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def caches_features(cfg: dict, run: dict) -> bool:
    """As features@<model> decides: a frozen, pretrained base whose features are cached."""
    options = cfg["options"]
    pretrained = random_init_options(cfg["family"], options) != options
    return bool(run["cache_frozen_features"]) and options.get("trainable") == "frozen" and pretrained


# Which benchmark writes each file.
WRITTEN_BY = {"study_runtime.csv": "study_runtime.py", "stage_overhead.csv": "study_runtime.py",
              "pipeline.csv": "pipeline.py", "memory.csv": "memory.py"}


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found: run python benchmarks/{WRITTEN_BY[path.name]}")
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _source(rows: list[dict], name: str) -> str:
    return f"{name}: {rows[0].get('machine', '?')}, {str(rows[0].get('date', '?'))[:10]}"


def load_figures(overhead: bool = True) -> Figures:
    """The committed benchmarks' figures (``overhead=False``: without stage_overhead.csv, as
    :func:`calibrate` needs them)."""
    rate_rows, stage_rows, data_rows = _rows(RATES_CSV), _rows(PIPELINE_CSV), _rows(DATA_CSV)
    rates = {}
    for r in rate_rows:
        head = float(r["head_train_img_per_s"]) if r.get("head_train_img_per_s") else None
        rates[r["key"]] = {"train": float(r["train_img_per_s"]), "infer": float(r["infer_img_per_s"]), "head": head,
                           "train_first": float(r["train_first_step_s"]), "infer_first": float(r["infer_first_step_s"]),
                           "latency": float(r["latency_b1_s"])}
    seconds = {r["stage"]: float(r["seconds"]) for r in stage_rows}
    plain = statistics.median(s for n, s in seconds.items() if n.startswith("family@"))
    tf_stage = statistics.median(s for n, s in seconds.items() if n.startswith("features@"))
    data = {}
    for stage in ("balance", "prepare"):
        points = sorted((int(r["images"]), float(r["wall_s"])) for r in data_rows if r["stage"] == stage)
        (n0, t0), (n1, t1) = points[0], points[-1]
        per_image = (t1 - t0) / (n1 - n0)
        data[stage] = (max(t0 - per_image * n0, 0.0), per_image)
    kept = {n: s for n, s in seconds.items() if n in ("report",) or n.startswith("embedded@")}
    sources = {"rates": _source(rate_rows, RATES_CSV.name), "stages": _source(stage_rows, PIPELINE_CSV.name),
               "data": _source(data_rows, DATA_CSV.name)}
    figures = Figures(rates, plain, tf_stage, kept, data, sources)
    if not overhead:
        return figures
    rows = _rows(OVERHEAD_CSV)
    return replace(figures, overhead={r["stage"]: float(r["seconds"]) for r in rows},
                   sources={**sources, "overhead": _source(rows, OVERHEAD_CSV.name)})


def calibrate(projected: list[StageTime], measured: dict[str, float]) -> dict[str, float]:
    """Per stage kind (train, evaluate, explain): the median over models of measured minus
    projected seconds, ``projected`` without overhead for the experiment ``measured`` ran
    (benchmarks/pipeline.csv: the default). Train compares the full-size runs, where the
    projection's per-run figure applies; never below zero."""
    gaps: dict[str, list[float]] = {kind: [] for kind in CALIBRATED}
    for row in projected:
        kind, _, model = row.stage.partition("@")
        if kind not in CALIBRATED:
            continue
        prefix = f"{kind}@{model.rstrip('*')}" + (f"{FULL}-" if kind == "train" else "")
        times = [s for name, s in measured.items() if name.startswith(prefix) or name == row.stage]
        if times:
            gaps[kind].append(statistics.median(times) - row.seconds)
    return {kind: max(0.0, statistics.median(g)) for kind, g in gaps.items() if g}


def counts_from_params(balance: dict, split_sizes: dict, found: dict[str, int] | None = None) -> dict | None:
    """{classes, candidates, train, val, test} as balance and split will make them, or None
    where the params leave it to the data and there is no ``found`` (class -> image files, from
    a scan of the dataset). balance verifies every candidate, chosen or not: without a scan the
    candidates are the chosen images only (a lower bound, said in ``candidates_known``)."""
    select, k = balance["select"], balance["images_per_class"]
    classes = {"names": len(balance.get("class_names") or ()), "fewest": balance.get("num_classes")}.get(select)
    classes = classes or (len(found) if found else None)
    if not isinstance(k, int):  # `min`: the smallest class's count
        k = min(found.values()) if found else None
    if not classes or not k:
        return None
    candidates = sum(found.values()) if found else classes * k
    return {"classes": classes, "candidates": candidates, "candidates_known": bool(found),
            **split_totals(split_sizes, classes * k)}


def project(params: dict, models: dict[str, dict], run: dict, counts: dict, figures: Figures) -> list[StageTime]:
    """Every stage's projected time (``models``: name -> parsed model params). A model the
    benchmarks have no rate for is listed with ``seconds`` NaN and a note saying so."""
    study, pr, ex = params["study"], params["predict"], params["explain"]
    seeds, percents = list(study["seeds"]), list(study["train_percent"])
    plain, tf_stage = figures.plain_stage_s, figures.tf_stage_s
    n = counts
    selected = n["train"] + n["val"] + n["test"]
    rows = [StageTime(f"embedded@{name}", 1, s, s) for name in params.get("embedded", [])
            if (s := figures.stage_s.get(f"embedded@{name}")) is not None]
    fixed, per_image = figures.data["balance"]
    verified = f"{n['candidates']} images verified" if n.get("candidates_known", True) else \
        f"at least {n['candidates']} images verified (every image in the folder is)"
    rows.append(_one("balance", fixed + per_image * n["candidates"], verified))
    rows.append(_one("split", plain))
    fixed, per_image = figures.data["prepare"]
    rows.append(_one("prepare", fixed + per_image * selected, f"{selected} images decoded"))
    explain_s = 0.0
    for name, cfg in models.items():
        rate = figures.rates.get(model_key(cfg, run))
        rows.append(_one(f"family@{name}", plain))
        if rate is None:
            rows.append(StageTime(f"train@{name}-*", len(seeds) * len(percents), float("nan"), float("nan"),
                                  "not benchmarked: python benchmarks/study_runtime.py"))
            continue
        cached = caches_features(cfg, run) and rate["head"]
        infer_stage = tf_stage + rate["infer_first"]  # a stage that predicts: start-up + tracing
        features = infer_stage + (n["train"] + n["val"]) / rate["infer"] if cached else tf_stage
        rows.append(_one(f"features@{name}", features, "the frozen base, once" if cached else ""))
        fits = []
        for p in percents:
            train_images = round(n["train"] * p / FULL)
            if cached:  # the head on cached features: tracing it costs next to nothing
                each = tf_stage + cfg["epochs"] * (train_images + n["val"]) / rate["head"]
            else:
                each = infer_stage + rate["train_first"] + cfg["epochs"] * (
                    train_images / rate["train"] + n["val"] / rate["infer"])
            # train then predicts the test split at the batch size, and times batch-1 latency.
            each += rate["infer_first"] + n["test"] / rate["infer"] + \
                (pr["latency_warmup"] + pr["latency_runs"]) * rate["latency"]
            fits += [each + figures.overhead.get("train", 0.0)] * len(seeds)
        patience = (cfg.get("early_stopping") or {}).get("patience")
        rows.append(StageTime(f"train@{name}-*", len(fits), max(fits), sum(fits),
                              f"at most {cfg['epochs']} epochs" if patience else f"{cfg['epochs']} epochs"))
        explain_s += rate["infer_first"] + ex["num_images"] * ex["shap_max_evals"] / rate["infer"]
    rows.append(_one("evaluate", plain, "metrics of every run's predictions, no TensorFlow"))
    rows.append(_one("report", figures.stage_s.get("report", plain)))
    rows.append(_one("explain", tf_stage + explain_s + figures.overhead.get("explain", 0.0), f"SHAP: {ex['num_images']} images x "
                                                      f"{ex['shap_max_evals']} evaluations per model"))
    return rows


def _one(stage: str, seconds: float, note: str = "") -> StageTime:
    return StageTime(stage, 1, seconds, seconds, note)


def format_duration(seconds: float) -> str:
    if seconds != seconds:  # NaN: not benchmarked
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_projection(rows: list[StageTime], figures: Figures) -> str:
    width = max(len(r.stage) for r in rows)
    lines = [f"{'stage':<{width}}  runs  {'each':>8}  {'total':>8}  note"]
    for r in rows:
        lines.append(f"{r.stage:<{width}}  {r.runs:>4}  {format_duration(r.seconds):>8}  "
                     f"{format_duration(r.total):>8}  {r.note}".rstrip())
    known = [r.total for r in rows if r.total == r.total]
    missing = " + the stages not benchmarked" if len(known) < len(rows) else ""
    lines.append(f"{'total':<{width}}  {sum(r.runs for r in rows):>4}  {'':>8}  {format_duration(sum(known)):>8}  "
                 f"(one stage at a time, as `dvc repro` runs them){missing}")
    lines.append("measured by: " + "; ".join(figures.sources.values()))
    return "\n".join(lines)
