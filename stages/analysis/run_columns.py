"""The keys of a run's metrics files that the report reads, split into quality and cost.

A run has four metrics files (stages/core/layout.py): quality in ``metrics/train/...`` and
``metrics/eval/...``, and its cost -- seconds, images per second: the machine's, not the model's --
in ``metrics/cost/train/...`` and ``metrics/cost/eval/...``. The report merges the four into one row
of :data:`COLUMNS`; its summaries keep the two apart too (``metrics/comparison.json`` quality only,
``metrics/cost/comparison.json`` the :data:`TIMINGS`), and ``stages.compare_reports`` compares
the timings only when asked.
"""

from __future__ import annotations

SIZE_COLUMNS = ("train_percent", "train_images", "train_images_per_class")  # in the train metrics file
# In the order of comparison.csv's columns; the *_COST ones come from the cost files.
EVAL_COLUMNS = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece", "eval_time_s",
                "infer_img_per_s", "latency_ms_b1", "model_size_mb", "model_file_mb", "params_total", "params_trainable")
# The trained model's own figures, in the train metrics file (train saves the model): its weights
# (model_size_mb: what a user deploys), its .keras file and its parameters.
MODEL_COLUMNS = ("model_size_mb", "model_file_mb", "params_total", "params_trainable")
TRAIN_COLUMNS = ("fit_time_s", "epochs_run", "time_per_trainable_param")
EVAL_COST = ("eval_time_s", "infer_img_per_s", "latency_ms_b1")
TRAIN_COST = ("fit_time_s", "time_per_trainable_param")
EVAL_QUALITY = tuple(k for k in EVAL_COLUMNS if k not in EVAL_COST and k not in MODEL_COLUMNS)
TRAIN_QUALITY = tuple(k for k in TRAIN_COLUMNS if k not in TRAIN_COST)
COLUMNS = ("model", "family", "seed", *SIZE_COLUMNS, *EVAL_COLUMNS, *TRAIN_COLUMNS)

# Summarised over runs (mean, sd, 95 % CI).
QUALITY = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "log_loss", "ece")
TIMINGS = (*EVAL_COST, "fit_time_s")  # metrics/cost/comparison.json, never metrics/comparison.json
