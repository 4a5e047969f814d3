"""Benchmark: ViT-B/16 full fine-tuning throughput on one GPU: fp32, mixed precision, mixed precision + XLA.

Builds the dogs studies' ViT (conf/models/dogs.yaml: 224 px, batch 32, AdamW 5e-5,
every weight trainable) through the registry and compiles it with
`compile_for_training`, as `train` does, with random weights of the preset's
architecture (patch 16, 12 layers, 12 heads, 768 / 3072: the same compute; the
pretrained file is not needed). It trains on one random uint8 batch repeated by
tf.data (`from_tensors`), so decoding and disk reads are excluded and only the model
is measured (tf.data keeps the batch in host memory: each step copies it to the
device, 4.8 MB at 224 px and batch 32, well under 1 ms). Per configuration:

  fp32       float32 throughout
  mixed      mixed_bfloat16 where the GPU has bfloat16 (compute capability >= 8.0),
             else mixed_float16 with loss scaling
  mixed_xla  the same policy, and the train step compiled with XLA (jit_compile=True)

it runs warm-up steps (not timed: graph tracing, XLA compilation), then times
`--steps` steps of model.fit, and reports training images/s and peak device memory
(tf.config.experimental.get_memory_info). Each configuration runs in its own process:
the dtype policy is process-global, and a fresh process gives a clean peak.

Published anchor: timm's training benchmark (results/benchmark-train-amp-nchw-pt112-
cu113-rtx3090.csv) lists vit_base_patch16_224 at ~391 img/s on an RTX 3090 with AMP
(PyTorch 1.12, batch 192): the order of magnitude to expect from `mixed` on that class
of GPU, not a like-for-like figure.

Without a GPU it still runs, as a smoke test: the default pipeline's tiny ViT
(conf/models/digits.yaml) at 32 px and a few steps, and the `device` column says that
the figures are not GPU figures.

    python benchmarks/gpu_training.py [--configs fp32 mixed mixed_xla] [--steps 100] [--warmup 10]
                                      [--batch-size 32] [--image-size 224] [--cpu-smoke] [--deterministic]
                                      [--out CSV]

Results are also written to benchmarks/gpu_training.csv (one row per configuration).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from common import ROOT, write_csv  # (standard library only)

sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402

OUT = Path(__file__).with_name("gpu_training.csv")
CONFIGS = ("fp32", "mixed", "mixed_xla")
GPU_DEFAULTS = {"steps": 100, "warmup": 10}
CPU_DEFAULTS = {"steps": 10, "warmup": 2, "image_size": 32}


def mixed_policy(compute_capability) -> str:
    """The train stage's own choice (stages/training/distribute.py); the child records whether keras
    wrapped the optimizer in a LossScaleOptimizer (the loss_scale column)."""
    from stages.training.distribute import mixed_precision_policy

    return mixed_precision_policy(compute_capability or (0, 0))


def model_config(gpu: bool) -> dict:
    """The dogs studies' ViT with the preset's architecture at random init, or on CPU the default tiny ViT."""
    from stages.train import parse_model_params

    values = yaml.safe_load((ROOT / "conf/models" / ("dogs.yaml" if gpu else "digits.yaml")).read_text())["vit"]
    cfg = parse_model_params("vit", values, [values["image_size"]])
    if gpu:
        sys.path.insert(0, str(Path(__file__).parent))
        from study_runtime import random_init  # the preset -> architecture table lives there

        cfg["options"] = random_init("vit", cfg["options"])
    # The head's width: dogs13's class count (the dogs28 head changes the throughput negligibly).
    cfg["num_classes"] = yaml.safe_load((ROOT / "conf/experiment/dogs13.yaml").read_text())["balance"]["num_classes"]
    return cfg


def child(spec: dict, result: Path) -> None:
    """One configuration, in this (fresh) process; writes its figures to `result` as JSON."""
    import keras
    import numpy as np
    import tensorflow as tf

    from stages.models import build_model
    from stages.training.fit import compile_for_training

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        tf.config.set_visible_devices(gpus[0], "GPU")  # one device: the default strategy, as train on one GPU
        tf.config.experimental.reset_memory_stats("GPU:0")
    keras.utils.set_random_seed(0)
    if spec["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(spec["policy"])
    size, batch, classes = spec["image_size"], spec["batch_size"], spec["num_classes"]
    model = build_model("vit", classes, size, spec["options"], "models.vit")
    compile_for_training(model, spec["optimizer"], spec["learning_rate"], classes, spec["jit_compile"])

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    labels = keras.utils.to_categorical(rng.integers(0, classes, batch), classes)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()

    def fit(steps: int) -> float:  # fit returns after its last step's logs are read: GPU work included
        start = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        return time.perf_counter() - start

    warmup_s = fit(spec["warmup"])  # the first call traces (and with XLA compiles) the train step
    seconds = fit(spec["steps"])
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpus else None
    result.write_text(json.dumps({
        "params": int(model.count_params()), "warmup_seconds": round(warmup_s, 2), "seconds": round(seconds, 3),
        "img_per_s": round(spec["steps"] * batch / seconds, 2),
        "peak_gpu_memory_mib": round(peak / 2**20) if peak is not None else "",
        "loss_scale": isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer),
    }))


def detect(cpu_smoke: bool) -> tuple[str, tuple | None, bool]:
    """(device description, compute capability, on GPU?)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "cpu (no GPU found: figures are not GPU figures)", None, False
    if cpu_smoke:
        return "cpu (--cpu-smoke: figures are not GPU figures)", None, False
    details = tf.config.experimental.get_device_details(gpus[0])
    cc = details.get("compute_capability")
    return details.get("device_name", "GPU"), tuple(cc) if cc else None, True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--steps", type=int, help="timed steps per configuration (default 100; 10 on CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first, at least 1 (default 10; 2 on CPU)")
    parser.add_argument("--batch-size", type=int, help="default: the model's (32)")
    parser.add_argument("--image-size", type=int, help="default: the model's (224; 32 on CPU)")
    parser.add_argument("--cpu-smoke", action="store_true", help="the small CPU run even where a GPU is present")
    parser.add_argument("--deterministic", action="store_true",
                        help="TF op determinism, as train.deterministic (can cost speed on GPU; off here)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"CSV to write (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child), args.result)

    import tensorflow as tf

    device, cc, gpu = detect(args.cpu_smoke)
    defaults = GPU_DEFAULTS if gpu else CPU_DEFAULTS
    cfg = model_config(gpu)
    steps = args.steps or defaults["steps"]
    warmup = max(1, args.warmup if args.warmup is not None else defaults["warmup"])
    size = args.image_size or defaults.get("image_size", cfg["image_size"])
    batch = args.batch_size or cfg["batch_size"]
    arch = "/".join(str(cfg["options"][k]) for k in ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim"))
    model = f"vit p/L/H/D/MLP {arch}"
    print(f"{device}{f', compute capability {cc[0]}.{cc[1]}' if cc else ''}; {model}, {size} px, batch {batch}, "
          f"{warmup} warm-up + {steps} timed steps per configuration", flush=True)

    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": "-1"} if args.cpu_smoke else {}))  # hide a present GPU
    common = {"device": device, "compute_capability": f"{cc[0]}.{cc[1]}" if cc else "", "model": model,
              "image_size": size, "batch_size": batch, "warmup_steps": warmup, "timed_steps": steps,
              "deterministic": args.deterministic, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "python": platform.python_version(), "tensorflow": tf.__version__}
    rows, failed = [], False
    for config in args.configs:
        policy = "float32" if config == "fp32" else mixed_policy(cc)
        spec = {"image_size": size, "batch_size": batch, "num_classes": cfg["num_classes"], "options": cfg["options"],
                "optimizer": cfg["optimizer"], "learning_rate": cfg["learning_rate"], "policy": policy,
                "jit_compile": config == "mixed_xla", "warmup": warmup, "steps": steps,
                "deterministic": args.deterministic}
        print(f"{config}: {policy}{', XLA' if spec['jit_compile'] else ''} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "result.json"
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec), "--result", str(result)],
                                  env=env)
            figures = json.loads(result.read_text()) if proc.returncode == 0 and result.is_file() else None
        row = {"config": config, "policy": policy, "jit_compile": spec["jit_compile"], **common}
        if figures is None:
            failed = True
            print(f"{config}: failed (exit {proc.returncode}), see above", flush=True)
            row.update(status=f"failed (exit {proc.returncode})")
        else:
            row.update(figures, status="ok")
            print(f"{config}: {figures['img_per_s']:.1f} img/s, warm-up {figures['warmup_seconds']:.1f} s", flush=True)
        rows.append(row)

    fp32 = next((r["img_per_s"] for r in rows if r["config"] == "fp32" and r["status"] == "ok"), None)
    for r in rows:
        r["speedup_vs_fp32"] = round(r["img_per_s"] / fp32, 2) if fp32 and r["status"] == "ok" else ""
    columns = ["config", "policy", "jit_compile", "loss_scale", "img_per_s", "speedup_vs_fp32", "peak_gpu_memory_mib",
               "warmup_seconds", "seconds", "params", *common, "status"]
    print(f"\n{device}\n{'config':<10} {'policy':<15} {'XLA':<4} {'loss scale':<10} {'img/s':>9} {'x fp32':>7} "
          f"{'peak MiB':>9} {'warm-up s':>9}")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['config']:<10} {r['policy']:<15} {r['status']}")
            continue
        print(f"{r['config']:<10} {r['policy']:<15} {'yes' if r['jit_compile'] else 'no':<4} "
              f"{'yes' if r['loss_scale'] else 'no':<10} {r['img_per_s']:>9.1f} {str(r['speedup_vs_fp32']):>7} "
              f"{str(r['peak_gpu_memory_mib'] or 'n/a'):>9} {r['warmup_seconds']:>9.1f}")
    write_csv(args.out, rows, columns, restval="")
    print(f"wrote {args.out}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
