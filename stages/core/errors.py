"""User-facing errors and the stage entry-point wrapper.

Every stage's ``main()`` runs inside :func:`run_stage`, so a bad parameter or
bad input ends with one readable line on stderr and a non-zero exit instead
of a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator


class PipelineError(Exception):
    """An error the user can fix (bad input data or bad params)."""

    exit_code = 1

    def __str__(self) -> str:  # keep the message exactly as written
        return self.args[0] if self.args else ""


class ParamError(PipelineError):
    """A parameter value is invalid; the message names the params.yaml key.

    ``problems``: every (key, message) found at once (a section's schema reports all its
    bad keys together); ``key`` is the first's."""

    exit_code = 2

    def __init__(self, key: str, message: str, problems: list[tuple[str, str]] | None = None):
        self.key = key
        self.problems = problems or [(key, message)]
        text = f"params.yaml: {key}: {message}"
        for other_key, other in self.problems[1:]:
            text += f"\nparams.yaml: {other_key}: {other}"
        super().__init__(text)


class DataError(PipelineError):
    """The input data cannot be used; the message names the file or folder."""

    exit_code = 3


# Signals received by this process, kept because the exception a handler raises is not always
# seen: Python *ignores* an exception raised in an interpreter callback -- an at-fork hook (each
# worker pool start runs logging's), a __del__, a weakref callback -- so a SIGTERM landing there
# would be printed as "Exception ignored" and the stage would go on to finish and exit 0.
# atomic_output(s) and run_stage check this record, so no interrupted run publishes an output.
_RECEIVED: list[int] = []


def _interrupt(signum, frame):
    _RECEIVED.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def interrupted() -> int | None:
    """The first SIGINT/SIGTERM this stage received (None if none), even if its exception was lost."""
    return _RECEIVED[0] if _RECEIVED else None


def exit_if_interrupted() -> None:
    """Raise the interruption again where an interpreter callback swallowed it."""
    if (signum := interrupted()) is not None:
        raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """While the block runs, a SIGINT/SIGTERM is only recorded (:func:`interrupted` sees it), not
    raised: for a few steps that must all happen or none (publishing a stage's outputs). The
    caller raises it after the block (:func:`exit_if_interrupted`). Handlers can be set in the
    main thread only, where Python runs them; elsewhere nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda signum, frame: _RECEIVED.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(s, handler)


def stage_label() -> str:
    """The stage's DVC address (DVC sets DVC_STAGE, e.g. ``train@vit-100-0``), else the module's name."""
    module = getattr(sys.modules["__main__"], "__spec__", None)
    return os.environ.get("DVC_STAGE") or (module.name.rpartition(".")[2] if module else "stage")


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's main(), turning PipelineError into a clean exit; the last line says how long it took."""
    start = time.perf_counter()
    # SIGTERM (a scheduler, `kill`, DVC's queue) ends the stage like Ctrl-C does: as an exception,
    # so every atomic output in progress is deleted on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        main()
        exit_if_interrupted()
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        print(f"{stage_label()}: failed after {time.perf_counter() - start:.1f} s", file=sys.stderr)
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, SystemExit):
        if (signum := interrupted()) is None:
            raise
        name = signal.Signals(signum).name
        print(f"{stage_label()}: interrupted ({name}) after {time.perf_counter() - start:.1f} s", file=sys.stderr)
        sys.exit(128 + signum)
    print(f"{stage_label()}: done in {time.perf_counter() - start:.1f} s", flush=True)
