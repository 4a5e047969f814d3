"""tf.distribute: what training runs under, tested for real.

- MirroredStrategy over two logical CPU devices trains inside train() (two replicas, one set of
  outputs): the same code path as a machine with two GPUs.
- Multi-worker training is refused with the reason: Keras 3's Model.fit does not run under
  MultiWorkerMirroredStrategy. The last test reproduces that with two worker processes on
  localhost and *fails once an upgrade fixes it* -- then enable `multi_worker` in
  stages/training/distribute.py and test it here the same way.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stages.core.errors import ParamError
from stages.training.distribute import pick_strategy

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_multi_worker_is_refused_naming_the_key_and_the_reason(monkeypatch):
    with pytest.raises(ParamError) as err:
        pick_strategy("multi_worker")
    assert err.value.key == "train.strategy" and "keras-team/keras#20585" in str(err.value)
    assert "dvc queue start" in str(err.value)  # what to do instead
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker",
                                                                                              "index": 0}}))
    with pytest.raises(ParamError, match=r"auto \(auto, with TF_CONFIG set\)"):
        pick_strategy("auto")


@pytest.mark.slow  # a subprocess that splits the CPU into two devices before TensorFlow starts
def test_mirrored_strategy_over_two_logical_cpus_trains_inside_train(tmp_path):
    proc = _python(f"""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from pathlib import Path
        import sys; sys.path.insert(0, {str(REPO / "tests")!r})
        from conftest import make_prepared_store
        from stages.train import parse_model_params, parse_run_params, train
        from stages.training.distribute import pick_strategy
        prepared = make_prepared_store(Path("."))
        print("replicas", pick_strategy("mirrored").num_replicas_in_sync, flush=True)
        cfg = parse_model_params("tiny", dict(
            family="vit", image_size=16, epochs=2, batch_size=8, optimizer="adam", learning_rate=0.001,
            early_stopping={{"monitor": "val_loss", "patience": 0}}, patch_size=4, num_layers=1, num_heads=2,
            hidden_dim=16, mlp_dim=32), [16])
        run = parse_run_params(dict(strategy="mirrored", mixed_precision=False, jit_compile=False,
                                    deterministic=False))
        metrics = train("tiny", 0, cfg, run, prepared)
        print("metrics", json.dumps(metrics), flush=True)
        """, tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "replicas 2" in out and "2 replica(s)" in out, out  # train()'s own line says so too
    metrics = json.loads(out.split("metrics ", 1)[1])
    assert metrics["epochs_run"] == 2 and metrics["train_images"] == 24
    outputs = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "data/models").rglob("*.keras"))
    assert outputs == ["data/models/tiny/100pct/s0.keras"]
    assert (tmp_path / "metrics/train/tiny/100pct/s0.json").is_file()
    assert (tmp_path / "plots/train/tiny/100pct/s0/plots/metrics/eval/loss.tsv").is_file()


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


WORKER = """
    import numpy as np, tensorflow as tf, keras
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    print("replicas", strategy.num_replicas_in_sync, flush=True)
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    y = tf.one_hot((x.sum(1) > 0).astype("int32"), 2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "categorical_crossentropy")
    model.fit(ds, epochs=1, steps_per_epoch=4, verbose=0)
    print("trained", flush=True)
"""


@pytest.mark.slow  # two worker processes on localhost
def test_keras_fit_under_multi_worker_mirrored_strategy_still_fails(tmp_path):
    ports = _free_ports(2)
    workers = [_python(WORKER, tmp_path, {"TF_CONFIG": json.dumps({
        "cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    results = []
    for worker in workers:
        try:
            results.append(worker.communicate(timeout=300))
        except subprocess.TimeoutExpired:
            worker.kill()
            results.append(worker.communicate())
    outs = "".join(out for out, _ in results)
    errs = "".join(err for _, err in results)
    assert outs.count("replicas 2") == 2, errs[-3000:]  # the two workers did form one cluster
    assert "trained" not in outs, (
        "Keras's fit now runs under MultiWorkerMirroredStrategy: allow train.strategy=multi_worker "
        "in stages/training/distribute.py and test it with two workers here")
    assert "PerReplica" in errs, errs[-3000:]
