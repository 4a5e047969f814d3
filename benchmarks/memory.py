"""Benchmark: does the peak memory of `balance`, `split` and `prepare` stay flat as the dataset grows?

For each dataset size N (default 5,000 and 20,000 images, 20 classes) this generates an
image-folder dataset of photo-like 500x375 JPEGs (~30 KB each, every file's bytes distinct),
copies the repository without outputs into a fresh scratch repo (benchmarks/pipeline.py's
copy_repo), points params.yaml at the dataset (``embedded: []``, ``balance.source``, ``select:
all``, ``images_per_class: min``, split 0.7/0.15/0.15, ``prepare.image_sizes: [--image-size]``)
and runs ``python -m stages.balance``, ``stages.split`` and ``stages.prepare`` in turn, directly
(not through `dvc repro`, so DVC's own hashing is not measured).

While a stage runs, its process tree is sampled every 0.1 s with psutil:

  main_peak_rss_mb    peak RSS of the stage's own process (also the kernel's VmHWM high-water
                      mark where /proc has it, so a spike between two samples still counts);
  worker_peak_rss_mb  peak RSS of any single pool worker (0 when the stage used no pool:
                      stages/data/parallel.py runs fewer than 256 items in-process);
  tree_peak_pss_mb    peak of the tree's summed PSS. The workers are forked, so each one's RSS
                      counts every page it still shares with the parent; summing RSS would
                      count those pages once per worker. PSS splits each shared page between
                      the processes mapping it, so the sum is the tree's real footprint.
                      Where PSS cannot be read (not Linux, or access denied), summed RSS is
                      used and the row's memory_measure says ``rss`` instead of ``pss``.

RSS and PSS include resident file-backed pages, e.g. the pages of prepare's memory-mapped
output that were written and are still mapped. Also recorded: wall seconds per stage and,
for prepare, the on-disk size of data/prepared (store_mb). All *_mb columns are MiB.

Targets, checked per stage: the largest size's main_peak_rss and tree_peak_pss within 10 %
of the smallest size's (ratio <= 1.10), and both under 1 GiB at the largest size. The
script reports PASS/FAIL and exits 0 either way; it exits non-zero only if a stage fails.

    python benchmarks/memory.py [--sizes 5000 20000] [--classes 20] [--image-size 224]
        [--workdir DIR] [--keep] [--out benchmarks/memory.csv]

Needs ~(N x 30 KB + N x image-size^2 x 3 bytes) of free disk per size in the work dir
(~3.6 GB for 20,000 images at 224 px). The defaults take roughly 10 minutes on 2 cores
(extrapolated from small runs), mostly generating the 25,000 JPEGs and prepare decoding
them. Results go to benchmarks/memory.csv, one row per (size, stage).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import yaml
from PIL import Image

from common import ROOT, child_env, copy_repo, machine, write_csv

OUT = Path(__file__).with_name("memory.csv")
STAGES = ("balance", "split", "prepare")
SAMPLE_S = 0.1
MIB = 2**20
WITHIN = 1.10  # largest / smallest size
LIMIT_MIB = 1024
WIDTH, HEIGHT = 500, 375
COLUMNS = ("images", "classes", "image_size", "stage", "wall_s", "main_peak_rss_mb", "worker_peak_rss_mb",
           "tree_peak_pss_mb", "memory_measure", "store_mb", "cpu_count", "machine", "date")


# --- dataset ---------------------------------------------------------------------------------

def write_image(job: tuple[str, int]) -> None:
    """One photo-like JPEG: a random 8x6 colour grid upscaled bicubically (smooth, compressible
    like a photo) plus mild noise, so no two files share bytes (balance rejects cross-class copies)."""
    path, seed = job
    rng = np.random.default_rng(seed)
    grid = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    smooth = np.asarray(grid.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), dtype=np.float32)
    noisy = smooth + 3 * rng.standard_normal(smooth.shape, dtype=np.float32)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def make_dataset(folder: Path, images: int, classes: int) -> None:
    """``folder/class_XX/img_YYYYY.jpg``, images / classes per class, on every core."""
    per_class = images // classes
    jobs = []
    for c in range(classes):
        (folder / f"class_{c:02d}").mkdir(parents=True)
        jobs += [(str(folder / f"class_{c:02d}" / f"img_{j:05d}.jpg"), c * per_class + j) for j in range(per_class)]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        for done, _ in enumerate(pool.imap_unordered(write_image, jobs, chunksize=32), 1):
            if done % 2000 == 0 or done == len(jobs):
                print(f"  generated {done}/{len(jobs)} images ({time.perf_counter() - start:.0f} s)", flush=True)


# --- scratch repo ----------------------------------------------------------------------------

def set_params(repo: Path, source: Path, image_size: int) -> None:
    """Point the copy's params.yaml at the generated folder; other keys stay as committed."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["embedded"] = []  # nothing to write: balance reads the generated folder
    params["balance"].update(source=str(source.resolve()), select="all", num_classes=None, images_per_class="min")
    params["split"].update(train=0.7, val=0.15, test=0.15)  # fractions: valid for any N
    params["prepare"]["image_sizes"] = [image_size]
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def disk_mib(folder: Path) -> float:
    """Bytes allocated on disk under ``folder`` (st_blocks, like du), in MiB."""
    files = [p.stat() for p in folder.rglob("*") if p.is_file()]
    return sum(getattr(s, "st_blocks", s.st_size // 512) * 512 for s in files) / MIB


# --- memory sampling -------------------------------------------------------------------------

@dataclass
class Peaks:
    main_rss: int = 0
    worker_rss: int = 0
    tree: int = 0
    measure: str = "pss"


def high_water(pid: int) -> int:
    """The kernel's peak RSS of ``pid`` (VmHWM, bytes); 0 where /proc does not give it."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            line = next((line for line in f if line.startswith("VmHWM:")), "")
    except OSError:
        return 0
    return int(line.split()[1]) * 1024 if line else 0


def read_memory(proc: psutil.Process) -> tuple[int, int | None]:
    """(RSS, PSS or None where it cannot be read); NoSuchProcess propagates."""
    try:
        info = proc.memory_full_info()
        return info.rss, getattr(info, "pss", None)
    except psutil.AccessDenied:  # PSS needs /proc/<pid>/smaps; RSS usually still readable
        return proc.memory_info().rss, None


def sample(main: psutil.Process, peaks: Peaks) -> None:
    """Fold one snapshot of ``main`` and all its descendants into ``peaks``."""
    try:
        procs = [main, *main.children(recursive=True)]
    except psutil.Error:  # the stage has just exited
        return
    total = 0
    for proc in procs:
        try:
            rss, pss = read_memory(proc)
        except psutil.Error:  # vanished (or unreadable) between listing and reading
            continue
        if pss is None:
            peaks.measure = "rss"
        total += rss if pss is None else pss
        peak_rss = max(rss, high_water(proc.pid))
        if proc.pid == main.pid:
            peaks.main_rss = max(peaks.main_rss, peak_rss)
        else:
            peaks.worker_rss = max(peaks.worker_rss, peak_rss)
    peaks.tree = max(peaks.tree, total)


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()[-lines:])


def run_stage(stage: str, repo: Path, logs: Path) -> tuple[float, Peaks]:
    """Run ``python -m stages.<stage>`` in ``repo`` while sampling its tree; exits if it fails."""
    out, err = logs / f"{stage}.out", logs / f"{stage}.err"
    peaks = Peaks()
    start = time.perf_counter()
    # Output goes to files, not pipes: a full pipe would block the stage while we sample.
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen([sys.executable, "-m", f"stages.{stage}"], cwd=repo, env=child_env(),
                                 stdout=stdout, stderr=stderr)
        main = psutil.Process(child.pid)
        while child.poll() is None:
            sample(main, peaks)
            time.sleep(SAMPLE_S)
    wall = time.perf_counter() - start
    if child.returncode:
        print(f"\n{stage} failed (exit {child.returncode}); last lines of its stderr:\n{tail(err)}\n"
              f"(rerun with --keep to inspect {repo})", file=sys.stderr)
        sys.exit(1)
    return wall, peaks


# --- one dataset size ------------------------------------------------------------------------

def bench_size(images: int, args: argparse.Namespace, workdir: Path, common: dict) -> list[dict]:
    source, repo, logs = (workdir / f"{kind}-{images}" for kind in ("images", "repo", "logs"))
    print(f"[{images} images] generating {source} ...", flush=True)
    make_dataset(source, images, args.classes)
    repo.mkdir()
    logs.mkdir()
    copy_repo(repo)
    set_params(repo, source, args.image_size)
    rows = []
    for stage in STAGES:
        print(f"[{images} images] {stage} ...", end="", flush=True)
        wall, peaks = run_stage(stage, repo, logs)
        print(f" {wall:.1f} s, main {peaks.main_rss / MIB:.0f} MiB, tree {peaks.tree / MIB:.0f} MiB", flush=True)
        store = disk_mib(repo / "data" / "prepared") if stage == "prepare" else None
        rows.append({
            "images": images, "classes": args.classes, "image_size": args.image_size, "stage": stage,
            "wall_s": round(wall, 2), "main_peak_rss_mb": round(peaks.main_rss / MIB, 1),
            "worker_peak_rss_mb": round(peaks.worker_rss / MIB, 1), "tree_peak_pss_mb": round(peaks.tree / MIB, 1),
            "memory_measure": peaks.measure, "store_mb": "" if store is None else round(store, 1), **common,
        })
    # The next size gets a fresh dataset and repo: free this one's disk now unless kept.
    if not args.keep:
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(repo, ignore_errors=True)
    return rows


# --- report ----------------------------------------------------------------------------------

def print_table(rows: list[dict]) -> None:
    cols = COLUMNS[:10]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("\n" + "  ".join(c.rjust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).rjust(widths[c]) for c in cols))


def print_verdicts(rows: list[dict]) -> None:
    sizes = sorted({r["images"] for r in rows})
    small, large = sizes[0], sizes[-1]
    print(f"\nratio {large} / {small} images (target <= {WITHIN:.2f}); "
          f"largest size under {LIMIT_MIB} MiB (main RSS and tree PSS):")
    for stage in STAGES:
        lo, hi = ({r["stage"]: r for r in rows if r["images"] == n}[stage] for n in (small, large))
        ratios = {k: hi[k] / lo[k] if lo[k] else float("inf") for k in ("main_peak_rss_mb", "tree_peak_pss_mb")}
        flat = all(v <= WITHIN for v in ratios.values())
        under = hi["main_peak_rss_mb"] < LIMIT_MIB and hi["tree_peak_pss_mb"] < LIMIT_MIB
        print(f"  {stage:<8} main RSS x{ratios['main_peak_rss_mb']:.3f}  tree {hi['memory_measure'].upper()} "
              f"x{ratios['tree_peak_pss_mb']:.3f}  flat: {'PASS' if flat else 'FAIL'}  "
              f"< 1 GiB: {'PASS' if under else 'FAIL'} ({hi['main_peak_rss_mb']:.0f} / "
              f"{hi['tree_peak_pss_mb']:.0f} MiB)")


def make_workdir(path: Path | None) -> Path:
    if path is None:
        return Path(tempfile.mkdtemp(prefix="memory-benchmark-"))
    if path.exists() and any(path.iterdir()):
        sys.exit(f"--workdir {path} is not empty")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000], help="dataset sizes (images)")
    parser.add_argument("--classes", type=int, default=20, help="classes per dataset (each size must divide by it)")
    parser.add_argument("--image-size", type=int, default=224, help="prepare.image_sizes: [this], in pixels")
    parser.add_argument("--workdir", type=Path, help="put datasets and repo copies here (absent or empty) "
                                                     "instead of a temp dir; removed afterwards unless --keep")
    parser.add_argument("--keep", action="store_true", help="keep the datasets, repo copies and stage logs")
    parser.add_argument("--out", type=Path, default=OUT, help=f"CSV to write (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args()
    if len(set(args.sizes)) < 2:
        parser.error("--sizes needs at least two different sizes to compare")
    if any(n % args.classes for n in args.sizes):
        parser.error(f"every size must be a multiple of --classes {args.classes}")

    common = {"cpu_count": os.cpu_count(), "machine": machine(),
              "date": datetime.now(timezone.utc).date().isoformat()}
    workdir = make_workdir(args.workdir)
    print(f"work dir: {workdir}", flush=True)
    try:
        rows = [row for n in sorted(set(args.sizes)) for row in bench_size(n, args, workdir, common)]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    write_csv(args.out, rows, list(COLUMNS))
    print_table(rows)
    print_verdicts(rows)
    print(f"\nwrote {args.out}" + (f"; datasets, repo copies and stage logs kept in {workdir}" if args.keep else ""))


if __name__ == "__main__":
    main()
