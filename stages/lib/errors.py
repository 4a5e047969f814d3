"""User-facing errors and the stage entry-point wrapper.

Every stage's ``main()`` runs inside :func:`run_stage`, so a bad parameter or
bad input ends with one readable line on stderr and a non-zero exit instead
of a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable


class PipelineError(Exception):
    """An error the user can fix (bad input data or bad params)."""

    exit_code = 1

    def __str__(self) -> str:  # keep the message exactly as written
        return self.args[0] if self.args else ""


class ParamError(PipelineError):
    """A parameter value is invalid; the message names the params.yaml key."""

    exit_code = 2

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"params.yaml: {key}: {message}")


class DataError(PipelineError):
    """The input data cannot be used; the message names the file or folder."""

    exit_code = 3


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's main(), turning PipelineError into a clean exit."""
    try:
        main()
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
