"""The models the comparing stages (report, explain) read: every entry of ``models``, by family."""

from __future__ import annotations

from stages.core.errors import ParamError
from stages.core.params import ModelFamily, parse_section


def model_families(models: object) -> dict[str, str]:
    """``models`` (params order) -> {name: family}; ParamError for no model or one without a family."""
    if not isinstance(models, dict) or not models:
        raise ParamError("models", "expected at least one model")
    return {name: parse_section(ModelFamily, entry, f"models.{name}").family for name, entry in models.items()}
