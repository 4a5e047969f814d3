"""DVC pipeline stages: one module per stage, each runnable as ``python -m stages.<name>``."""

import os

# TensorFlow's C++ log level (2: warnings and errors only); set before TensorFlow loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# ... and its start-up lines that ignore that level, filtered from the first import.
from stages.core import tf_startup  # noqa: E402

tf_startup.install()
