"""Images per split for a manifest of n images: what split makes and preflight projects."""

from __future__ import annotations

import math
from fractions import Fraction

from stages.core.errors import ParamError


def split_totals(sizes: dict[str, Fraction | int], n: int) -> dict[str, int]:
    """Number of images per split for ``n`` images."""
    kinds = {type(v) for v in sizes.values()}
    if len(kinds) > 1:
        raise ParamError("split", "give train, val and test all as counts or all as fractions")
    if int in kinds:
        total = sum(sizes.values())
        if total > n:
            raise ParamError("split", f"train + val + test = {total} images, but the manifest has only {n}")
        return dict(sizes)
    total = sum(sizes.values())
    # Decimal fractions such as 0.333 are allowed to miss 1 by rounding error.
    if abs(total - 1) > Fraction(1, 1000):
        raise ParamError("split", f"fractions train + val + test must add up to 1, got {float(total):.4f}")
    val, test = (math.floor(sizes[s] * n + Fraction(1, 2)) for s in ("val", "test"))
    return {"train": n - val - test, "val": val, "test": test}
