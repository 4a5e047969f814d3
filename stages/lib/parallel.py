"""Ordered parallel map over images with a progress bar."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

# Below this many items a process pool costs more than it saves.
MIN_ITEMS_FOR_POOL = 256


def imap_progress(
    func: Callable[[T], R], items: Iterable[T], total: int, desc: str, chunksize: int = 16
) -> Iterator[R]:
    """``func`` over ``items`` in input order, on every core, with a tqdm bar on stderr.

    ``func`` must be a module-level function (it is pickled to worker processes).
    Items are fed to the pool in bounded windows, so memory stays flat however
    many items there are, even if the consumer is slower than the workers.
    """
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    bar = tqdm(total=total, desc=desc, unit="img", mininterval=1.0, dynamic_ncols=True)
    try:
        if workers <= 1 or total < MIN_ITEMS_FOR_POOL:
            for item in items:
                yield func(item)
                bar.update()
            return
        window = workers * chunksize * 4
        items = iter(items)
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            while batch := list(itertools.islice(items, window)):
                for result in pool.imap(func, batch, chunksize=chunksize):
                    yield result
                    bar.update()
    finally:
        bar.close()
