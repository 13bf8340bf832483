"""Price an LLM call from a table of per-model token prices when its span reports no cost.

The table maps (provider, model) to US dollars per million tokens of each type: ``input``,
``output``, ``cache_read``, ``cache_write`` and ``reasoning``. It is built from the shipped
default (``pricing_default.yaml``, with its as-of date and sources), or the file named by the
config's ``pricing.table`` instead, then the config's ``pricing.models`` entries added or
overriding. ``agentprom serve`` rebuilds it on SIGHUP; a table that does not validate is refused
with its problems and the old one kept.

How a call is priced (token types as the OTel GenAI conventions define them, docs/conventions.md):

* ``cache_read`` and ``cache_write`` are parts of ``input``: they are priced at their own rates
  and the rest of ``input`` at the input rate (so cache reads are never also priced as input).
* ``reasoning`` is part of ``output``: priced at the reasoning rate, the rest at the output rate.
* A rate left out of an entry is the rate those tokens are billed at without a discount:
  ``cache_read`` and ``cache_write`` fall back to ``input``, ``reasoning`` to ``output``.

Model names: an exact (provider, model) entry wins; else a dated version is matched to its
undated name (``gpt-4o-mini-2024-07-18``, ``claude-sonnet-4-20250514``,
``claude-3-5-sonnet@20240620`` -> the name before the date). Providers and models match without
regard to case, and the GenAI conventions' Google spellings (``gcp.gemini``, ``gcp.vertex_ai``,
``gcp.gen_ai``, ``gemini``, ``vertex_ai``) all mean ``google``. A span that names no provider
(provider ``unknown``) is priced by its model when exactly one provider in the table lists it. Each (provider, model) is
resolved once and remembered, up to a bound; beyond it names are resolved on every call
(counted in ``PriceTable.uncached``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from agentprom.metrics.series_store import SeriesStore

log = logging.getLogger(__name__)

#: the shipped table, a package data file
DEFAULT_TABLE = "pricing_default.yaml"
#: a price above this many USD per million tokens is refused as a typo (the dearest models today
#: cost a few hundred); it also keeps every computed cost finite
MAX_USD_PER_MILLION = 100_000.0
#: (provider, model) resolutions remembered when no bound is given
DEFAULT_CACHE_SIZE = 10_000

#: provider spellings that mean the same price list (lower case)
PROVIDER_ALIASES: dict[str, str] = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
}
#: provider values that name no provider (classify's fallback): such spans are priced by model name
#: alone when exactly one provider in the table lists it
_NO_PROVIDER = frozenset({"", "unknown"})
#: a dated model version: ``-2024-07-18``, ``-20250514`` or ``@20240620`` at the end
_DATED = re.compile(r"(?:[-@]\d{4}-\d{2}-\d{2}|[-@]\d{8})$")


class ModelPrice(BaseModel):
    """One model's prices in US dollars per million tokens (docs/conventions.md, "Cost")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1, description="As spans name it (gen_ai.provider.name), e.g. openai.")
    model: str = Field(min_length=1, description="The undated model name, e.g. gpt-4o-mini.")
    input: float = Field(ge=0, le=MAX_USD_PER_MILLION, allow_inf_nan=False,
                         description="Input tokens not read from or written to the cache.")
    output: float = Field(ge=0, le=MAX_USD_PER_MILLION, allow_inf_nan=False,
                          description="Output tokens (reasoning tokens too, unless reasoning is set).")
    cache_read: float | None = Field(None, ge=0, le=MAX_USD_PER_MILLION, allow_inf_nan=False,
                                     description="Input tokens read from the prompt cache (default: input).")
    cache_write: float | None = Field(None, ge=0, le=MAX_USD_PER_MILLION, allow_inf_nan=False,
                                      description="Input tokens written to the prompt cache (default: input).")
    reasoning: float | None = Field(None, ge=0, le=MAX_USD_PER_MILLION, allow_inf_nan=False,
                                    description="Reasoning (thinking) output tokens (default: output).")

    @field_validator("provider", "model")
    @classmethod
    def _no_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    def key(self) -> tuple[str, str]:
        return _provider(self.provider), self.model.lower()

    def rates(self) -> Rates:
        return Rates(self.input, self.output,
                     self.input if self.cache_read is None else self.cache_read,
                     self.input if self.cache_write is None else self.cache_write,
                     self.output if self.reasoning is None else self.reasoning)


