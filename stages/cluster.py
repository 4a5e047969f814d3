"""Spread a study's training runs over the workers of a Dask cluster, one DVC cache for all of them.

Usage (docs/cluster.md):

    python -m stages.cluster run --scheduler tcp://HOST:8786     # the coordinator (`make distribute`)
    python -m stages.cluster prepare > runs.txt                   # upstream stages; the runs to do, one a line
    python -m stages.cluster run-one STAGE --commit SHA --remote URL --origin GIT_URL --clone DIR
                                                                  # one run on this machine (a SLURM array task)

The coordinator refuses uncommitted changes to params.yaml, dvc.yaml, conf/ or stages/ (the workers run the
committed ones), runs the stages upstream of the `train@` runs here (data stages, family, features: cheap),
saves and pushes their run-cache entries, then hands every stale `train@` stage to the Dask cluster as one
task. A task runs on its worker in the worker's own clone at the coordinator's commit: `dvc repro --pull` of
the run's upstream stages (restored from the run-cache, nothing recomputed), `dvc repro --single-item` of
the run, then `dvc commit -f` (which saves its run-cache entry) and a push of the entry's files, then of the
entry itself: the remote holds a run's entry only once every file it names is there. Last, here,
`dvc repro --pull`: every run is restored from the remote's run-cache, evaluate, report and explain run.

Why a run-cache entry needs our own push: DVC 3 saves none for a stage with a `cache: false` out (every
`train@` has some: its metrics JSONs) and `dvc push --run-cache` uploads the entries but not the
uncached files they name; `push_runs` does both with DVC's own StageCache (docs/cluster.md, "How").

Exit 0 when every run is in the remote and the pipeline is up to date; 1 when a run fails (its stage and
the end of its output are named; the other runs are cancelled); 2 on a refusal (uncommitted changes, a
clone at another commit, no DVC remote).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stages.core.errors import PipelineError

TRAIN = "train@"
# What a run reads from the commit (dvc.lock and the metrics files change as stages run: not these).
WATCHED = ("params.yaml", "dvc.yaml", "conf", "stages")
PIPELINE = "dvc.yaml"  # every stage is in it: a stage is named by its name (train@vit-100-0)
GROUP_FILE = "cluster-run.pgid"  # in a clone's .git/: the process group of the `dvc repro` running there
REMOTE_NAME = "cluster"  # the remote a worker's clone is given (.dvc/config.local, not committed)


class Refused(PipelineError):
    """Not run: the repository or a worker's clone is not the commit the study runs at."""

    exit_code = 2


class RunFailed(PipelineError):
    exit_code = 1


def sh(cmd: list[str], cwd: Path | str, check: bool = True, group: Path | None = None) -> subprocess.CompletedProcess:
    """``cmd`` in ``cwd``, output captured; this interpreter's folder first on PATH (DVC stages call
    `python`). With ``check``, a non-zero exit raises RunFailed naming the command and its output's end.
    With ``group``, ``cmd`` and its children run in a process group of their own, its id in that file while
    it runs (what stop_stale_attempt kills)."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=group is not None) as popen:
        if group is not None:
            group.write_text(str(popen.pid))
        stdout, stderr = popen.communicate()
    if group is not None:
        group.unlink(missing_ok=True)
    proc = subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
    if check and proc.returncode:
        raise RunFailed(f"`{' '.join(cmd)}` failed (exit {proc.returncode}) in {cwd}:\n{tail(proc)}")
    return proc


def tail(proc: subprocess.CompletedProcess, chars: int = 3000) -> str:
    return (proc.stdout + proc.stderr).strip()[-chars:]


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def head(repo: Path) -> str:
    return sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def changed(repo: Path, paths: tuple[str, ...] = ()) -> list[str]:
    """``git status --porcelain`` lines of tracked changes and untracked files (under ``paths``)."""
    out = sh(["git", "status", "--porcelain", "--", *paths], repo).stdout
    return [line for line in out.splitlines() if line.strip()]


# --- the plan: which stages, in which order ---------------------------------------------------------

def pipeline(repo: Path) -> dict[str, list[str]]:
    """Every stage of dvc.yaml in DAG order (upstream first), each with the stages it depends on, directly or
    not, in the same order."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        graph = dvc_repo.index.graph  # an edge goes from a stage to a stage it depends on
        order = list(reversed(list(nx.topological_sort(graph))))
        return {s.name: [u.name for u in order if u in nx.descendants(graph, s)] for s in order}


