"""Benchmark: what does computing a frozen base's features once save the train stage?

With ``trainable: frozen`` nothing before the head trains, so `train` can run the base
once over the train and val images and fit only the head on those features
(``train.cache_frozen_features``, stages/training/frozen.py). This benchmark times the
train stage's own ``train()`` -- its ``fit_time_s``, which for the cached path includes
computing the features -- with the flag on and off, for MobileNetV2 (alpha 1.0) and
ResNet50 at batch 32, on a generated prepared store (random uint8 images, written by
``stages.prepare.prepare`` into a temporary folder; train() runs inside that folder).

Pretrained weights cannot be downloaded offline, so the bases have random weights
(``weights: null``): the same architecture, hence the same compute. Early stopping is
off (patience 0), so every epoch runs. The other run flags (strategy, determinism,
mixed precision, XLA) are those of params.yaml's ``train`` section, as in the stage.

  - cached:   real runs at E = 5 and E = 50 epochs (the base once, then the head only);
  - uncached: a real run at E = 5; at E = 50 only with --full (slow). By default that
    row is *projected*: fit(5) + 45 x the steady epoch time, the mean of epochs 2..5
    of the E = 5 run, timed end to end (training, validation and callbacks) by train()'s
    own throughput callback with an epoch-end timestamp added.

The speed-up is uncached / cached seconds; the targets are >= 3x at E = 5 and
>= 10x at E = 50. The ceiling is E: uncached, the base runs forward over the train
and val images every epoch (E passes), cached only once.

    python benchmarks/frozen_features.py [--models mobilenet_v2 resnet50] [--image-size 224]
        [--train-images 128] [--val-images 32] [--full] [--out benchmarks/frozen_features.csv]

Results are also written to benchmarks/frozen_features.csv (one row per model x E).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_csv  # (standard library only)

sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from stages.prepare import prepare  # noqa: E402
import stages.train as train_stage  # noqa: E402
from stages.train import parse_model_params, parse_run_params, train  # noqa: E402

OUT = Path(__file__).with_name("frozen_features.csv")
# Model key -> its family options besides `weights: null` and `trainable: frozen`.
MODELS = {"mobilenet_v2": {"alpha": 1.0}, "resnet50": {}}
CLASSES = 4
TEST_IMAGES = CLASSES  # prepare writes every split; train never reads this one
SHORT, LONG = 5, 50  # epochs
TARGETS = {SHORT: 3.0, LONG: 10.0}  # speed-up targets
BATCH = 32
SEED = 0


def write_store(tmp: Path, size: int, n_train: int, n_val: int) -> Path:
    """A prepared store of random images at ``size`` px (labels cycle through the classes)."""
    rng = np.random.default_rng(SEED)
    images, rows = tmp / "images", []
    for split, n in (("train", n_train), ("val", n_val), ("test", TEST_IMAGES)):
        for i in range(n):
            label = i % CLASSES
            name, rel = f"c{label}", f"c{label}/{split}_{i:05d}.png"
            (images / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(images / rel)
            rows.append([rel, name, label, f"{split}{i}", size, size, split])
    splits = pd.DataFrame(rows, columns=["path", "class_name", "label", "sha256", "width", "height", "split"])
    with contextlib.redirect_stderr(io.StringIO()):  # prepare's progress bars
        prepare(splits, str(images), [size], "squash", tmp / "prepared")
    return tmp / "prepared"


class EpochClock(train_stage.TrainThroughput):
    """train()'s own throughput callback, also noting when each epoch ends (validation included)."""

    ends: list[float] = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        EpochClock.ends = []

    def on_epoch_end(self, epoch, logs=None):
        EpochClock.ends.append(time.perf_counter())


def fit_seconds(name: str, cfg: dict, run: dict, prepared: Path, folder: Path) -> tuple[float, float | None, dict]:
    """(train()'s fit_time_s, steady seconds per epoch (epochs 2..), its metrics), run inside ``folder``."""
    folder.mkdir(parents=True)
    cwd, log = os.getcwd(), io.StringIO()
    original = train_stage.TrainThroughput
    train_stage.TrainThroughput = EpochClock  # adds timestamps only: train() is otherwise untouched
    try:
        os.chdir(folder)  # train() writes data/models, metrics/train and plots/train here
        with contextlib.redirect_stdout(log):  # Keras prints a line per epoch
            metrics = train(name, SEED, cfg, run, prepared)
    except BaseException:
        sys.stdout.write(log.getvalue())
        raise
    finally:
        train_stage.TrainThroughput = original
        os.chdir(cwd)
        keras.backend.clear_session()  # ResNet50 graphs are large: free them before the next run
    ends = EpochClock.ends
    steady = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else None
    return metrics["fit_time_s"], steady, metrics


