"""Benchmark: how fast does each model of each experiment train and predict on this machine?

For the default experiment and each preset (conf/experiment/*.yaml), composes its params exactly
as `dvc exp run [-S '+experiment=<preset>']` does, builds every model of its `models` section
through the registry and compiles it as `train` does, then times, on random uint8 images at the
model's image size and batch size:

  - training images/s (model.fit steps; the first, graph-tracing step is excluded),
  - inference images/s (model.predict at the training batch size),
  - for a frozen base (what `features@<model>` caches): the head's training images/s on features.

Each row carries a key for the architecture (stages/planning/runtime.py model_key), the machine and the
date. `python -m stages.preflight [overrides]` projects every stage of a composed experiment
from these rates, benchmarks/pipeline.csv (stage fixed costs) and benchmarks/memory.csv (data
stages); this script prints that projection for each experiment it measured.

Pretrained weights cannot be downloaded offline, so models are built with random
weights: the same architecture, hence the same compute, and `trainable` is kept as
in the preset (a frozen base trains only its head; ViT is fully fine-tuned).

    python benchmarks/study_runtime.py [--presets default dogs13 products7] [--steps N] [--warmup N] [--seconds S]

Results are written to benchmarks/study_runtime.csv (one row per experiment x model). About
10 minutes on 2 CPU cores, most of it ViT-B/16.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import ROOT, machine, write_csv  # (standard library only)

sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import stages  # noqa: E402,F401  (first: its TensorFlow start-up is quiet, as in the stages)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402

from stages import split  # noqa: E402
from stages.models import build_model, count_params, random_init_options  # noqa: E402
from stages.planning import runtime  # noqa: E402
from stages.preflight import compose  # noqa: E402
from stages.train import parse_model_params, parse_run_params  # noqa: E402
from stages.training.distribute import pick_strategy  # noqa: E402
from stages.training.fit import compile_for_training  # noqa: E402
from stages.training.frozen import split_at_head  # noqa: E402

OUT = Path(__file__).with_name("study_runtime.csv")
OVERHEAD = runtime.OVERHEAD_CSV
DEFAULT = "default"  # the default experiment: conf/ with no overrides
PRESETS = (DEFAULT, "dogs13", "dogs28", "products7")
# What a preset leaves to the data (`select: all`, `images_per_class: min`): the study datasets'
# image files per class (the Flipkart sample: 7 top-level categories of 150 images). The dogs
# presets verify all 120 breeds' 20,580 images before choosing.
STUDY_DATA = {"products7": {f"category_{i}": 150 for i in range(7)},
              "dogs13": {"all breeds": 20580}, "dogs28": {"all breeds": 20580}}


def preset_params(preset: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        compose([] if preset == DEFAULT else [f"+experiment={preset}"], Path(tmp) / "params.yaml")
        return yaml.safe_load((Path(tmp) / "params.yaml").read_text(encoding="utf-8"))


def split_sizes(preset: str, params: dict) -> dict:
    """{classes, candidates, train, val, test} as the balance and split stages would make them."""
    found = STUDY_DATA.get(preset)
    counts = runtime.counts_from_params(params["balance"], split.parse_params(params["split"])["sizes"],
                                        found if params["balance"]["select"] == "all" else None)
    if found and params["balance"]["select"] != "all":
        counts["candidates"], counts["candidates_known"] = sum(found.values()), True
    return counts


def random_init(name: str, family: str, options: dict) -> dict:
    """The preset's options with pretrained weights replaced by random init of the same architecture."""
    try:
        return random_init_options(family, options)
    except KeyError as err:
        sys.exit(f"models.{name}: {err} has no known architecture; add it to the {family} family's module")


def images_per_second(run, steps: int, batch: int) -> float:
    start = time.perf_counter()
    run(steps)
    return steps * batch / (time.perf_counter() - start)


def timed(run, batch: int, steps: int | None, warmup: int, seconds: float) -> tuple[float, int, float]:
    """(img/s, steps timed, seconds of the first call). The first call traces the graph, so it is
    never in the rate; its time is kept apart (a stage pays it once, whatever its size). The
    warm-up estimate sizes the timed window to ~`seconds` unless `steps` is given, since the
    models differ ~50x in speed (ViT-B/16 fine-tuning: ~1 img/s on 2 cores)."""
    start = time.perf_counter()
    run(1)
    first = time.perf_counter() - start
    if not steps:  # without warm-up steps there is no estimate: the minimum window
        steps = max(2, round(seconds * images_per_second(run, warmup, batch) / batch)) if warmup else 2
    elif warmup:
        run(warmup)
    return images_per_second(run, steps, batch), steps, first


