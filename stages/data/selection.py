"""Which classes and which K images per class ``balance`` keeps (rules: stages.data.balance_params)."""

from __future__ import annotations

import hashlib

from stages.core.errors import ParamError
from stages.data.balance_params import MIN, MIN_K


def check_files_suffice(files: dict[str, list[str]], images_per_class: int | str) -> None:
    """Fail before spending minutes decoding when no class even has K image files."""
    largest = max((len(f) for f in files.values()), default=0)
    if images_per_class != MIN and images_per_class > largest:
        raise ParamError(
            "balance.images_per_class",
            f"{images_per_class} is larger than every class (the largest has {largest} image files)",
        )


def choose_classes(counts: dict[str, int], select: str, k: int, n: int, names: list[str]) -> list[str]:
    """Apply the class-selection rule to per-class counts of decodable images."""
    eligible = {c: v for c, v in counts.items() if v >= k}
    largest = max(counts.values(), default=0)
    if select == "names":
        short = [f"{c} ({counts[c]})" for c in names if counts[c] < k]
        if short:
            raise ParamError(
                "balance.images_per_class",
                f"{k} is more than these classes have decodable images: {', '.join(short)}",
            )
        return sorted(names)
    if not eligible:
        raise ParamError(
            "balance.images_per_class",
            f"{k} is larger than every class (the largest has {largest} decodable images)",
        )
    if select == "all":
        chosen = sorted(eligible)
    else:  # fewest: ascending count, ties broken by name so the rule is deterministic
        if n > len(eligible):
            raise ParamError(
                "balance.num_classes",
                f"{n} classes requested but only {len(eligible)} of {len(counts)} classes "
                f"have at least {k} decodable images",
            )
        chosen = sorted(sorted(eligible, key=lambda c: (eligible[c], c))[:n])
    if len(chosen) < 2:
        raise ParamError("balance.images_per_class", f"only {len(chosen)} class has at least {k} images; need 2")
    return chosen


def resolve_min(counts: dict[str, int], select: str, names: list[str]) -> int:
    """K for ``images_per_class: min``: the smallest decodable count among the classes the
    rule keeps (``all``: those with any decodable image; ``names``: the named ones)."""
    key = "balance.images_per_class"
    kept = {c: counts[c] for c in names} if select == "names" else {c: v for c, v in counts.items() if v}
    if len(kept) < 2:
        have = ", ".join(f"{c} ({v})" for c, v in kept.items()) or "none"
        raise ParamError(key, f"{MIN!r} needs 2 classes with a decodable image; only {len(kept)} of "
                              f"{len(counts)} classes has one ({have})")
    smallest = min(kept, key=lambda c: (kept[c], c))
    if kept[smallest] < MIN_K:
        raise ParamError(
            key,
            f"{MIN!r} resolves to {kept[smallest]}, set by {smallest} ({kept[smallest]} decodable images); "
            f"need at least {MIN_K} so that train, val and test each get an image of every class "
            f"(leave the class out with select 'names')",
        )
    return kept[smallest]


def choose_images(paths: list[str], k: int, seed: int) -> list[str]:
    """K paths ranked by a seeded hash of the path.

    Independent of listing order and stable: adding an image to a class changes
    at most one selected image.
    """
    rank = lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest()  # noqa: E731
    return sorted(sorted(paths, key=rank)[:k])
