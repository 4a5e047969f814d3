"""Interrupted stages leave nothing a later stage could mistake for a result.

SIGINT and SIGTERM end a stage as an exception (run_stage), so the atomic output in progress is
deleted on the way out; SIGKILL cannot be caught: its temporary sibling (``.<name>.tmp-<pid>``)
stays, is ignored by git, and the next run removes it. Each case interrupts a real stage process
(`prepare`, `train`) once it is writing, then `dvc repro` completes; `train` is also stopped from
inside its model save, when the model is whole on disk (its outputs are published together, so none
is left), and a signal Python swallows (an at-fork hook, a ``__del__``) still fails the stage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import make_prepared_store, run
from stages.core.files import atomic_output, atomic_outputs, remove_stale_temporaries

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def test_a_dead_runs_temporary_is_removed_and_a_live_ones_is_kept(tmp_path):
    target = tmp_path / "prepared"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".prepared.tmp-{dead.pid}"
    stale.mkdir()
    (stale / "x.npy").write_bytes(b"half")
    live = tmp_path / f".prepared.tmp-{os.getppid()}"  # our parent is alive
    live.mkdir()
    other = tmp_path / ".prepared.tmp-notapid"
    other.mkdir()
    assert remove_stale_temporaries(target) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    with atomic_output(tmp_path / "s0.keras") as tmp:  # a file target, suffix kept
        tmp.write_text("model")
    assert (tmp_path / "s0.keras").read_text() == "model"


# A stage whose signal lands where Python prints "Exception ignored" for the exception its handler
# raises, and goes on: an at-fork hook (as one did in logging's, while prepare started its worker
# pool), or a __del__ (an object collected while the stage writes).
_SIGNAL_SWALLOWED = """
import os, signal, sys, time
from stages.core.errors import run_stage
from stages.core.files import atomic_output

def in_fork_hook():
    os.register_at_fork(after_in_parent=lambda: (os.kill(os.getpid(), signal.{sig}), time.sleep(0.5)))
    if os.fork() == 0:
        os._exit(0)
    os.wait()

class SignalsWhenCollected:
    def __del__(self):
        os.kill(os.getpid(), signal.{sig})
        time.sleep(0.5)

def in_del():
    SignalsWhenCollected()  # collected at once: __del__ runs, and the handler in it

def main():
    with atomic_output("out.txt") as tmp:
        tmp.write_text("half")
        {where}()
        print("went on", flush=True)
        tmp.write_text("whole")

run_stage(main)
"""


@pytest.mark.parametrize("where", ["in_fork_hook", "in_del"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_whose_exception_python_swallows_still_fails_the_stage_and_publishes_nothing(tmp_path, sig, where):
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_SWALLOWED.format(sig=sig.name, where=where)], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                          capture_output=True, text=True, timeout=120)
    # The case: the handler's exception was swallowed, in that very callback, and the stage went on.
    ignored_in = {"in_fork_hook": "in_fork_hook.<locals>.<lambda>", "in_del": "SignalsWhenCollected.__del__"}[where]
    assert f"Exception ignored in: <function {ignored_in}" in proc.stderr, proc.stderr
    assert "went on" in proc.stdout, proc.stderr
    assert proc.returncode == 128 + sig, proc.stderr
    assert f"interrupted ({sig.name})" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the output nor its temporary


_SIGNAL_WHILE_THE_POOL_FORKS = """
import os, signal, time
from stages.core.errors import run_stage
from stages.data.parallel import imap_progress

def dispositions(i):
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and signal.getsignal(signal.SIGINT) is signal.SIG_IGN

def main():
    print("workers default", all(imap_progress(dispositions, range(300), total=300, desc="a")), flush=True)
    os.register_at_fork(after_in_parent=lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.5)))
    list(imap_progress(dispositions, range(300), total=300, desc="b"))
    print("not reached", flush=True)

