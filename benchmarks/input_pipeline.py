"""Benchmark: is the input pipeline ever the bottleneck?

For every model in params.yaml, trains the same number of steps on batches read
from the prepared memory maps (what `train` uses) and on the same tensors held
in RAM, and prints training images/s for both and their ratio. A ratio of 1.0
means the memory-mapped pipeline costs nothing; the target is >= 0.97.

    python benchmarks/input_pipeline.py [--models vit resnet50] [--seconds 5] [--rounds 5]

The models train under the run flags of params.yaml's ``train`` section (op
determinism included), as the stage does. When the pipeline has run, the script also
prints the train stage's own steady-state throughput and CPU use (the mean of
``train_img_per_s`` / ``train_cpu_cores`` over ``metrics/train/<model>/100pct/s*.json``) and its
ratio to the memory-mapped figure: the stage target is >= 0.9. Both figures come
from this machine, but not from the same minute: on a shared machine rerun both.

Run `dvc repro prepare` first. Results are also written to
benchmarks/input_pipeline.csv (one row per model).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from common import ROOT, write_csv  # (standard library only)

sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402

from stages.core.prepared import open_split  # noqa: E402
from stages.models import build_model  # noqa: E402
from stages.train import parse_model_params, parse_run_params  # noqa: E402
from stages.training.dataset import in_memory_dataset, make_dataset  # noqa: E402
from stages.training.fit import compile_for_training  # noqa: E402

OUT = Path(__file__).with_name("input_pipeline.csv")


def images_per_second(model, dataset, steps: int, batch: int) -> float:
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - start)


def bench(name: str, cfg: dict, seconds: float, rounds: int) -> dict:
    keras.utils.set_random_seed(0)
    split = open_split("train", cfg["image_size"], "data/prepared")
    batch = cfg["batch_size"]
    model = build_model(cfg["family"], len(split.class_names), cfg["image_size"], cfg["options"], f"models.{name}")
    compile_for_training(model, cfg["optimizer"], cfg["learning_rate"], len(split.class_names), False)
    sources = {
        "memmap": make_dataset(split, batch, shuffle=True, seed=0).repeat(),
        "in_memory": in_memory_dataset(split, batch, seed=0).repeat(),
    }
    for ds in sources.values():  # warm-up: graph tracing and first-touch page faults
        images_per_second(model, ds, 5, batch)
    # Timed windows of about `seconds` each: short windows are dominated by noise on small machines.
    steps = max(10, round(seconds * images_per_second(model, sources["in_memory"], 10, batch) / batch))
    best = {k: 0.0 for k in sources}
    for r in range(rounds):  # interleaved, order alternating, best of N: robust to noise
        for key, ds in sorted(sources.items(), reverse=r % 2 == 1):
            best[key] = max(best[key], images_per_second(model, ds, steps, batch))
    row = {
        "model": name, "family": cfg["family"], "image_size": cfg["image_size"], "batch_size": batch,
        "memmap_img_per_s": round(best["memmap"], 1), "in_memory_img_per_s": round(best["in_memory"], 1),
        "ratio": round(best["memmap"] / best["in_memory"], 3), "steps_per_round": steps, "rounds": rounds,
    }
    return {**row, **stage_throughput(name, best["memmap"])}


def stage_throughput(name: str, bench_img_per_s: float) -> dict:
    """The train stage's recorded steady-state img/s and CPU cores (mean over its runs), and its ratio."""
    runs = [json.loads(p.read_text()) for p in sorted(Path("metrics/train", name, "100pct").glob("s*.json"))]
    runs = [r for r in runs if not r.get("cached_features") and r.get("train_cpu_cores") is not None]
    if not runs:
        return {"stage_img_per_s": None, "stage_cpu_cores": None, "stage_ratio": None}
    img = sum(r["train_img_per_s"] for r in runs) / len(runs)
    cores = sum(r["train_cpu_cores"] for r in runs) / len(runs)
    return {"stage_img_per_s": round(img, 1), "stage_cpu_cores": round(cores, 2),
            "stage_ratio": round(img / bench_img_per_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="model keys from params.yaml (default: all)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed window")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    sizes = params["prepare"]["image_sizes"]
    if parse_run_params(params["train"])["deterministic"]:  # the stage's setting: measure what it runs
        tf.config.experimental.enable_op_determinism()
    rows = []
    for name in args.models or list(params["models"]):
        cfg = parse_model_params(name, params["models"][name], sizes)
        row = bench(name, cfg, args.seconds, args.rounds)
        rows.append(row)
        print(
            f"{name:>14}: memmap {row['memmap_img_per_s']:8.1f} img/s, in memory {row['in_memory_img_per_s']:8.1f} "
            f"img/s, ratio {row['ratio']:.3f}"
            + (f"; train stage {row['stage_img_per_s']:.1f} img/s on {row['stage_cpu_cores']:.2f} cores, "
               f"stage / memmap {row['stage_ratio']:.3f}" if row["stage_ratio"] is not None else ""),
            flush=True,
        )
    write_csv(OUT, rows)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