def bench(name: str, args, run_flags: dict, prepared: Path, tmp: Path) -> list[dict]:
    values = dict(
        family=name, image_size=args.image_size, epochs=SHORT, batch_size=BATCH, optimizer="adam",
        learning_rate=0.001, early_stopping={"monitor": "val_loss", "patience": 0}, weights=None,
        trainable="frozen", **MODELS[name],
    )
    times: dict[tuple[bool, int], float] = {}

    def measure(cached: bool, epochs: int) -> float:
        cfg = parse_model_params(name, dict(values, epochs=epochs), [args.image_size])
        run = parse_run_params({**run_flags, "cache_frozen_features": cached})
        kind = "cached" if cached else "uncached"
        print(f"  {name}: {kind}, {epochs} epochs...", end=" ", flush=True)
        seconds, steady, metrics = fit_seconds(name, cfg, run, prepared, tmp / f"{name}-{kind}-{epochs}")
        if metrics["cached_features"] != cached:
            sys.exit(f"{name}: train() did not take the {kind} path; is the base frozen?")
        extra = f"features {metrics['features_time_s']:.1f} s" if cached else f"steady epoch {steady:.2f} s"
        print(f"{seconds:.1f} s ({extra})", flush=True)
        times[cached, epochs] = seconds
        return steady

    # Cached first: whatever the process still warms up is charged to the cached side.
    measure(True, SHORT)
    measure(True, LONG)
    steady = measure(False, SHORT)
    if args.full:
        measure(False, LONG)
        method = "measured"
    else:
        times[False, LONG] = times[False, SHORT] + (LONG - SHORT) * steady
        method = "projected"
    rows = []
    for epochs in (SHORT, LONG):
        cached_s, uncached_s = times[True, epochs], times[False, epochs]
        rows.append({
            "model": name, "image_size": args.image_size, "train_images": args.train_images,
            "val_images": args.val_images, "epochs": epochs, "cached_s": round(cached_s, 2),
            "uncached_s": round(uncached_s, 2), "speedup": round(uncached_s / cached_s, 2),
            "method": method if epochs == LONG else "measured", "cpu_count": os.cpu_count(),
            "date": datetime.date.today().isoformat(), "tensorflow": tf.__version__,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--train-images", type=int, default=128)
    parser.add_argument("--val-images", type=int, default=32)
    parser.add_argument("--full", action="store_true",
                        help=f"really run the uncached {LONG}-epoch fit instead of projecting it (slow)")
    parser.add_argument("--out", type=Path, default=OUT, help="CSV to write")
    args = parser.parse_args()
    run_flags = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["train"]
    print(f"{args.train_images} train / {args.val_images} val random images, {CLASSES} classes, "
          f"{args.image_size} px, batch {BATCH}, frozen random-init bases, {os.cpu_count()} CPUs, "
          f"TensorFlow {tf.__version__}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="frozen_features-") as tmp:
        prepared = write_store(Path(tmp), args.image_size, args.train_images, args.val_images)
        for name in args.models:
            rows.extend(bench(name, args, run_flags, prepared, Path(tmp)))

    print(f"\n{'model':<13} {'epochs':>6} {'cached s':>9} {'uncached s':>10} {'speed-up':>8} {'target':>7}  method")
    for r in rows:
        target = TARGETS[r["epochs"]]
        verdict = "met" if r["speedup"] >= target else "MISSED"
        print(f"{r['model']:<13} {r['epochs']:>6} {r['cached_s']:>9.1f} {r['uncached_s']:>10.1f} "
              f"{r['speedup']:>7.1f}x {'>= ' + format(target, 'g') + 'x':>7}  {r['method']} ({verdict})")
    images = args.train_images + args.val_images
    print(f"base forward passes per fit: uncached E x {images} images ({SHORT * images} at E = {SHORT}, "
          f"{LONG * images} at E = {LONG}), cached 1 x {images}: the speed-up tends to E as the head's "
          "share of the time vanishes")
    write_csv(args.out, rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
