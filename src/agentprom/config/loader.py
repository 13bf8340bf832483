"""Load configuration from YAML, ``AGENTPROM_*`` environment variables and CLI flags.

Precedence: flags > environment > file > defaults. Overrides are merged into the
raw document before validation, so a bad value from any source is reported
with its YAML path and where it came from. Every error is collected before
``ConfigError`` is raised; ``agentprom check-config`` prints them all.
"""

from __future__ import annotations

import difflib
import inspect
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from agentprom.config.schema import Config

#: environment variable -> (YAML path, CLI flag)
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "AGENTPROM_OTLP_GRPC": ("server.otlp_grpc", "--otlp-grpc"),
    "AGENTPROM_OTLP_HTTP": ("server.otlp_http", "--otlp-http"),
    "AGENTPROM_METRICS": ("server.metrics", "--metrics"),
    "AGENTPROM_LOG_LEVEL": ("log.level", "--log-level"),
    "AGENTPROM_POSTGRES_DSN": ("storage.postgres.dsn", ""),
    "AGENTPROM_REDIS_URL": ("storage.redis.url", ""),
}
#: values never echoed in errors: they may hold a password
SECRET_PATHS = frozenset({"storage.postgres.dsn", "storage.redis.url"})
CONFIG_ENV = "AGENTPROM_CONFIG"

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    value: Any = None
    source: str = ""

    def __str__(self) -> str:
        where = f" (from {self.source})" if self.source else ""
        got = "" if self.value is None else f" [got {self.value!r}]"
        return f"{self.path or '<root>'}{where}: {self.message}{got}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem], origin: str = "", what: str = "configuration") -> None:
        self.problems = problems
        self.origin = origin
        lines = [f"invalid {what}{(' in ' + origin) if origin else ''}: {len(problems)} problem(s)"]
        lines += [f"  - {problem}" for problem in problems]
        super().__init__("\n".join(lines))


def read_yaml(path: str | Path, what: str = "configuration") -> dict[str, Any]:
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read file: {exc.strerror or exc}")], origin, what) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem("", "file is not valid UTF-8")], origin, what) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem("", f"not valid YAML: {where}{problem}")], origin, what) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError([Problem("", "the top level must be a mapping", type(document).__name__)], origin, what)
    return document


def _set_path(document: dict[str, Any], dotted: str, value: Any) -> None:
    node = document
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective ``Config``. ``flags`` maps YAML paths to CLI values (None = not given)."""
    env = os.environ if env is None else env
    document: dict[str, Any] = read_yaml(path) if path else {}
    sources: dict[str, str] = {}
    for name, (dotted, _flag) in ENV_OVERRIDES.items():
        if env.get(name):
            _set_path(document, dotted, env[name])
            sources[dotted] = name
    for dotted, value in (flags or {}).items():
        if value is not None:
            _set_path(document, dotted, value)
            sources[dotted] = "command line"
    return validate(document, str(path or "defaults"), sources)


def validate(document: dict[str, Any], origin: str = "", sources: Mapping[str, str] | None = None) -> Config:
    return validate_model(Config, document, origin, sources)


def validate_model(
    model: type[M], document: dict[str, Any], origin: str = "", sources: Mapping[str, str] | None = None,
    what: str = "configuration",
) -> M:
    """Validate ``document`` against any pydantic model of the project (the sidecar's config, a
    benchmark scenario, compare thresholds), reporting every problem with its dotted path."""
    sources = sources or {}
    try:
        # a model may read what its field validators need to know of the whole document first
        context = getattr(model, "validation_context", None)
        return model.model_validate(document, context=context(document) if context else None)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (not part of the schema)" + _did_you_mean(model, error["loc"])
            value = error.get("input")
            if isinstance(value, dict) or loc in SECRET_PATHS:
                value = None
            problems.append(Problem(loc, f"{message} (rule: {error['type']})", value, sources.get(loc, "")))
        raise ConfigError(problems, origin, what) from None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds: itself, or inside Optional, list, dict, Annotated."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _did_you_mean(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """``; did you mean KEY?`` for the valid key nearest an unknown one (difflib), or nothing."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None:
            return ""
        if isinstance(part, str) and part in current.model_fields:
            current = _model_in(current.model_fields[part].annotation)
        # else a list index or a dict key: the model stays the element's
    if current is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(current.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
