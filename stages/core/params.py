"""Reading and validating a stage's params.

A stage reads its params through :func:`stage_params`, which asks DVC for
exactly the keys that stage declares in dvc.yaml. A stage therefore cannot
depend on a param DVC does not track for it.

Each section is validated by a typed schema (a pydantic model, :class:`Schema`, declared next
to the code that uses it) through :func:`parse_section`, which turns pydantic's errors into one
:class:`ParamError` naming every bad key (``models.vit.epochs``), all of them at once.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stages.core.errors import ParamError

S = TypeVar("S", bound=BaseModel)


class Schema(BaseModel):
    """A params section: unknown keys are refused and nothing is coerced (``1`` is not true,
    ``"3"`` not 3: YAML already typed the values)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _known_keys(schema: type[BaseModel], path: tuple) -> list[str]:
    """The keys of the (nested) schema at ``path`` inside ``schema``."""
    for part in path:
        field = schema.model_fields.get(part) if isinstance(part, str) else None
        inner = getattr(field, "annotation", None) if field else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        schema = inner
    return sorted(schema.model_fields)


def _problem(error: dict, prefix: str, schema: type[BaseModel]) -> tuple[str, str]:
    loc = error["loc"]
    names = [str(part) for part in loc if isinstance(part, str)]
    key = ".".join([prefix, *names]) if names else prefix
    kind, message = error["type"], error["msg"]
    if kind == "missing":
        return key, "missing"
    if kind == "extra_forbidden":
        known = _known_keys(schema, tuple(loc[:-1]))
        return key, "unknown key" + (f"; known keys: {', '.join(known)}" if known else "")
    if kind == "value_error":  # our own validators' messages, as written
        return key, message.removeprefix("Value error, ")
    if kind == "string_too_short" and error.get("ctx", {}).get("min_length") == 1:
        return key, "must not be empty"
    ctx = error.get("ctx", {})
    message = {
        "greater_than_equal": f"must be >= {ctx.get('ge')}", "less_than_equal": f"must be <= {ctx.get('le')}",
        "greater_than": f"must be > {ctx.get('gt')}", "less_than": f"must be < {ctx.get('lt')}",
        "too_short": f"must have at least {ctx.get('min_length')} entries" if ctx.get("min_length") != 1
                     else "must be a non-empty list",
        "int_type": "expected an integer", "float_type": "expected a number", "bool_type": "expected true or false",
        "string_type": "expected a string", "list_type": "expected a list", "dict_type": "expected a mapping",
        "literal_error": f"must be one of {ctx.get('expected')}",
    }.get(kind, message)
    entries = [part for part in loc if isinstance(part, int)]
    where = f" (entry {entries[-1]})" if entries else ""
    return key, f"{message}{where}, got {error.get('input')!r}"


def parse_section(schema: type[S], values: Any, prefix: str) -> S:
    """``values`` (one params mapping, e.g. the ``evaluate`` section) validated by ``schema``;
    ParamError listing every bad key under ``prefix``."""
    if not isinstance(values, dict):
        raise ParamError(prefix, f"expected a mapping, got {values!r}")
    try:
        return schema.model_validate(values)
    except ValidationError as err:
        problems = [_problem(e, prefix, schema) for e in err.errors()]
        raise ParamError(*problems[0], problems=problems) from None


class NoSuchStage(Exception):
    """dvc.yaml defines no stage of that name (no such item of a foreach or matrix)."""


def _select(params: dict, dotted: str) -> dict:
    """``{"a": {"b": params["a"]["b"]}}`` for ``"a.b"``: the nesting dvc.api.params_show returns."""
    value, keys = params, dotted.split(".")
    for part in keys:
        value = value[part]
    for part in reversed(keys):
        value = {part: value}
    return value


