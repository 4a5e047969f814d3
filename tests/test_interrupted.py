"""Interrupted stages leave nothing a later stage could mistake for a result.

SIGINT and SIGTERM end a stage as an exception (run_stage), so the atomic output in progress is
deleted on the way out; SIGKILL cannot be caught: its temporary sibling (``.<name>.tmp-<pid>``)
stays, is ignored by git, and the next run removes it. Each case interrupts a real stage process
(`prepare`, `train`) once it is writing, then `dvc repro` completes.
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

from conftest import run
from stages.lib.files import atomic_output, remove_stale_temporaries

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


# A stage whose signal lands in an at-fork hook (as one did in logging's, while prepare started its
# worker pool): Python prints "Exception ignored" for an exception raised there and goes on.
_SIGNAL_IN_FORK_HOOK = """
import os, signal, sys, time
from stages.lib.errors import run_stage
from stages.lib.files import atomic_output

def main():
    with atomic_output("out.txt") as tmp:
        tmp.write_text("half")
        os.register_at_fork(after_in_parent=lambda: (os.kill(os.getpid(), signal.{sig}), time.sleep(0.5)))
        if os.fork() == 0:
            os._exit(0)
        os.wait()
        tmp.write_text("whole")

run_stage(main)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_whose_exception_python_swallows_still_fails_the_stage_and_publishes_nothing(tmp_path, sig):
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_IN_FORK_HOOK.format(sig=sig.name)], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                          capture_output=True, text=True, timeout=120)
    assert "Exception ignored" in proc.stderr  # the case: the handler's exception was swallowed
    assert proc.returncode == 128 + sig, proc.stderr
    assert f"interrupted ({sig.name})" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the output nor its temporary


_SIGNAL_WHILE_THE_POOL_FORKS = """
import os, signal, time
from stages.lib.errors import run_stage
from stages.lib.parallel import imap_progress

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
