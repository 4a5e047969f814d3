"""TensorFlow's start-up lines are kept off stage output; everything else comes through.

stages/core/tf_startup.py filters the first `import tensorflow`. A fake `tensorflow` package
shows what is dropped and what is kept (in order, and when the import fails); the real one
shows the lines a CPU machine printed before (absl banner, oneDNN notice, cuda drivers,
cuInit) are gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from stages.core.tf_startup import is_noise

REPO = Path(__file__).resolve().parents[1]
NVIDIA_DRIVER = os.path.exists("/dev/nvidiactl")
BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
INFO = "I0000 00:00:1796169004.791615   29002 port.cc:153] oneDNN custom operations are on."
ERROR = "E0000 00:00:1796169011.194650   29002 some_op.cc:12] a real C++ error"
CUINIT = ("E0000 00:00:1796169011.194650   29002 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")


def test_noise_follows_the_log_level_and_the_driver():
    assert is_noise(BANNER + "\n", 2, False)
    assert is_noise(INFO + "\n", 2, False) and not is_noise(INFO + "\n", 0, False)
    assert not is_noise(ERROR + "\n", 2, False) and is_noise(ERROR + "\n", 3, False)
    assert is_noise(CUINIT + "\n", 2, nvidia_driver=False)
    assert not is_noise(CUINIT + "\n", 2, nvidia_driver=True)  # a GPU machine's failure is news
    for line in ("Traceback (most recent call last):\n", "UserWarning: something\n", "I0000 not a log line\n"):
        assert not is_noise(line, 2, False)


def _fake_tensorflow(root: Path, body: str) -> None:
    pkg = root / "tensorflow"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(body))


def _python(code: str, *paths: Path, **env) -> subprocess.CompletedProcess:
    pythonpath = os.pathsep.join([*(str(p) for p in paths), str(REPO)])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=pythonpath, TF_CPP_MIN_LOG_LEVEL="2", **env))


def test_a_fake_tensorflow_loses_its_noise_and_keeps_the_rest(tmp_path):
    _fake_tensorflow(tmp_path, f"""
        import os, types, warnings
        for line in ({BANNER!r}, {INFO!r}, "first real line", {ERROR!r}):
            os.write(2, (line + "\\n").encode())
        warnings.warn("a Python warning")
        config = types.SimpleNamespace(list_physical_devices=lambda: os.write(2, {CUINIT!r}.encode() + b"\\n"))
        """)
    proc = _python("import stages, tensorflow; print(type(tensorflow.__loader__).__name__)", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "SourceFileLoader"  # the real loader is put back
    lines = proc.stderr.splitlines()
    assert BANNER not in lines and INFO not in lines
    kept = [line for line in lines if line in ("first real line", ERROR) or "UserWarning: a Python warning" in line]
    assert kept[:2] == ["first real line", ERROR] and len(kept) == 3, proc.stderr
    assert (CUINIT in lines) == NVIDIA_DRIVER

    # Without the filter every line reaches stderr: the fake really prints them.
    raw = _python("import tensorflow", tmp_path)
    assert BANNER in raw.stderr.splitlines() and INFO in raw.stderr.splitlines()


def test_a_failing_import_shows_what_it_printed_and_its_traceback(tmp_path):
    _fake_tensorflow(tmp_path, """
        import os
        os.write(2, b"loading the library failed here\\n")
        raise ImportError("libtensorflow_cc.so.2: cannot open shared object file")
        """)
    proc = _python("import stages, tensorflow", tmp_path)
    assert proc.returncode == 1
    assert "loading the library failed here" in proc.stderr
    assert "ImportError: libtensorflow_cc.so.2: cannot open shared object file" in proc.stderr


def test_the_real_tensorflow_starts_quietly_through_keras():
    proc = _python("import stages, keras, tensorflow as tf; print(int(tf.constant(1) + 1))")
    assert proc.returncode == 0 and proc.stdout.strip() == "2", proc.stderr
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers"):
        assert noise not in proc.stderr, proc.stderr
    assert ("cuInit" in proc.stderr) <= NVIDIA_DRIVER, proc.stderr
