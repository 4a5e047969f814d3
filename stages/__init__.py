"""DVC pipeline stages: one module per stage, each runnable as ``python -m stages.<name>``."""

import os

# TensorFlow's C++ start-up banner (oneDNN, CUDA probing) drowns the stage logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