def plan(repo: Path) -> tuple[list[str], list[str], list[str]]:
    """(the stages upstream of the `train@` runs; the `train@` stages; the others: evaluate, report, explain)."""
    stages = pipeline(repo)
    train = [name for name in stages if name.startswith(TRAIN)]
    upstream = [name for name in stages if any(name in stages[t] for t in train)]
    return upstream, train, [name for name in stages if name not in train and name not in upstream]


def upstream_of(repo: Path, stage: str) -> list[str]:
    stages = pipeline(repo)
    if stage not in stages:
        raise RunFailed(f"no stage {stage!r} in dvc.yaml at this commit (`dvc stage list`)")
    return stages[stage]


def stale(repo: Path, stages: list[str]) -> list[str]:
    """The ``stages`` `dvc status` reports changed (not in dvc.lock, or their deps or outs differ)."""
    if not stages:
        return []
    status = json.loads(sh(dvc("status", "--json", *stages), repo).stdout or "{}")
    return [s for s in stages if s in status]


# --- the remote: run-cache entries with every file they name -----------------------------------------

def remote_url(repo: Path) -> str:
    """The URL of the repository's default DVC remote (a local path made absolute)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        name = dvc_repo.config["core"].get("remote")
        if not name:
            raise Refused("no default DVC remote: the workers share results through one; add it first, e.g. "
                          "`dvc remote add -d storage s3://bucket/path` (or a shared folder)")
        url = dvc_repo.config["remote"][name]["url"]
    return url if re.match(r"^[a-z][a-z0-9+.-]*://", url) else str((repo / ".dvc" / url).resolve())


def push_runs(repo: Path, stages: list[str]) -> None:
    """Save each up-to-date stage's run-cache entry (`dvc commit -f`), then push every file it names to the
    default remote, then the entry itself: an entry on the remote always has its files there."""
    if not stages:
        return
    sh(dvc("commit", "--force", *stages), repo)
    from dvc.repo import Repo
    from dvc.stage.cache import _get_stage_hash

    with Repo(str(repo)) as dvc_repo:
        cache = dvc_repo.stage_cache
        remote_odb = dvc_repo.cloud.get_remote_odb(None, "push --run-cache", hash_name="md5-dos2unix")
        for name in stages:
            (stage,) = dvc_repo.stage.collect(f"{repo.absolute() / PIPELINE}:{name}")
            key = _get_stage_hash(stage)
            folder = Path(cache._get_cache_dir(key))
            entries = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
            if not entries:
                raise RunFailed(f"{name}: `dvc commit -f` saved no run-cache entry (an output not in the repo?)")
            entry = entries[-1].name
            for odb, objs in cache.get_used_objs([(key, entry)]).items():
                result = dvc_repo.cloud.push(objs, remote=None)
                if result.failed:
                    raise RunFailed(f"{name}: {len(result.failed)} file(s) failed to upload to the remote")
            fs = remote_odb.fs
            dest = fs.join(remote_odb.path, "runs", key[:2], key, entry)
            fs.makedirs(fs.parent(dest), exist_ok=True)
            tmp = f"{dest}.tmp-{os.getpid()}"  # the entry appears whole or not at all
            fs.put_file(str(folder / entry), tmp)
            fs.mv(tmp, dest)


# --- one run, on a worker ------------------------------------------------------------------------------

def ensure_clone(clone: Path, origin: str, commit: str, remote: str) -> Path:
    """``clone`` at ``commit`` (cloned from ``origin`` if absent, else fetched and checked out), its default
    DVC remote ``remote``; refused, naming both commits, when it cannot be moved there."""
    if not (clone / ".git").exists():
        clone.parent.mkdir(parents=True, exist_ok=True)
        sh(["git", "clone", "--quiet", origin, str(clone)], clone.parent)
    current = sh(["git", "rev-parse", "--verify", "--quiet", "HEAD"], clone, check=False).stdout.strip()
    edited = changed(clone, WATCHED) if current else []
    if edited:
        raise Refused(f"worker clone {clone} (commit {current[:12]}) has local changes to {'; '.join(edited)}; "
                      f"the study runs at {commit[:12]}: discard them or give the worker another --clone")
    if current != commit:  # a checkout at another commit: moved, its outputs' changes discarded
        fetch = sh(["git", "fetch", "--quiet", origin, commit], clone, check=False)
        move = sh(["git", "checkout", "--quiet", "--force", "--detach", commit], clone, check=False)
        if fetch.returncode or move.returncode:
            raise Refused(f"worker clone {clone} is at commit {current[:12] or '(none)'} and cannot be moved to "
                          f"the study's commit {commit[:12]}: {origin} does not have it (push it there first)\n"
                          f"{tail(fetch if fetch.returncode else move, 500)}")
    sh(dvc("remote", "add", "--local", "--force", "--default", REMOTE_NAME, remote), clone)
    return clone


def run_one(stage: str, clone: str, origin: str, commit: str, remote: str) -> dict:
    """One run in ``clone`` at ``commit``: the clone made ready here, the run in a process of its own in the
    clone (DVC's Python API works in the current folder; the clone's code runs it). Returns its timings."""
    start = time.perf_counter()
    where = ensure_clone(Path(clone).absolute(), origin, commit, remote)
    clone_s = round(time.perf_counter() - start, 2)
    proc = sh([sys.executable, "-m", "stages.cluster", "run-here", stage], where)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "clone": str(where), "clone_s": clone_s}


def stop_stale_attempt(where: Path) -> None:
    """Kill what an attempt killed in this clone left running: a Dask worker killed alone (its nanny starts
    another of the same name, which may get the run again) leaves its `dvc repro` and the stage running."""
    import psutil

    record = where / ".git" / GROUP_FILE
    try:
        group = int(record.read_text())
    except (OSError, ValueError):
        return
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == group and Path(proc.cwd()).resolve().is_relative_to(where.resolve()):
                proc.kill()
        except (psutil.Error, OSError):
            pass
    record.unlink(missing_ok=True)


def run_here(stage: str) -> dict:
    """In a clone at the study's commit: restore the run's inputs from the run-cache, run it (or restore it,
    when the remote has it already), push it with its run-cache entry. Returns the timings."""
    where = Path.cwd()
    stop_stale_attempt(where)
    group = where / ".git" / GROUP_FILE
    t0 = time.perf_counter()
    ups = upstream_of(where, stage)
    if ups:
        sh(dvc("repro", "--pull", *ups), where, group=group)
    t1 = time.perf_counter()
    out = sh(dvc("repro", "--pull", "--single-item", stage), where, group=group)
    t2 = time.perf_counter()
    push_runs(where, [stage])
    t3 = time.perf_counter()
    return {"stage": stage, "host": os.uname().nodename, "trained": f"Running stage '{stage}'" in out.stdout,
            "pull_s": round(t1 - t0, 2), "run_s": round(t2 - t1, 2), "push_s": round(t3 - t2, 2)}


def dask_task(stage: str, clones: str, origin: str, commit: str, remote: str) -> dict:
    """run_one in this Dask worker's own clone, ``clones``/<worker name> (a restarted worker of the same
    name reuses it; DVC drops the locks of a killed process)."""
    from distributed import get_worker

    name = re.sub(r"[^\w.-]", "_", str(get_worker().name))
    return run_one(stage, os.path.join(os.path.expanduser(clones), name), origin, commit, remote)


# --- the coordinator ---------------------------------------------------------------------------------

def check_committed(repo: Path) -> str:
    dirty = changed(repo, WATCHED)
    if dirty:
        raise Refused("uncommitted changes the workers would not see (they run the commit): "
                      f"{'; '.join(dirty)}\ncommit them first (git commit), then run again")
    return head(repo)


def prepare(repo: Path) -> tuple[str, str, list[str], list[str]]:
    """Refuse uncommitted code or params; run the stages upstream of the runs here and push them with their
    run-cache entries to the default DVC remote. Returns (commit, the remote's URL, the stale `train@` stages,
    every `train@` stage)."""
    commit = check_committed(repo)
    remote = remote_url(repo)
    upstream, train, _ = plan(repo)
    if upstream:
        sh(dvc("repro", "--pull", *upstream), repo)
        push_runs(repo, upstream)
    return commit, remote, stale(repo, train), train


def finish(repo: Path) -> None:
    """`dvc repro --pull` here: every run restored from the remote's run-cache, the downstream stages (evaluate,
    report, explain) run, then pushed with their run-cache entries: any clone's `dvc repro --pull` runs nothing."""
    final = sh(dvc("repro", "--pull"), repo)
    retrained = sorted(set(re.findall(r"Running stage '(train@[^']+)'", final.stdout)))
    if retrained:
        raise RunFailed(f"the final `dvc repro --pull` trained {', '.join(retrained)} instead of restoring it: "
                        "is every run on the remote?")
    push_runs(repo, plan(repo)[2])


