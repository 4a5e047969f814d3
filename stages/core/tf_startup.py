"""Keep TensorFlow's start-up lines off a stage's output, and nothing else.

TF_CPP_MIN_LOG_LEVEL does not reach the lines TensorFlow's C++ code writes while it
loads (before its logging is initialised: the absl banner, oneDNN's notice, "Could not
find cuda drivers") nor, on a machine without an NVIDIA driver, the `failed call to
cuInit` error of the first device query. A user reads them as failures. So the first
`import tensorflow` (direct, or through keras) runs with file descriptor 2 pointed at a
temporary file, followed by a device query so cuInit happens inside it too; then every
captured line is written back to stderr except those: C++ log lines below
TF_CPP_MIN_LOG_LEVEL, the banner, and cuInit's error where /dev/nvidiactl is absent.
Python warnings and errors raised by the import come through, in order.

Hand-written: neither TensorFlow nor absl offers a switch for pre-initialisation lines.
It changes only what reaches stderr -- no result -- so it is process set-up, not a stage
dependency (stages/core/code_deps.py); tests/test_tf_startup.py shows both halves.
"""

from __future__ import annotations

import importlib.abc
import os
import re
import sys
import tempfile

# glog/absl format: severity letter, MMDD, time, thread id, file:line]
_CPP_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\] ")
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_CUINIT = re.compile(r"cuda_platform\.cc:\d+\] failed call to cuInit")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def is_noise(line: str, min_level: int, nvidia_driver: bool) -> bool:
    """Whether a captured stderr line is start-up noise to drop."""
    if line.rstrip("\r\n") == _BANNER:
        return True
    match = _CPP_LINE.match(line)
    if match is None:
        return False
    if _SEVERITY[match.group(1)] < min_level:
        return True
    return not nvidia_driver and _CUINIT.search(line) is not None


def _min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


class _QuietLoader(importlib.abc.Loader):
    """The real loader of `tensorflow`, run with fd 2 captured and filtered."""

    def __init__(self, real: importlib.abc.Loader):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.real.exec_module(module)
                # The first device query (cuInit) inside the capture; it fixes no device set-up.
                getattr(getattr(module, "config", None), "list_physical_devices", lambda: None)()
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                module.__loader__ = self.real
                if module.__spec__ is not None:
                    module.__spec__.loader = self.real
                captured.seek(0)
                text = captured.read().decode("utf-8", errors="replace")
                level, driver = _min_level(), os.path.exists("/dev/nvidiactl")
                kept = [ln for ln in text.splitlines(keepends=True) if not is_noise(ln, level, driver)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()

    def __getattr__(self, name):  # get_filename, is_package, resource readers, ...
        return getattr(self.real, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the first import only
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                break
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Filter the first `import tensorflow` of this process (no-op once it is imported)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
