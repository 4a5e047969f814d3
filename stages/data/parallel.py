"""Ordered parallel map over images with a progress bar."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

# Below this many items a process pool costs more than it saves.
MIN_ITEMS_FOR_POOL = 256
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _worker_signals() -> None:
    """A worker dies at once when the pool terminates it (SIGTERM), even if stuck in a C lock,
    and leaves Ctrl-C (sent to the whole process group) to its parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _start_pool(workers: int):
    """A fork pool, started so that no SIGINT/SIGTERM is handled inside Python's at-fork hooks:
    an exception raised there is swallowed ("Exception ignored") and, in logging's hook, leaves
    logging's lock held, so the next pool's workers deadlock on it and the stage hangs. While
    the pool starts, a stop signal is only recorded (and held back from the workers, which
    unblock it once their own handlers are set); it is raised again right after, in ordinary code."""
    caught: list[int] = []
    in_main = threading.current_thread() is threading.main_thread()  # where Python runs signal handlers
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in STOP_SIGNALS} \
        if in_main else {}
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_signals)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        pool.terminate()
        for s in dict.fromkeys(caught):
            signal.raise_signal(s)  # to the stage's own handler, now restored
    return pool


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
        with _start_pool(workers) as pool:
            while batch := list(itertools.islice(items, window)):
                for result in pool.imap(func, batch, chunksize=chunksize):
                    yield result
                    bar.update()
    finally:
        bar.close()
