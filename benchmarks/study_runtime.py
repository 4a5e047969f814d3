"""Benchmark: how long would each study preset take to train and evaluate on this machine?

For each preset (conf/experiment/*.yaml), composes its params exactly as
`dvc exp run -S '+experiment=<preset>'` does, builds every model of its `models`
section through the registry and compiles it as `train` does, then times, on
random uint8 images at the model's image size and batch size:

  - training images/s (model.fit steps; the first, graph-tracing step is excluded),
  - inference images/s (model.predict at the training batch size),

and projects the preset's run from its own split sizes:
  epoch = n_train / train_img_s + n_val / infer_img_s   (validation runs every epoch)
  fit   = epochs x epoch                                 (an early-stopped preset: the maximum)
  eval  = n_test / infer_img_s                           (batch-1 latency runs not included)
One-time costs (building, loading weights, graph tracing) are not projected.

Pretrained weights cannot be downloaded offline, so models are built with random
weights: the same architecture, hence the same compute, and `trainable` is kept as
in the preset (a frozen base trains only its head; ViT is fully fine-tuned).

    python benchmarks/study_runtime.py [--presets dogs13 products7] [--steps N] [--warmup N] [--seconds S]

Results are also written to benchmarks/study_runtime.csv (one row per preset x model).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402

from stages import balance, split  # noqa: E402
from stages.lib.distribute import pick_strategy  # noqa: E402
from stages.lib.training import compile_for_training  # noqa: E402
from stages.models import build_model, count_params, random_init_options  # noqa: E402
from stages.preflight import compose  # noqa: E402
from stages.train import parse_model_params, parse_run_params  # noqa: E402

OUT = Path(__file__).with_name("study_runtime.csv")
PRESETS = ("dogs13", "dogs28", "products7")
# What a preset leaves to the data (`select: all`, `images_per_class: min`): the study datasets' counts
# (the Flipkart sample: 7 top-level categories, the smallest with 150 images).
STUDY_DATA = {"products7": {"num_classes": 7, "images_per_class": 150}}


def preset_params(preset: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        compose([f"+experiment={preset}"], Path(tmp) / "params.yaml")
        return yaml.safe_load((Path(tmp) / "params.yaml").read_text(encoding="utf-8"))


def split_sizes(preset: str, params: dict) -> tuple[int, dict[str, int]]:
    """(classes, {split: images}) as the balance and split stages would make them."""
    bal = params["balance"]
    classes = bal["num_classes"] if bal["select"] == "fewest" else STUDY_DATA[preset]["num_classes"]
    per_class = bal["images_per_class"]
    per_class = STUDY_DATA[preset]["images_per_class"] if per_class == balance.MIN else per_class
    sizes = split.parse_params(params["split"])["sizes"]
    return classes, split.split_totals(sizes, classes * per_class)


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


def timed(run, batch: int, steps: int | None, warmup: int, seconds: float) -> tuple[float, int]:
    """(img/s, steps timed). The first call traces the graph, so it is never timed; the
    warm-up estimate sizes the timed window to ~`seconds` unless `steps` is given, since
    the models differ ~50x in speed (ViT-B/16 fine-tuning: ~1 img/s on 2 cores)."""
    run(1)
    if not steps:  # without warm-up steps there is no estimate: the minimum window
        steps = max(2, round(seconds * images_per_second(run, warmup, batch) / batch)) if warmup else 2
    elif warmup:
        run(warmup)
    return images_per_second(run, steps, batch), steps


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

    train_rate, train_steps = timed(fit, batch, args.steps, args.warmup, args.seconds)
    print(f"  {name}: train {train_rate:.1f} img/s over {train_steps} steps; timing inference...", flush=True)
    infer_rate, infer_steps = timed(predict, batch, args.steps, args.warmup, args.seconds)
    print(f"  {name}: inference {infer_rate:.1f} img/s over {infer_steps} steps "
          f"({time.perf_counter() - start:.0f} s in all)", flush=True)
    keras.backend.clear_session()  # ViT-B/16 and ResNet50 graphs are large: free them before the next model
    return {"train_img_per_s": train_rate, "infer_img_per_s": infer_rate, "trainable_params": trainable,
            "total_params": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--steps", type=int, help="timed steps per measurement (default: ~--seconds worth)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="steps after the first (tracing) one, not counted; they size the window")
    parser.add_argument("--seconds", type=float, default=20.0, help="target length of each timed window")
    args = parser.parse_args()
    os.chdir(ROOT)  # compose() reads conf/ relative to the working directory
    began = time.perf_counter()
    rows, cache = [], {}
    for preset in args.presets:
        params = preset_params(preset)
        run = parse_run_params(params["train"])
        if run["deterministic"]:  # as train does; op determinism can cost speed
            tf.config.experimental.enable_op_determinism()
        if run["mixed_precision"]:
            keras.mixed_precision.set_global_policy("mixed_float16")
        classes, n = split_sizes(preset, params)
        print(f"{preset}: {classes} classes, {n['train']}/{n['val']}/{n['test']} train/val/test images", flush=True)
        for name, values in params["models"].items():
            cfg = parse_model_params(name, values, params["prepare"]["image_sizes"])
            # dogs13 and dogs28 share their models: only the head's width (class count) differs,
            # which changes the throughput negligibly, so reuse the rates and only recount parameters.
            key = json.dumps(cfg, sort_keys=True, default=str)
            if key in cache:
                model, trainable, total = build(name, cfg, classes, run)
                del model
                keras.backend.clear_session()
                result = {**cache[key], "trainable_params": trainable, "total_params": total}
                print(f"  {name}: same model as an earlier preset, rates reused", flush=True)
            else:
                result = cache[key] = measure(name, cfg, classes, run, args)
            train_s, infer_s = result["train_img_per_s"], result["infer_img_per_s"]
            epoch = n["train"] / train_s + n["val"] / infer_s
            rows.append({
                "preset": preset, "model": name, "family": cfg["family"], "image_size": cfg["image_size"],
                "batch_size": cfg["batch_size"], "trainable_params": result["trainable_params"],
                "total_params": result["total_params"], "train_img_per_s": round(train_s, 2),
                "infer_img_per_s": round(infer_s, 2), "projected_epoch_seconds": round(epoch, 1),
                "projected_fit_minutes": round(cfg["epochs"] * epoch / 60, 2),
                "projected_eval_seconds": round(n["test"] / infer_s, 1), "epochs": cfg["epochs"],
                "early_stopping_patience": cfg["early_stopping"]["patience"],
                "cpu_count": os.cpu_count(), "tf_version": tf.__version__,
            })

    print(f"\n{'preset':<10} {'model':<13} {'trainable/total M':>17} {'train img/s':>11} {'infer img/s':>11} "
          f"{'epoch s':>8} {'epochs':>6} {'fit min':>8} {'eval s':>7}")
    for r in rows:
        params_m = f"{r['trainable_params'] / 1e6:.2f}/{r['total_params'] / 1e6:.2f}"
        # An early-stopped preset (products7) usually ends sooner: its fit time is the maximum.
        epochs = f"<={r['epochs']}" if r["early_stopping_patience"] else str(r["epochs"])
        print(f"{r['preset']:<10} {r['model']:<13} {params_m:>17} {r['train_img_per_s']:>11.1f} "
              f"{r['infer_img_per_s']:>11.1f} {r['projected_epoch_seconds']:>8.1f} {epochs:>6} "
              f"{r['projected_fit_minutes']:>8.1f} {r['projected_eval_seconds']:>7.1f}")
    with OUT.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__}; benchmark took "
          f"{(time.perf_counter() - began) / 60:.1f} min; wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