run_stage(main)
"""


def test_a_signal_sent_while_the_pool_forks_arrives_after_it_in_ordinary_code(tmp_path):
    """Stop signals are held back while imap_progress forks its workers, so none lands in an
    at-fork hook (where it was swallowed and left logging's lock held: the next pool's workers
    deadlocked, and the stage hung); workers die on SIGTERM at once and leave SIGINT to the parent."""
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_WHILE_THE_POOL_FORKS], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                          capture_output=True, text=True, timeout=120)
    assert "workers default True" in proc.stdout, proc.stderr
    assert "Exception ignored" not in proc.stderr and "not reached" not in proc.stdout
    assert proc.returncode == 128 + signal.SIGTERM and "interrupted (SIGTERM)" in proc.stderr, proc.stderr


# A stage's several outputs, published together (atomic_outputs, as train publishes its model, curves
# and metrics), with the signal swallowed while they are written, or sent between two of the renames.
_SIGNAL_WHILE_OUTPUTS_ARE_PUBLISHED = """
import os, signal, time
from stages.core.errors import run_stage
from stages.core.files import atomic_outputs

class SignalsWhenCollected:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)

replace = os.replace

def replace_then_signal(src, dst):
    replace(src, dst)
    os.kill(os.getpid(), signal.SIGTERM)

def main():
    with atomic_outputs("model.keras", "curves", "metrics.json") as (model, curves, metrics):
        model.write_text("model")
        curves.mkdir()
        (curves / "loss.tsv").write_text("1")
        metrics.write_text("{{}}")
        if "{where}" == "in_del":
            SignalsWhenCollected()
        else:
            os.replace = replace_then_signal
        print("went on", flush=True)

run_stage(main)
"""


@pytest.mark.parametrize("where, published", [("in_del", []), ("between_renames", ["curves", "metrics.json",
                                                                                  "model.keras"])])
def test_outputs_published_together_are_all_published_or_none(tmp_path, where, published):
    """A signal swallowed while the outputs are written publishes none; one sent while they are
    renamed into place is held back until all are (never some), and still fails the stage."""
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_WHILE_OUTPUTS_ARE_PUBLISHED.format(where=where)],
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                          capture_output=True, text=True, timeout=120)
    assert "went on" in proc.stdout, proc.stderr
    assert ("Exception ignored" in proc.stderr) == (where == "in_del"), proc.stderr
    assert proc.returncode == 128 + signal.SIGTERM and "interrupted (SIGTERM)" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == published  # and no temporary


def test_outputs_published_together_are_none_when_one_is_not_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="b.json"):
        with atomic_outputs(tmp_path / "a.json", tmp_path / "b.json") as (a, _):
            a.write_text("{}")
    assert list(tmp_path.iterdir()) == []


# The stage's own train(), on a tiny generated store, with Keras's Model.save wrapped: the model file
# is written in full, then the stop signal arrives, before the stage has published anything.
_SIGNAL_WHILE_THE_MODEL_IS_SAVED = """
import os, signal
import keras
from stages.core.errors import run_stage
from stages.train import parse_model_params, parse_run_params, train

save = keras.Model.save

def save_then_signal(self, filepath, *args, **kwargs):
    save(self, filepath, *args, **kwargs)
    print("saved", filepath, flush=True)
    os.kill(os.getpid(), signal.{sig})

