"""What a run ran on: processor, instruction sets, accelerators, library versions, oneDNN.

Training repeats bit for bit on one machine only: TensorFlow picks its CPU kernels by
instruction set and turns oneDNN on by default only on some CPUs (those with AVX-512 VNNI,
BF16 or AMX), and the two kernel sets round differently. ``train`` stores this record with
each run's cost so the report can say on what platform its numbers hold.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

# The instruction sets that change which CPU kernels TensorFlow runs (and whether oneDNN is on).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (empty off Linux)."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return {}
    block = path.read_text(errors="replace").split("\n\n", 1)[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines()) if k.strip()}


def cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def isa_flags() -> list[str]:
    flags = set(re.split(r"\s+", _cpuinfo().get("flags", "")))
    return [f for f in ISA_FLAGS if f in flags]


def onednn_enabled() -> bool | None:
    """TensorFlow's own answer (the env var TF_ENABLE_ONEDNN_OPTS, else its per-CPU default)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # no public API says it
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def platform_info() -> dict:
    """One run's platform, JSON-ready. Imports TensorFlow (train has it loaded already)."""
    import keras
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(details.get("device_name", device.name))
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "isa": isa_flags(),
        "gpus": gpus,
        "onednn": onednn_enabled(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": sys.version.split()[0],
        "os": platform.system(),
    }