def coordinate(repo: Path, scheduler: str, clones: str, origin: str | None = None, retries: int = 0) -> list[dict]:
    from distributed import Client, as_completed

    t0 = time.perf_counter()
    commit, remote, todo, train = prepare(repo)
    origin = origin or str(repo)
    t1 = time.perf_counter()
    print(f"cluster: commit {commit[:12]}, remote {remote}: upstream stages run and pushed in {t1 - t0:.0f} s; "
          f"{len(todo)} of {len(train)} run(s) to dispatch", flush=True)
    results: list[dict] = []
    tag = f"{commit[:12]}-{os.getpid()}-{time.time_ns()}"  # a task key per study, never one a past study left
    with Client(scheduler) as client:
        futures = {client.submit(dask_task, stage, clones, origin, commit, remote, key=f"{stage}-{tag}",
                                 pure=False, retries=retries): stage for stage in todo}
        for future in as_completed(futures):
            stage = futures[future]
            if future.status != "finished":
                error = future.exception()
                for other in futures:
                    other.cancel()
                raise RunFailed(f"{stage} failed; the other runs were cancelled (the finished ones are on the "
                                f"remote):\n{error}")
            result = future.result()
            results.append(result)
            print(f"cluster: {stage} done in {result['clone']} (pull {result['pull_s']} s, run {result['run_s']} s, "
                  f"push {result['push_s']} s)", flush=True)
    t2 = time.perf_counter()
    finish(repo)
    t3 = time.perf_counter()
    print(f"cluster: {len(train)} run(s) restored here, downstream stages run and pushed: {t3 - t0:.0f} s in all",
          flush=True)
    timings = {"upstream_s": round(t1 - t0, 2), "dispatch_s": round(t2 - t1, 2), "finish_s": round(t3 - t2, 2),
               "wall_s": round(t3 - t0, 2), "runs": results}
    print(f"cluster: timings {json.dumps(timings)}", flush=True)
    return results


