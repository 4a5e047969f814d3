"""Reading and validating a stage's params.

A stage reads its params through :func:`stage_params`, which asks DVC for
exactly the keys that stage declares in dvc.yaml. A stage therefore cannot
depend on a param DVC does not track for it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable

from stages.lib.errors import ParamError


def stage_params(stage: str) -> dict:
    """Params declared by ``stage`` in dvc.yaml (resolved by DVC, -S overrides included)."""
    import dvc.api  # imported lazily: it is slow to import and only mains need it

    return dvc.api.params_show(stages=stage)


def model_stage_params(stage: str, argv: list[str] | None = None) -> tuple[str, int, int, dict, dict]:
    """For a per-run stage run as ``python -m stages.<stage> <model> --percent <p> --seed <seed>``
    (dvc.yaml ``matrix`` over ``models``, ``study.train_percent`` and ``study.seeds``, stage
    ``<stage>@<model>-<p>-<seed>``): (model name, seed, percent, every param that stage declares,
    that model's ``models.<model>`` entry)."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}")
    parser.add_argument("model", help="a key of the `models` section of params.yaml")
    parser.add_argument("--percent", type=int, default=100,
                        help="the run's training-set size, percent of each class's training images "
                             "(one of study.train_percent)")
    parser.add_argument("--seed", type=int, default=0, help="the run's training seed (one of study.seeds)")
    args = parser.parse_args(argv)
    name, seed, percent = args.model, args.seed, args.percent
    stage_name = f"{stage}@{name}-{percent}-{seed}"
    try:
        params = stage_params(stage_name)
    except Exception as err:  # DVC knows no such stage when `models` has no such key
        raise ParamError(
            f"models.{name}",
            f"DVC has no stage {stage_name}: is {name!r} a key of models, {percent} listed in "
            f"study.train_percent and {seed} in study.seeds? ({type(err).__name__}: {err})",
        ) from None
    models = params.get("models", {})
    if name not in models:
        raise ParamError(f"models.{name}", "no such model in params.yaml")
    return name, seed, percent, params, models[name]


STUDY_KEYS = ("seeds", "train_percent")


def study_seeds(values: Any) -> list[int]:
    """``study.seeds``: the training seeds, distinct non-negative integers, at least one."""
    seeds = Section(values, "study", known=STUDY_KEYS).int_list("seeds", minimum=0)
    if len(set(seeds)) != len(seeds):
        raise ParamError("study.seeds", f"seeds must be distinct, got {seeds}")
    return seeds


def study_percents(values: Any) -> list[int]:
    """``study.train_percent``: training-set sizes, percent of each class's training images
    (distinct integers in 1..100; 100 = every image), returned ascending."""
    p = Section(values, "study", known=STUDY_KEYS)
    percents = p.int_list("train_percent", minimum=1)
    if max(percents) > 100:
        raise ParamError("study.train_percent", f"percentages must be <= 100, got {max(percents)}")
    if len(set(percents)) != len(percents):
        raise ParamError("study.train_percent", f"sizes must be distinct, got {percents}")
    return sorted(percents)


class Section:
    """Typed, validated access to one params mapping; errors name the full key."""

    def __init__(self, values: Any, prefix: str, known: Iterable[str] | None = None):
        if not isinstance(values, dict):
            raise ParamError(prefix, f"expected a mapping, got {values!r}")
        self.values = values
        self.prefix = prefix
        if known is not None:
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ParamError(
                    self.key(unknown[0]), f"unknown key; known keys: {', '.join(sorted(known))}"
                )

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def raw(self, name: str, default: Any = ...) -> Any:
        if name in self.values:
            return self.values[name]
        if default is ...:
            raise ParamError(self.key(name), "missing")
        return default

    def int(self, name: str, minimum: int | None = None, default: Any = ...) -> int:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(self.key(name), f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ParamError(self.key(name), f"must be >= {minimum}, got {value}")
        return value

    def str(self, name: str, default: Any = ..., allow_empty: bool = True) -> str:
        value = self.raw(name, default)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ParamError(self.key(name), f"expected a string, got {value!r}")
        if not allow_empty and not value.strip():
            raise ParamError(self.key(name), "must not be empty")
        return value

    def choice(self, name: str, choices: Iterable[str], default: Any = ...) -> str:
        choices = list(choices)
        value = self.raw(name, default)
        if value not in choices:
            raise ParamError(self.key(name), f"must be one of {choices}, got {value!r}")
        return value

    def str_list(self, name: str, default: Any = ...) -> list[str]:
        value = self.raw(name, default)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            raise ParamError(self.key(name), f"expected a list of names, got {value!r}")
        return [str(v) for v in value]

    def int_list(self, name: str, minimum: int = 1, default: Any = ...) -> list[int]:
        value = self.raw(name, default)
        if not isinstance(value, list) or not value:
            raise ParamError(self.key(name), f"expected a non-empty list of integers, got {value!r}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ParamError(self.key(name), f"every entry must be an integer >= {minimum}, got {v!r}")
        return value

    def size(self, name: str) -> Fraction | int:
        """A split size: an integer count (>= 1) or a fraction in (0, 1) given as 0.15 or "2/3"."""
        value = self.raw(name)
        if isinstance(value, bool):
            raise ParamError(self.key(name), f"expected a count or a fraction, got {value!r}")
        if isinstance(value, int):
            if value < 1:
                raise ParamError(self.key(name), f"a count must be >= 1, got {value}")
            return value
        try:
            frac = Fraction(str(value).strip()) if isinstance(value, (str, float)) else None
        except (ValueError, ZeroDivisionError):
            frac = None
        if frac is None or not 0 < frac < 1:
            raise ParamError(
                self.key(name),
                f"expected a count (integer >= 1) or a fraction in (0, 1) such as 0.15 or '2/3', got {value!r}",
            )
        return frac