def _merge(into: dict, other: dict) -> dict:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def stage_params(stage: str) -> dict:
    """Params declared by ``stage`` in dvc.yaml, read from params.yaml (-S overrides included: DVC
    writes them there first), nested as ``dvc.api.params_show(stages=stage)`` returns them.

    DVC's own resolver (dvc.parsing: foreach, matrix, ``${...}``) reads dvc.yaml; params_show
    itself also builds DVC's whole index and parses dvc.lock with a pure-Python YAML parser, which
    cost every stage 2 s on a fresh default and 8 s once the lock held 62 stages.
    ``tests/test_params.py`` checks this against params_show for every stage of every preset."""
    # Imported lazily: only mains need them.
    from dvc.dvcfile import ProjectFile
    from dvc.parsing import EntryNotFound
    from dvc.repo import Repo
    from dvc.utils.serialize import load_yaml

    repo = Repo()
    try:
        resolved = ProjectFile(repo, "dvc.yaml").resolver.resolve_one(stage)
    except (EntryNotFound, KeyError):
        raise NoSuchStage(f"Stage '{stage}' not found inside 'dvc.yaml' file") from None
    declared = next(iter(resolved.values())).get("params") or []
    params = load_yaml("params.yaml")
    result: dict = {}
    for entry in declared:
        keys = [entry] if isinstance(entry, str) else [k for file, ks in entry.items() if file == "params.yaml"
                                                       for k in (ks or [])]
        for key in keys:
            _merge(result, _select(params, key))
    return result


def matrix_stage_params(stage: str, key: str, question: str) -> dict:
    """:func:`stage_params` of one stage of a dvc.yaml ``matrix``. A stage DVC does not know
    means the params name no such item: a ParamError on ``key``, ``question`` saying what to
    check. Any other DVC error (dvc.yaml or params.yaml unreadable, an interpolation that
    fails) propagates with DVC's own message."""
    try:
        return stage_params(stage)
    except NoSuchStage as err:
        raise ParamError(key, f"DVC has no stage {stage}: {question} ({err})") from None


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
    params = matrix_stage_params(
        stage_name, f"models.{name}",
        f"is {name!r} a key of models, {percent} listed in study.train_percent and {seed} in study.seeds?",
    )
    models = params.get("models", {})
    if name not in models:
        raise ParamError(f"models.{name}", "no such model in params.yaml")
    return name, seed, percent, params, models[name]


class Study(Schema):
    """``study``: the training seeds and training-set sizes (percent of each class's training
    images; 100 = every image); ``max_seeds`` and ``seed_step``: the schedule of ``make decide``
    (stages/decide.py: at most ``max_seeds`` runs per model, ``seed_step`` seeds added per look);
    ``vary_split``: each run's seed also re-draws train/val/test from the same images
    (stages/core/prepared.py ``open_splits``), so the verdicts cover which images are tested."""

    seeds: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    train_percent: list[Annotated[int, Field(ge=1, le=100)]] = Field(min_length=1)
    max_seeds: int = Field(10, ge=1)
    seed_step: int = Field(2, ge=1)
    vary_split: bool = False

    @field_validator("seeds", "train_percent")
    @classmethod
    def _distinct(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError(f"entries must be distinct, got {values}")
        return values


class ModelFamily(Schema):
    """The family of a ``models.<name>`` entry, for stages that read no other key of it."""

    model_config = ConfigDict(extra="ignore")
    family: str = Field(min_length=1)


def study_seeds(values: Any) -> list[int]:
    """``study.seeds``: the training seeds, distinct non-negative integers, at least one."""
    return parse_section(Study, values, "study").seeds


class VarySplit(Schema):
    """``study.vary_split`` alone, for the stages that declare no other study key."""

    model_config = ConfigDict(extra="ignore")
    vary_split: bool = False


def study_vary_split(values: Any) -> bool:
    """``study.vary_split``: whether each run re-draws its split from its seed (absent: False)."""
    return parse_section(VarySplit, values or {}, "study").vary_split


def study_percents(values: Any) -> list[int]:
    """``study.train_percent``: training-set sizes, distinct integers in 1..100, ascending."""
    return sorted(parse_section(Study, values, "study").train_percent)
