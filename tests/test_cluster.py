"""stages/cluster.py: a study's runs spread over Dask workers, one DVC remote for all (docs/cluster.md).

The end-to-end test starts a real scheduler and two workers as separate processes on localhost, each worker
in its own clone, a local-folder DVC remote; it kills one worker (its whole process group: a machine lost)
while it trains, and checks that the study completes on the other and that a third clone's
`dvc repro --pull` runs no stage and ends with the same metrics/comparison.json.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from conftest import run
from stages.cluster import (GROUP_FILE, Refused, check_committed, ensure_clone, head, listed_stage,
                            stop_stale_attempt)

psutil = pytest.importorskip("psutil")

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def tiny_study(repo: Path, remote: Path, **predict) -> None:
    """One 1-layer ViT x 2 seeds at 100 %, 1 epoch, 20 images per class; committed; ``remote`` the default
    DVC remote (in .dvc/config.local, as a user's machine-specific remote would be)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["balance"]["images_per_class"] = 20
    params["study"].update(seeds=[0, 1], train_percent=[100])
    params["models"] = {"vit": {**params["models"]["vit"], "epochs": 1, "num_layers": 1, "hidden_dim": 32,
                                "mlp_dim": 64}}
    params["predict"].update({"latency_warmup": 1, "latency_runs": 2, **predict})
    params["explain"].update(num_images=4, shap_max_evals=50)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qam", "tiny study"], repo)
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], repo)


def _env(repo: Path) -> dict:
    # The workers import stages.cluster from a checkout (docs/cluster.md); the runs use their clones' code.
    return dict(os.environ, PYTHONPATH=str(repo), DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1",
                TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1",
                PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


@contextmanager
def dask_cluster(tmp: Path, repo: Path, workers: int):
    """A `dask scheduler` and ``workers`` `dask worker` processes (one thread each, with a nanny), each in
    its own process group. Yields (address, {name: Popen})."""
    pytest.importorskip("distributed")
    tmp.mkdir(parents=True, exist_ok=True)
    file = tmp / "scheduler.json"
    logs = []
    procs = {}

    def start(name, *args):
        log = (tmp / f"{name}.log").open("w")
        logs.append(log)
        procs[name] = subprocess.Popen([str(BIN / "dask"), *args], cwd=repo, env=_env(repo), stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(file))
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        for i in range(workers):
            start(f"w{i}", "worker", address, "--nthreads", "1", "--nworkers", "1", "--name", f"w{i}",
                  "--no-dashboard", "--local-directory", str(tmp / f"w{i}-scratch"))
        yield address, procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for log in logs:
            log.close()


def coordinator(repo: Path, address: str, clones: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stages.cluster", "run", "--scheduler", address,
                             "--clones", str(clones)], cwd=repo, env=_env(repo), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def training_worker(procs: dict) -> str | None:
    """The name of a worker one of whose descendant processes runs `python -m stages.train`."""
    for name, proc in procs.items():
        if name == "scheduler" or proc.poll() is not None:
            continue
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for child in children:
            try:
                if "stages.train" in " ".join(child.cmdline()):
                    return name
            except psutil.Error:
                pass
    return None


def test_two_workers_one_killed_mid_run_study_completes_and_a_third_clone_restores_everything(
        repo_copy, tmp_path):
    remote = tmp_path / "remote"
    tiny_study(repo_copy, remote)
    with dask_cluster(tmp_path / "cluster", repo_copy, workers=2) as (address, procs):
        coord = coordinator(repo_copy, address, tmp_path / "clones")
        killed, deadline = None, time.monotonic() + 400
        while killed is None and coord.poll() is None and time.monotonic() < deadline:
            killed = training_worker(procs)
            if killed:
                os.killpg(procs[killed].pid, signal.SIGKILL)  # the worker, its nanny and its run: a machine lost
            time.sleep(0.3)
        out, err = coord.communicate(timeout=600)
    assert coord.returncode == 0, out + err
    assert killed, f"no worker was seen training:\n{out}"
    survivor = next(name for name in procs if name not in ("scheduler", killed))
    done = [line for line in out.splitlines() if line.startswith("cluster: train@")]
    assert len(done) == 2 and all(f"clones/{survivor} " in line for line in done), out  # both on the survivor
    assert run(["dvc", "status"], repo_copy).stdout.strip() == "Data and pipelines are up to date."
    # Nothing partial on the remote: each run-cache entry's files are all there (restored below).
    third = tmp_path / "third"
    run(["git", "clone", "-q", str(repo_copy), str(third)], tmp_path)
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], third)
    restored = run(["dvc", "repro", "--pull"], third).stdout
    assert "Running stage" not in restored, restored
    assert restored.count("is cached - skipping run") >= 2 + 3, restored  # both runs, evaluate, report, explain
    assert run(["dvc", "status"], third).stdout.strip() == "Data and pipelines are up to date."
    comparison = "metrics/comparison.json"
    assert json.loads((third / comparison).read_text()) == json.loads((repo_copy / comparison).read_text())
    # Why docs/cluster.md says `dvc repro --pull`: DVC 3's `dvc pull --run-cache` fetches the entries, not the files
    # they name, so a `dvc repro` after it would train. (Fails once DVC fetches them: then document both.)
    fourth = tmp_path / "fourth"
    run(["git", "clone", "-q", str(repo_copy), str(fourth)], tmp_path)
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], fourth)
    run(["dvc", "pull", "--run-cache"], fourth, check=False)  # exits 1: the commit's dvc.lock names no output
    cache = fourth / ".dvc/cache"
    assert any((cache / "runs").rglob("*")) and not any(p.is_file() for p in (cache / "files").rglob("*"))
    # The results committed (dvc.lock and the metrics, as after a `dvc repro`): a plain `dvc pull` restores them.
    run(["git", "add", "-A"], repo_copy)
    run(["git", "commit", "-qm", "the study's results"], repo_copy)
    fifth = tmp_path / "fifth"
    run(["git", "clone", "-q", str(repo_copy), str(fifth)], tmp_path)
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], fifth)
    run(["dvc", "pull"], fifth)
    assert run(["dvc", "status"], fifth).stdout.strip() == "Data and pipelines are up to date."