def _unique(entries: tuple[ModelPrice, ...]) -> tuple[ModelPrice, ...]:
    seen: dict[tuple[str, str], int] = {}
    problems = []
    for i, entry in enumerate(entries):
        key = entry.key()
        if key in seen:
            problems.append(f"entry {i} ({entry.provider} {entry.model}) repeats entry {seen[key]}")
        else:
            seen[key] = i
    if problems:
        raise ValueError("; ".join(problems))
    return entries


class PriceFile(BaseModel):
    """A price table file: when its prices were read, from where, and the prices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: date = Field(description="The date the prices were read from the sources.")
    source: tuple[str, ...] = Field(min_length=1, description="Where the prices come from (URLs).")
    models: tuple[ModelPrice, ...] = Field(description="The prices; at least one.")

    @model_validator(mode="after")
    def _check(self) -> PriceFile:
        if not self.models:
            raise ValueError("models lists no prices")
        _unique(self.models)
        return self


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens, every rate resolved (no fallbacks left)."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float

    def cost(self, tokens: dict[str, int]) -> float:
        """The USD cost of one call's usage (token type -> count; cache types are parts of input,
        reasoning is part of output)."""
        get = tokens.get
        cache_read, cache_write, reasoning = get("cache_read", 0), get("cache_write", 0), get("reasoning", 0)
        # an instrumentation that reports the parts beyond the whole: the parts are what was billed
        plain_input = max(get("input", 0) - cache_read - cache_write, 0)
        plain_output = max(get("output", 0) - reasoning, 0)
        return (plain_input * self.input + cache_read * self.cache_read + cache_write * self.cache_write
                + plain_output * self.output + reasoning * self.reasoning) / 1e6


def _provider(name: str) -> str:
    name = name.strip().lower()
    return PROVIDER_ALIASES.get(name, name)


def undated(model: str) -> str | None:
    """``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``; None when the name carries no date."""
    match = _DATED.search(model)
    return model[:match.start()] if match and match.start() else None


class PriceTable:
    """Rates by (provider, model), with the matching of dated names remembered per name seen."""

    def __init__(self, entries: dict[tuple[str, str], Rates], cache_size: int = DEFAULT_CACHE_SIZE,
                 as_of: date | None = None, sources: tuple[str, ...] = ()) -> None:
        self.entries = entries
        self.as_of, self.sources = as_of, sources
        self.cache_size = cache_size if cache_size > 0 else DEFAULT_CACHE_SIZE
        #: model -> rates, for spans that name no provider: models only one provider lists
        by_model: dict[str, list[Rates]] = {}
        for (_provider_name, model), rates in entries.items():
            by_model.setdefault(model, []).append(rates)
        self._by_model = {model: found[0] for model, found in by_model.items() if len(found) == 1}
        self._cache: dict[tuple[str, str], Rates | None] = {}
        #: resolutions not remembered because the cache was full
        self.uncached = 0

    def __len__(self) -> int:
        return len(self.entries)

    def _resolve(self, provider: str, model: str) -> Rates | None:
        provider, model = _provider(provider), model.strip().lower()
        if provider in _NO_PROVIDER:
            found = self._by_model
            rates = found.get(model)
        else:
            found = self.entries
            rates = found.get((provider, model))
        if rates is None:
            base = undated(model)
            if base is not None:
                rates = found.get(base) if found is self._by_model else found.get((provider, base))
        return rates

    def rates(self, provider: str, model: str) -> Rates | None:
        """The rates for a span's provider and model, or None when the table has no price."""
        key = (provider, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        rates = self._resolve(provider, model)
        if len(self._cache) < self.cache_size:
            self._cache[key] = rates
        else:
            self.uncached += 1
        return rates

    def cost(self, provider: str, model: str, tokens: dict[str, int]) -> float | None:
        """The USD cost of a call's usage, or None when the table has no price for the model."""
        rates = self.rates(provider, model)
        return None if rates is None else rates.cost(tokens)


class PricingError(Exception):
    """A price table that cannot be used; the message names the file and every problem."""


def read_table(path: str | Path, what: str = "price table") -> PriceFile:
    """Read and validate a price table file (YAML or JSON); raise ``PricingError`` naming the file
    and every problem with its location."""
    from agentprom.config.loader import ConfigError, read_yaml, validate_model

    try:
        return validate_model(PriceFile, read_yaml(path, what), str(path), what=what)
    except ConfigError as exc:
        raise PricingError(str(exc)) from None


def default_table_path() -> Path:
    return Path(str(resources.files("agentprom").joinpath(DEFAULT_TABLE)))


def build_table(table: str = "", models: tuple[ModelPrice, ...] = (), cache_size: int = DEFAULT_CACHE_SIZE) -> PriceTable:
    """The table in effect: ``table`` (a file) or else the shipped default, then ``models`` added or
    overriding. Raise ``PricingError`` when a file cannot be read or does not validate."""
    base = read_table(table or default_table_path())
    entries = {entry.key(): entry.rates() for entry in base.models}
    for entry in models:
        entries[entry.key()] = entry.rates()
    return PriceTable(entries, cache_size, base.as_of, base.source)


class Pricing:
    """The price table in effect and its reloads; what the translator asks for a call's cost."""

    def __init__(self, table: PriceTable | None, store: SeriesStore | None = None, *,
                 table_file: str = "", models: tuple[ModelPrice, ...] = (),
                 cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        #: None: pricing is off
        self.table = table
        self.table_file, self.models, self.cache_size = table_file, models, cache_size
        self._reloads = store["agentprom_pricing_reloads_total"] if store is not None else None

    @classmethod
    def from_config(cls, config: Any, store: SeriesStore | None = None) -> Pricing:
        """Build from ``config.pricing``; a bad table file raises ``PricingError`` (start-up fails)."""
        p = config.pricing
        size = config.store.max_series_per_metric or DEFAULT_CACHE_SIZE
        table = build_table(p.table, p.models, size) if p.enabled else None
        return cls(table, store, table_file=p.table, models=p.models, cache_size=size)

    def cost(self, provider: str, model: str, tokens: dict[str, int]) -> float | None:
        table = self.table
        return None if table is None else table.cost(provider, model, tokens)

    def reload(self, settings: Any = None) -> bool:
        """Rebuild the table from its files (and ``settings``, a new ``pricing`` config section, when
        given). On any problem log it, count it and keep the old table; return whether it worked."""
        try:
            if settings is not None:
                table_file, models = settings.table, tuple(settings.models)
                enabled = settings.enabled
            else:
                table_file, models, enabled = self.table_file, self.models, self.table is not None
            table = build_table(table_file, models, self.cache_size) if enabled else None
        except PricingError as exc:
            return self.refuse(str(exc))
        except Exception as exc:  # noqa: BLE001 - a reload must never take the sidecar down
            return self.refuse(f"{type(exc).__name__}: {exc}")
        self.table, self.table_file, self.models = table, table_file, models
        self._count("ok")
        if table is None:
            log.info("price table reloaded: pricing is off")
        else:
            log.info("price table reloaded: %d models (as of %s)", len(table), table.as_of)
        return True

    def refuse(self, problem: str) -> bool:
        """A reload that cannot happen (e.g. the config file no longer validates): log, count, keep
        the old table; return False."""
        self._count("error")
        log.error("price table not reloaded, the previous one stays in effect: %s", problem)
        return False

    def _count(self, result: str) -> None:
        if self._reloads is not None:
            self._reloads.inc((result,))


