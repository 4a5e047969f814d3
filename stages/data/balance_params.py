"""The ``balance`` params section, validated without touching the file system.

Selection rules (``balance.select``):
  fewest  the ``num_classes`` classes with the fewest images that still have at
          least K (how the Stanford Dogs study built its 13- and 28-breed subsets)
  names   the classes listed in ``class_names`` (class names after the pattern)
  all     every class with at least K images

K (``balance.images_per_class``) is a number, or ``min``: the smallest number of decodable
images among the classes the rule keeps (``all``: every class with at least one; ``names``:
the named ones), so "about 150 per class" keeps a class that has 148. ``fewest`` needs a number.

``class_name_pattern``, a regex with one group, turns folder names / labels into class
names: ``^n\\d+-(.+)$`` maps Stanford Dogs' ``n02085620-Chihuahua`` to ``Chihuahua``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from stages.core.errors import ParamError
from stages.core.params import Schema, parse_section
from stages.data.labels import LabelsParams, parse_labels

SELECT_RULES = ("fewest", "names", "all")
MIN = "min"  # images_per_class: K = the smallest class the rule keeps
MIN_K = 3  # split puts at least one image of every class in each of train, val and test


def parse_pattern(value: object) -> re.Pattern | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a regular expression with one group, or null; got {value!r}")
    try:
        pattern = re.compile(value)
    except re.error as err:
        raise ValueError(f"invalid regular expression {value!r}: {err}") from None
    if pattern.groups != 1:
        raise ValueError(f"needs exactly one group (...) capturing the class name; {value!r} has {pattern.groups}")
    return pattern


def check_images_per_class(value: object) -> int | str:
    if value == MIN:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected an integer >= 1 or {MIN!r}, got {value!r}")
    return value


def check_class_names(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(str(v) for v in value)  # a numeric folder name is still a name


class BalanceParams(Schema):
    """The ``balance`` section (see the module docstring); validated without touching the file system."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    source: str = Field(min_length=1)
    select: Literal[SELECT_RULES]
    images_per_class: Annotated[Any, AfterValidator(check_images_per_class)]  # a number, or MIN: resolved on the data
    seed: int
    num_classes: int | None = Field(None, ge=2)  # always set when select is "fewest"
    class_names: Annotated[Any, AfterValidator(check_class_names)] = ()
    class_name_pattern: Annotated[Any, AfterValidator(parse_pattern)] = None
    labels: LabelsParams | None = None  # None: classes are the sub-folders of source
    cross_class_duplicates: Literal["reject", "keep"] = "reject"

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value):
        return parse_labels(value)  # its own errors name balance.labels.<key>

    @model_validator(mode="after")
    def _rules(self):
        if self.select == "fewest" and self.num_classes is None:
            raise ParamError("balance.num_classes", "missing: select 'fewest' needs a number of classes")
        if self.select == "fewest" and self.images_per_class == MIN:
            # fewest ranks classes by who still has K images: K must come first
            raise ParamError("balance.images_per_class", f"{MIN!r} does not work with select 'fewest': "
                                                         "fewest needs a number")
        if self.select == "names":
            if len(self.class_names) < 2:
                raise ParamError("balance.class_names", "list at least 2 class names when select is 'names'")
            if len(set(self.class_names)) != len(self.class_names):
                raise ParamError("balance.class_names", "lists a class more than once")
        return self


def unused_keys(p: BalanceParams) -> list[str]:
    """Keys set to a value that the selection rule does not use: said out loud (printed and in
    metrics/data.json), never silently ignored. Not an error: the composed defaults set
    ``num_classes`` for ``fewest``, and ``-S balance.select=all`` should just work."""
    notes = []
    if p.select != "fewest" and p.num_classes is not None:
        what = "every class is used" if p.select == "all" else "class_names decides"
        notes.append(f"balance.num_classes={p.num_classes} has no effect with select {p.select!r} ({what})")
    if p.select != "names" and p.class_names:
        notes.append(f"balance.class_names has no effect with select {p.select!r}")
    return notes


def parse_params(values: dict) -> BalanceParams:
    """Validate every key of the ``balance`` section; reads no file, so it works with no data present."""
    return parse_section(BalanceParams, values, "balance")