def listed_stage(path: Path, index: int) -> str:
    """The ``index``-th (0-based) stage of a list `prepare` wrote: what job-array task ``index`` runs."""
    stages = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not 0 <= index < len(stages):
        raise RunFailed(f"array index {index} is out of range: {path} lists {len(stages)} stage(s) "
                        f"(--array=0-{len(stages) - 1})")
    return stages[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the coordinator: dispatch the stale train@ runs to a Dask cluster")
    run.add_argument("--scheduler", required=True, help="the Dask scheduler's address, e.g. tcp://host:8786")
    run.add_argument("--clones", default=os.path.join(tempfile.gettempdir(), "dvc-cluster-clones"),
                     help="the folder, on each worker, of the workers' clones (one per worker name)")
    run.add_argument("--origin", help="the git URL the workers clone (default: this repository's path)")
    run.add_argument("--retries", type=int, default=0,
                     help="retries of a run that failed (a killed worker's run is rescheduled regardless)")
    sub.add_parser("prepare", help="run and push the upstream stages; print the stale train@ stages, one a "
                                   "line (stdout), then the commit and remote to give run-one (stderr)")
    sub.add_parser("finish", help="`dvc repro --pull`: restore every run, run the downstream stages")
    here = sub.add_parser("run-here", help="(what run-one runs inside its clone) one train@ run, here")
    here.add_argument("stage")
    one = sub.add_parser("run-one", help="one train@ run in a clone at a commit (e.g. a SLURM array task)")
    one.add_argument("stage", nargs="?", help="a train@ stage (or --list and --index)")
    one.add_argument("--list", type=Path, help="a file of stages, one a line (what `prepare` printed)")
    one.add_argument("--index", type=int, help="0-based line of --list, e.g. $SLURM_ARRAY_TASK_ID")
    one.add_argument("--commit", required=True)
    one.add_argument("--remote", required=True, help="the DVC remote's URL")
    one.add_argument("--origin", required=True, help="the git URL to clone")
    one.add_argument("--clone", required=True, help="the clone's folder (created if absent)")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    try:
        if args.command == "run":
            coordinate(repo, args.scheduler, args.clones, args.origin, args.retries)
        elif args.command == "prepare":
            commit, remote, todo, _ = prepare(repo)
            print("\n".join(todo))
            print(f"# commit {commit}\n# remote {remote}", file=sys.stderr)
        elif args.command == "finish":
            finish(repo)
        elif args.command == "run-here":
            print(json.dumps(run_here(args.stage)))
        else:
            if (args.stage is None) == (args.list is None or args.index is None):
                parser.error("run-one takes a stage, or --list FILE and --index N")
            stage = args.stage or listed_stage(args.list, args.index)
            print(json.dumps(run_one(stage, args.clone, args.origin, args.commit, args.remote)))
        return 0
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
