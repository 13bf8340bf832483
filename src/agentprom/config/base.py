"""The base of every configuration model: frozen, and unknown keys are errors."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def listed_twice(values: Sequence[str], what: str = "", how: str = "listed") -> list[str]:
    """A problem per value that a list holds more than once (sorted), e.g. ``'a' is listed twice``."""
    return [f"{what}{value!r} is {how} twice" for value in sorted({v for v in values if values.count(v) > 1})]


def key_list_problems(values: Sequence[str]) -> list[str]:
    """The problems of a list of attribute keys: empty entries, and keys listed twice."""
    return [f"entry {i} is empty" for i, key in enumerate(values) if not key.strip()] + listed_twice(values)
