"""Benchmark: the default study's runs spread over 1, 2 (, 3) local Dask workers, each pinned to one core.

For each worker count N, in a fresh copy of the repository (as a clone has it: no outputs, no dvc.lock) with a
fresh local-folder DVC remote: a `dask scheduler`, N `dask worker --nthreads 1` processes each started under
`taskset -c <core>` with one TensorFlow/OpenMP thread, and `python -m stages.cluster run` (the coordinator,
pinned to the last core given: its upstream and downstream stages run on one machine whatever N is).
Wall time of the coordinator, its three phases (upstream stages, the dispatched runs, the final
`dvc repro --pull` with evaluate, report, explain), and per run the mean pull, run and push seconds.
``--baseline`` first runs a plain `dvc repro` in another copy pinned to one core: the single-machine
reference, whose metrics/comparison.json every cluster study's is checked against (stages.compare_reports:
thread counts may change floats, so "agree" is the test; "equal" when the files are identical).

    python benchmarks/scale_out.py [--workers 1 2 3] [--cores 0 1 2] [--baseline] [--tiny] [--out CSV] [--keep]

``--tiny``: a 1-layer ViT x 2 seeds, 1 epoch, 20 images per class (a minute or two: proves the script works;
written to benchmarks/scale_out_tiny.csv unless --out). Needs as many cores as the largest N (`--cores`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import yaml

from common import ROOT, child_env, copy_repo, machine, run, write_csv

OUT = Path(__file__).with_name("scale_out.csv")
TINY_OUT = Path(__file__).with_name("scale_out_tiny.csv")
BIN = Path(sys.executable).parent
ONE_THREAD = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def tiny(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["balance"]["images_per_class"] = 20
    params["study"].update(seeds=[0, 1], train_percent=[100])
    params["models"] = {"vit": {**params["models"]["vit"], "epochs": 1, "num_layers": 1, "hidden_dim": 32,
                                "mlp_dim": 64}}
    params["explain"].update(num_images=4, shap_max_evals=50)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def study_copy(dest: Path, small: bool) -> Path:
    """A committed copy of the repository, with a local-folder default DVC remote beside it."""
    dest.mkdir(parents=True)
    repo = copy_repo(dest / "repo")
    if small:
        tiny(repo)
        check(run(["git", "-c", "user.name=benchmark", "-c", "user.email=benchmark@example.com", "commit", "-qam",
                   "tiny study"], repo))
    check(run(["dvc", "remote", "add", "--local", "-d", "storage", str(dest / "remote")], repo))
    return repo


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, proc.args))} failed ({proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc


def pinned(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None and shutil.which("taskset") else []


@contextmanager
def cluster(tmp: Path, repo: Path, cores: list[int]):
    """A scheduler and one pinned worker per core; yields the scheduler's address."""
    env = {**child_env(), **ONE_THREAD, "PYTHONPATH": str(repo)}
    procs, file = [], tmp / "scheduler.json"

    def start(cmd: list[str], log: str):
        procs.append(subprocess.Popen(cmd, cwd=repo, env=env, stdout=(tmp / log).open("w"),
                                      stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
               "--scheduler-file", str(file)], "scheduler.log")
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        for i, core in enumerate(cores):
            start([*pinned(core), str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                   "--name", f"w{i}", "--no-dashboard", "--local-directory", str(tmp / f"w{i}")], f"w{i}.log")
        from distributed import Client

        with Client(address) as client:  # every worker up before the clock starts (else: their logs)
            client.wait_for_workers(len(cores), timeout=180)
        yield address
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0


