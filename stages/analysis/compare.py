"""McNemar's exact test: two models on the same test images, within one run.

Both models are scored on the same images, so the comparison is paired: only the
images where exactly one of them is right carry information. Across repeated runs
(seeds) the report uses stages/analysis/over_runs.py; McNemar covers test-set sampling
within each run.
"""

from __future__ import annotations

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's exact test; ``b`` = images only A gets right, ``c`` = images only B gets right."""
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b_.shape:
        raise ValueError(f"correct_a and correct_b differ in shape: {a.shape} vs {b_.shape}")
    table = np.array([[np.sum(a & b_), np.sum(a & ~b_)], [np.sum(~a & b_), np.sum(~a & ~b_)]])
    result = mcnemar(table, exact=True)
    return {"b": int(table[0, 1]), "c": int(table[1, 0]), "p_value": float(result.pvalue)}
