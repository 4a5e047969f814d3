"""Phase probe for benchmarks/run_breakdown.py: where one stage process's wall time goes.

Python imports this file at start-up when its folder is on PYTHONPATH; it does nothing unless
PHASE_PROBE_OUT names a JSON file to write. It then times, without editing any stage, the calls
every layout of the pipeline makes by the same names (stages.core.errors.run_stage, keras.Model.fit,
predict_on_batch, save, ...) and splits fit into its steps, validation and the rest with a callback.
Patched right after the defining module is imported, before a stage binds the name.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.util
import json
import os
import sys
import time
from collections import defaultdict

OUT = os.environ.get("PHASE_PROBE_OUT")


def _process_start() -> float:
    """The process's start on the perf_counter clock (its age from /proc, no psutil import)."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return time.perf_counter() - (uptime - start_ticks / ticks)


if OUT:
    T0 = _process_start()
    SEEN = {"interpreter": time.perf_counter() - T0}
    PHASES: dict[str, float] = defaultdict(float)
    FIRST_CALL: dict[str, float] = {}

    def timed(name, fn, first=None):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                PHASES[name] += spent
                if first and first not in FIRST_CALL:  # the first call traces the graph
                    FIRST_CALL[first] = spent
        return wrapper

    def _run_stage(fn):
        def run_stage(main, *args, **kwargs):
            SEEN.setdefault("main", time.perf_counter() - T0)
            return fn(main, *args, **kwargs)
        return run_stage

    def _fit(fn):
        import keras

        class Split(keras.callbacks.Callback):
            """Train batches, validation passes; the first batch of each traces its function."""

            def on_train_batch_begin(self, batch, logs=None):
                self._b = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                spent = time.perf_counter() - self._b
                if "train_batch" not in FIRST_CALL:
                    FIRST_CALL["train_batch"] = spent
                else:
                    PHASES["fit_steps"] += spent
                    PHASES["fit_batches"] += 1

            def on_test_begin(self, logs=None):
                self._v = time.perf_counter()

            def on_test_batch_begin(self, batch, logs=None):
                self._vb = time.perf_counter()

            def on_test_batch_end(self, batch, logs=None):
                if "test_batch" not in FIRST_CALL:
                    FIRST_CALL["test_batch"] = time.perf_counter() - self._vb

            def on_test_end(self, logs=None):
                PHASES["validation"] += time.perf_counter() - self._v

        def fit(self, *args, **kwargs):
            kwargs["callbacks"] = [Split(), *(kwargs.get("callbacks") or [])]
            return timed("fit", fn)(self, *args, **kwargs)
        return fit

    PATCHES = {
        "stages.core.errors": lambda m: setattr(m, "run_stage", _run_stage(m.run_stage)),
        "stages.core.params": lambda m: [setattr(m, n, timed("params", getattr(m, n)))
                                        for n in ("model_stage_params", "matrix_stage_params") if hasattr(m, n)],
        "stages.core.prepared": lambda m: setattr(m, "open_split", timed("data", m.open_split)),
        "stages.models": lambda m: [setattr(m, n, timed(p, getattr(m, n))) for n, p in
                                    (("build_model", "build"), ("load_model", "load")) if hasattr(m, n)],
        "keras": lambda m: [
            setattr(m.Model, "fit", _fit(m.Model.fit)),
            setattr(m.Model, "predict_on_batch", timed("predict", m.Model.predict_on_batch, "predict_batch")),
            setattr(m.Model, "predict", timed("predict", m.Model.predict, "predict_batch")),
            setattr(m.Model, "save", timed("save", m.Model.save)),
            SEEN.setdefault("keras_imported", time.perf_counter() - T0),
        ],
    }

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name not in PATCHES:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def patched(module):
                exec_module(module)
                PATCHES[name](module)
            spec.loader.exec_module = patched
            return spec

    sys.meta_path.insert(0, _Finder())

    @atexit.register
    def _write():
        if "main" not in SEEN:  # not a stage (e.g. the `dvc` process that started one): nothing to say
            return
        wall = time.perf_counter() - T0
        record = {"process_wall": wall, **SEEN, **PHASES, "first_call": FIRST_CALL}
        with open(OUT, "w") as f:
            json.dump(record, f, indent=1)