def quality(reference: Path | None, repo: Path) -> str:
    """'equal' (identical comparison.json), 'agree' (compare_reports exits 0), else 'DISAGREE'; '' alone."""
    if reference is None:
        return ""
    ours = repo / "metrics/comparison.json"
    if json.loads(ours.read_text()) == json.loads(reference.read_text()):
        return "equal"
    proc = run([sys.executable, "-m", "stages.compare_reports", str(reference), str(ours)], ROOT)
    return "agree" if proc.returncode == 0 else "DISAGREE"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cores", type=int, nargs="+", help="the cores to pin workers to (default 0 1 ... N-1)")
    parser.add_argument("--baseline", action="store_true", help="first a plain `dvc repro` on one core")
    parser.add_argument("--tiny", action="store_true", help="a tiny grid: proves the script works")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    args = parser.parse_args()
    cores = args.cores or list(range(max(args.workers)))
    if len(set(cores)) < max(args.workers):
        sys.exit(f"--cores names {len(set(cores))} core(s), fewer than {max(args.workers)} workers: one core each")
    if not set(cores) <= os.sched_getaffinity(0):
        sys.exit(f"--cores {cores}: this machine has cores {sorted(os.sched_getaffinity(0))}")
    out = args.out or (TINY_OUT if args.tiny else OUT)
    scratch = Path(tempfile.mkdtemp(prefix="scale-out-"))
    common = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": machine(),
              "cpus": os.cpu_count(), "grid": "tiny" if args.tiny else "default"}
    rows, reference, one_worker = [], None, None
    try:
        if args.baseline:
            repo = study_copy(scratch / "baseline", args.tiny)
            start = time.perf_counter()
            check(run([*pinned(cores[-1]), "dvc", "repro"], repo, ONE_THREAD))
            wall = round(time.perf_counter() - start, 1)
            reference = repo / "metrics/comparison.json"
            runs = sum(name.startswith("train@") for name in yaml.safe_load((repo / "dvc.lock").read_text())["stages"])
            rows.append({**common, "mode": "dvc repro", "workers": 0, "runs": runs, "wall_s": wall, "speedup": "",
                         "upstream_s": "", "dispatch_s": "", "finish_s": "", "pull_s": "", "run_s": "", "push_s": "",
                         "quality": "reference"})
            print(f"baseline: dvc repro on core {cores[-1]}: {wall} s", flush=True)
        for n in args.workers:
            repo = study_copy(scratch / f"workers{n}", args.tiny)
            with cluster(scratch / f"workers{n}", repo, cores[:n]) as address:
                start = time.perf_counter()
                proc = check(run([*pinned(cores[-1]), sys.executable, "-m", "stages.cluster", "run", "--scheduler",
                                  address, "--clones", str(scratch / f"workers{n}" / "clones")], repo, ONE_THREAD))
                wall = round(time.perf_counter() - start, 1)
            line = next(l for l in proc.stdout.splitlines() if l.startswith("cluster: timings "))
            timings = json.loads(line.split("cluster: timings ", 1)[1])
            results = timings["runs"]
            one_worker = one_worker or wall
            if reference is None:
                reference = repo / "metrics/comparison.json"  # the first study's, when no baseline ran
                shutil.copy(reference, scratch / "reference.json")
                reference = scratch / "reference.json"
                verdict = "reference"
            else:
                verdict = quality(reference, repo)
            rows.append({**common, "mode": "stages.cluster", "workers": n, "runs": len(results), "wall_s": wall,
                         "speedup": round(one_worker / wall, 2), "upstream_s": timings["upstream_s"],
                         "dispatch_s": timings["dispatch_s"], "finish_s": timings["finish_s"],
                         "pull_s": mean([r["pull_s"] for r in results]), "run_s": mean([r["run_s"] for r in results]),
                         "push_s": mean([r["push_s"] for r in results]), "quality": verdict})
            print(f"{n} worker(s): {wall} s (x{rows[-1]['speedup']} vs 1), runs {timings['dispatch_s']} s, "
                  f"per run pull {rows[-1]['pull_s']} s, push {rows[-1]['push_s']} s, quality {verdict}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept {scratch}")
    write_csv(out, rows)
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