def build(name: str, cfg: dict, classes: int, run: dict):
    with pick_strategy(run["strategy"]).scope():  # as train does (the default strategy on one CPU)
        model = build_model(cfg["family"], classes, cfg["image_size"], random_init(name, cfg["family"], cfg["options"]),
                            f"models.{name}")
        compile_for_training(model, cfg["optimizer"], cfg["learning_rate"], classes, run["jit_compile"])
    total, trainable = count_params(model)
    return model, trainable, total


def measure(name: str, cfg: dict, classes: int, run: dict, args) -> dict:
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model, trainable, total = build(name, cfg, classes, run)
    size, batch = cfg["image_size"], cfg["batch_size"]
    print(f"  {name}: built in {time.perf_counter() - start:.0f} s ({trainable:,} of {total:,} parameters "
          "trainable); timing training...", flush=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    labels = keras.utils.to_categorical(rng.integers(0, classes, batch), classes)
    # One batch repeated: the input pipeline is benchmarked separately (input_pipeline.py), compute is not.
    train_ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
    images_ds = tf.data.Dataset.from_tensors(images).repeat()

    def fit(steps):
        model.fit(train_ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)

    def predict(steps):
        model.predict(images_ds, steps=steps, verbose=0)

    train_rate, train_steps, train_first = timed(fit, batch, args.steps, args.warmup, args.seconds)
    print(f"  {name}: train {train_rate:.1f} img/s over {train_steps} steps; timing inference...", flush=True)
    infer_rate, infer_steps, infer_first = timed(predict, batch, args.steps, args.warmup, args.seconds)
    print(f"  {name}: inference {infer_rate:.1f} img/s over {infer_steps} steps "
          f"({time.perf_counter() - start:.0f} s in all)", flush=True)
    one = images[:1]
    model.predict_on_batch(one)  # traced once, as evaluate's warm-up does
    latencies = []
    for _ in range(5):
        start_one = time.perf_counter()
        model.predict_on_batch(one)
        latencies.append(time.perf_counter() - start_one)
    head_rate = head_train_rate(name, model, cfg, classes, run, labels, args)
    keras.backend.clear_session()  # ViT-B/16 and ResNet50 graphs are large: free them before the next model
    return {"train_img_per_s": train_rate, "infer_img_per_s": infer_rate, "head_train_img_per_s": head_rate,
            "train_first_step_s": train_first, "infer_first_step_s": infer_first,
            "latency_b1_s": sorted(latencies)[len(latencies) // 2], "trainable_params": trainable, "total_params": total}


def head_train_rate(name: str, model, cfg: dict, classes: int, run: dict, labels, args) -> float | None:
    """Training img/s of the head alone on features, as train runs a frozen base's cached
    features (stages/training/frozen.py); None where something before the head trains."""
    parts = split_at_head(model)
    if parts is None:
        return None
    extractor, head = parts
    compile_for_training(head, cfg["optimizer"], cfg["learning_rate"], classes, run["jit_compile"])
    shape = (cfg["batch_size"], *extractor.output.shape[1:])
    features = np.random.default_rng(0).standard_normal(shape).astype("float32")
    data = tf.data.Dataset.from_tensors((features, labels)).repeat()

    def fit(steps):
        head.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)

    rate, steps, _ = timed(fit, cfg["batch_size"], args.steps, args.warmup, min(args.seconds, 5.0))
    print(f"  {name}: head on features {rate:.0f} img/s over {steps} steps", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--steps", type=int, help="timed steps per measurement (default: ~--seconds worth)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="steps after the first (tracing) one, not counted; they size the window")
    parser.add_argument("--seconds", type=float, default=20.0, help="target length of each timed window")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--project-only", action="store_true",
                        help=f"measure nothing: recalibrate {OVERHEAD.name} from the committed CSVs and print the projections")
    args = parser.parse_args()
    os.chdir(ROOT)  # compose() reads conf/ relative to the working directory
    began = time.perf_counter()
    where, when = machine(), datetime.now(timezone.utc).date().isoformat()
    rows, cache, experiments = [], {}, {}
    for preset in args.presets:
        params = preset_params(preset)
        run = parse_run_params(params["train"])
        if run["deterministic"]:  # as train does; op determinism can cost speed
            tf.config.experimental.enable_op_determinism()
        if run["mixed_precision"]:
            keras.mixed_precision.set_global_policy("mixed_float16")
        counts = split_sizes(preset, params)
        classes = counts["classes"]
        print(f"{preset}: {classes} classes, {counts['train']}/{counts['val']}/{counts['test']} train/val/test images",
              flush=True)
        models = {name: parse_model_params(name, values, params["prepare"]["image_sizes"])
                  for name, values in params["models"].items()}
        experiments[preset] = (params, models, run, counts)
        for name, cfg in ([] if args.project_only else models.items()):
            key = runtime.model_key(cfg, run)
            # dogs13 and dogs28 share their models: only the head's width (class count) differs,
            # which changes the throughput negligibly, so reuse the rates and only recount parameters.
            if key in cache:
                model, trainable, total = build(name, cfg, classes, run)
                del model
                keras.backend.clear_session()
                result = {**cache[key], "trainable_params": trainable, "total_params": total}
                print(f"  {name}: same architecture as an earlier experiment, rates reused", flush=True)
            else:
                result = cache[key] = measure(name, cfg, classes, run, args)
            head = result["head_train_img_per_s"]
            rows.append({
                "experiment": preset, "model": name, "key": key, "family": cfg["family"],
                "image_size": cfg["image_size"], "batch_size": cfg["batch_size"],
                "trainable_params": result["trainable_params"], "total_params": result["total_params"],
                "train_img_per_s": round(result["train_img_per_s"], 2),
                "infer_img_per_s": round(result["infer_img_per_s"], 2),
                "head_train_img_per_s": "" if head is None else round(head, 1),
                "train_first_step_s": round(result["train_first_step_s"], 2),
                "infer_first_step_s": round(result["infer_first_step_s"], 2),
                "latency_b1_s": round(result["latency_b1_s"], 4),
                "cpu_count": os.cpu_count(), "tf_version": tf.__version__, "machine": where, "date": when,
            })
    if not args.project_only:
        write_csv(args.out, rows, lineterminator="\n")
    else:
        with OUT.open(newline="") as f:
            rows = [{**r, **{k: float(r[k]) for k in ("train_img_per_s", "infer_img_per_s", "trainable_params",
                                                      "total_params")}} for r in csv.DictReader(f)]
    print(f"\n{'experiment':<10} {'model':<13} {'trainable/total M':>17} {'train img/s':>11} {'infer img/s':>11} "
          f"{'head img/s':>10}")
    for r in rows:
        params_m = f"{r['trainable_params'] / 1e6:.2f}/{r['total_params'] / 1e6:.2f}"
        print(f"{r['experiment']:<10} {r['model']:<13} {params_m:>17} {r['train_img_per_s']:>11.1f} "
              f"{r['infer_img_per_s']:>11.1f} {r['head_train_img_per_s'] or '-':>10}")
    if args.out == OUT:  # the projection reads the committed CSVs
        if DEFAULT in experiments:
            calibrate(*experiments[DEFAULT])
        figures = runtime.load_figures()
        for preset, (params, models, run, counts) in experiments.items():
            print(f"\nprojected: {preset}\n" + runtime.format_projection(
                runtime.project(params, models, run, counts, figures), figures))
    wrote = f"wrote {OVERHEAD.name}" if args.project_only else f"wrote {args.out}"
    print(f"\n{where}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, {when}; took "
          f"{(time.perf_counter() - began) / 60:.1f} min; {wrote}")


def calibrate(params: dict, models: dict, run: dict, counts: dict) -> None:
    """What train, evaluate and explain stages cost beyond the rates (model files, dvclive, epoch
    callbacks): the default experiment's projection against its measured stages
    (benchmarks/pipeline.csv), written to benchmarks/stage_overhead.csv."""
    figures = runtime.load_figures(overhead=False)
    with runtime.PIPELINE_CSV.open(newline="") as f:
        stages = list(csv.DictReader(f))
    measured = {r["stage"]: float(r["seconds"]) for r in stages}
    overhead = runtime.calibrate(runtime.project(params, models, run, counts, figures), measured)
    basis = f"median over models of {runtime.PIPELINE_CSV.name} minus the projection, default experiment"
    write_csv(OVERHEAD, [{"stage": kind, "seconds": round(s, 1), "basis": basis, "machine": stages[0]["machine"],
                          "date": stages[0]["date"][:10]} for kind, s in overhead.items()], lineterminator="\n")
    print("\nstage overhead beyond the rates: " + ", ".join(f"{k} {v:.1f} s" for k, v in overhead.items())
          + f" -> {OVERHEAD.name}")


if __name__ == "__main__":
    main()