keras.Model.save = save_then_signal
cfg = parse_model_params("tiny", {cfg!r}, [16])
run_stage(lambda: train("tiny", 0, cfg, parse_run_params({run!r}), {prepared!r}))
"""
TINY_VIT = dict(family="vit", image_size=16, epochs=1, batch_size=8, optimizer="adam", learning_rate=0.001,
                early_stopping={"monitor": "val_loss", "patience": 0}, patch_size=4, num_layers=1, num_heads=2,
                hidden_dim=16, mlp_dim=32)
RUN = dict(strategy="auto", mixed_precision=False, jit_compile=False, deterministic=True)


def test_a_signal_while_train_saves_the_model_publishes_none_of_its_outputs(tmp_path):
    """The model is whole on disk when the signal lands, yet nothing is at a declared output path
    (a plain ``model.save(out_path)`` would leave it there, for evaluate to score as a trained model).
    SIGTERM only: SIGINT takes the same way out (run_stage, atomic_outputs; tested above)."""
    sig = signal.SIGTERM
    prepared = make_prepared_store(tmp_path)
    work = tmp_path / "run"
    work.mkdir()
    script = _SIGNAL_WHILE_THE_MODEL_IS_SAVED.format(sig=sig.name, cfg=TINY_VIT, run=RUN,
                                                   prepared=str(prepared))
    proc = subprocess.run([sys.executable, "-c", script], cwd=work,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                          capture_output=True, text=True, timeout=600)
    assert "saved " in proc.stdout, proc.stderr[-3000:]  # the signal came from inside the save
    assert proc.returncode == 128 + sig and f"interrupted ({sig.name})" in proc.stderr, proc.stderr[-3000:]
    left = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert left == [], left  # no model, no metrics, no curves, no temporary


def _interrupt(cmd: list[str], cwd: Path, marker, sig: int, timeout: float = 300) -> int:
    """Start ``cmd``, send ``sig`` once ``marker()`` (the stage is writing) holds, return its exit code."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not marker():
        assert proc.poll() is None, f"{cmd} ended before it could be interrupted:\n{proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"{cmd}: never started writing"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    return proc.returncode


def _temporaries(folder: Path, stem: str) -> list[Path]:
    return sorted(folder.glob(f".{stem}.tmp-*")) if folder.is_dir() else []


@pytest.mark.slow  # real stage processes in a repository copy
def test_interrupted_prepare_and_train_leave_no_result_and_dvc_repro_completes(repo_copy):
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["prepare"]["image_sizes"] = [32, 192]  # long enough to be caught writing
    params["study"].update(seeds=[0], train_percent=[100])
    params["models"]["vit"].update(num_layers=1, hidden_dim=32, mlp_dim=64, epochs=3)
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro", "split"], repo_copy)
    data = repo_copy / "data"

    for sig in SIGNALS:
        code = _interrupt([sys.executable, "-m", "stages.prepare"], repo_copy,
                          lambda: bool(_temporaries(data, "prepared")), sig)
        assert code != 0, sig
        assert not (data / "prepared").exists(), sig  # no store a later stage could read
        left = _temporaries(data, "prepared")
        assert (left != []) == (sig == signal.SIGKILL), (sig, left)
    run(["git", "add", "-A"], repo_copy)
    assert not [line for line in run(["git", "status", "--porcelain", "--ignored"], repo_copy).stdout.splitlines()
                if ".prepared.tmp-" in line and not line.startswith("!!")]  # ignored, never staged
    run(["dvc", "repro", "prepare", "family@vit", "features@vit"], repo_copy)
    assert (data / "prepared").is_dir() and not _temporaries(data, "prepared")  # the leftover is gone

    # Signalled once its curves' temporary appears, i.e. before or during the fit; a signal while
    # the model is saved: test_a_signal_while_train_saves_the_model_publishes_none_of_its_outputs.
    curves = repo_copy / "plots/train/vit/100pct"
    model = data / "models/vit/100pct/s0.keras"
    for sig in SIGNALS:
        code = _interrupt([sys.executable, "-m", "stages.train", "vit", "--percent", "100", "--seed", "0"],
                          repo_copy, lambda: bool(_temporaries(curves, "s0")), sig)
        assert code != 0, sig
        assert not model.exists() and not (repo_copy / "metrics/train/vit/100pct/s0.json").exists(), sig
        assert not (curves / "s0").exists(), sig
        assert (_temporaries(curves, "s0") != []) == (sig == signal.SIGKILL), sig
    run(["dvc", "repro", "train@vit-100-0"], repo_copy)
    assert model.is_file() and not _temporaries(curves, "s0")