def test_a_failing_run_stops_the_study_with_its_error(repo_copy, tmp_path):
    tiny_study(repo_copy, tmp_path / "remote", latency_runs="many")  # read by train only
    with dask_cluster(tmp_path / "cluster", repo_copy, workers=1) as (address, _):
        start = time.monotonic()
        coord = coordinator(repo_copy, address, tmp_path / "clones")
        out, err = coord.communicate(timeout=400)
    assert coord.returncode == 1, out + err
    assert "train@vit-100-" in err and "failed; the other runs were cancelled" in err, err
    assert "predict.latency_runs" in err, err  # the run's own error
    assert time.monotonic() - start < 300


def test_uncommitted_params_are_refused(repo_copy):
    check_committed(repo_copy)  # a clean copy passes
    (repo_copy / "params.yaml").write_text((repo_copy / "params.yaml").read_text() + "\n# edited\n")
    with pytest.raises(Refused, match=r"uncommitted changes .*params\.yaml.*\n.*commit them first"):
        check_committed(repo_copy)


def test_a_worker_clone_at_another_commit_is_refused_naming_both(repo_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"  # a commit the origin does not have
    run(["git", "clone", "-q", str(repo_copy), str(elsewhere)], tmp_path)
    run(["git", "commit", "-q", "--allow-empty", "-m", "not pushed"], elsewhere)
    study, origin_head = head(elsewhere), head(repo_copy)
    clone = tmp_path / "clone"
    with pytest.raises(Refused) as err:
        ensure_clone(clone, str(repo_copy), study, str(tmp_path / "remote"))
    assert f"is at commit {origin_head[:12]}" in str(err.value) and f"study's commit {study[:12]}" in str(err.value)
    # A clone with edited code or params is refused too; at the origin's commit it is accepted.
    ensure_clone(clone, str(repo_copy), origin_head, str(tmp_path / "remote"))
    (clone / "stages/train.py").write_text("# edited\n")
    with pytest.raises(Refused, match=r"local changes to .*stages/train\.py"):
        ensure_clone(clone, str(repo_copy), origin_head, str(tmp_path / "remote"))


def test_a_new_attempt_stops_what_a_killed_one_left_running_in_its_clone(tmp_path):
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    left = subprocess.Popen(["sleep", "120"], cwd=clone, start_new_session=True)  # an orphaned `dvc repro`
    other = subprocess.Popen(["sleep", "120"], cwd=tmp_path, start_new_session=True)  # not in the clone
    (clone / ".git" / GROUP_FILE).write_text(str(left.pid))
    try:
        stop_stale_attempt(clone)
        assert left.wait(timeout=10) == -signal.SIGKILL and other.poll() is None
        assert not (clone / ".git" / GROUP_FILE).exists()
        stop_stale_attempt(clone)  # nothing recorded: nothing to do
    finally:
        for proc in (left, other):
            proc.kill()
            proc.wait()


def test_a_job_array_index_maps_to_one_line_of_the_list(tmp_path):
    runs = tmp_path / "runs.txt"
    runs.write_text("train@vit-100-0\ntrain@vit-100-1\n\n")
    assert [listed_stage(runs, i) for i in (0, 1)] == ["train@vit-100-0", "train@vit-100-1"]
    with pytest.raises(Exception, match=r"array index 2 is out of range: .* 2 stage\(s\) \(--array=0-1\)"):
        listed_stage(runs, 2)
    script = (REPO / "slurm/train_array.sbatch").read_text()
    assert "--list" in script and '--index "$SLURM_ARRAY_TASK_ID"' in script


def test_a_one_machine_user_never_loads_dask():
    """stages.cluster imports Dask only when it dispatches; no other module imports it."""
    code = ("import sys, stages.cluster, stages.decide; "
            "assert 'distributed' not in sys.modules and 'dask' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    users = [p for p in (REPO / "stages").rglob("*.py") if re.search(r"^\s*(from|import) (dask|distributed)\b",
                                                                       p.read_text(encoding="utf-8"), re.M)]
    assert [p.relative_to(REPO).as_posix() for p in users] == ["stages/cluster.py"]


def test_every_test_scaling_md_names_exists():
    text = (REPO / "docs" / "cluster.md").read_text(encoding="utf-8")
    names = re.findall(r"tests/test_cluster\.py::(\w+)", text)
    defined = set(re.findall(r"^def (test_\w+)", Path(__file__).read_text(encoding="utf-8"), re.M))
    assert len(names) >= 5 and set(names) <= defined, set(names) - defined
