"""The configuration schema: typed, frozen models that reject unknown keys.

Defaults live here (and in the two parts it imports, network_schema.py and dimension_schema.py) and
nowhere else; ``config/agentprom.yaml`` spells them out
for users. Validation happens in two passes (like the OTel Collector's
``confmap`` validation): pydantic checks types, ranges and unknown keys, then
``model_validator`` hooks check rules that span fields. Both passes report
every problem at once, each with its location.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from agentprom.config.base import _Model, key_list_problems
from agentprom.config.dimension_schema import DimensionConfig, check_dimensions
from agentprom.config.storage_schema import StorageConfig
from agentprom.config.network_schema import (
    BasicAuthConfig,
    ForwardConfig,
    ReadableFile,
    SecurityConfig,
    ServerConfig,
    TlsConfig,
    parse_address,
)
from agentprom.conventions.profile import OWN_PREFIX, WANTED_KEYS
from agentprom.metrics.catalog import CATALOG
from agentprom.pricing import ModelPrice, PricingError, _unique, read_table

#: the schema's models and helpers that other modules import from here (the network side lives in
#: network_schema.py, extra dimensions in dimension_schema.py)
__all__ = ["Config", "ServerConfig", "TlsConfig", "BasicAuthConfig", "ForwardConfig", "SecurityConfig",
           "parse_address", "DEFAULT_PHASE_SPANS"]


_LABELS = frozenset(label for spec in CATALOG for label in spec.labels)
#: the labels of the span-derived metrics (not the sidecar's own): those with value budgets
_BUDGETED_LABELS = frozenset(label for spec in CATALOG if spec.group != "self" for label in spec.labels)


def _unknown_labels(names: dict, known: frozenset[str], what: str, info: ValidationInfo) -> list[str]:
    """Problems for names in ``names`` that are neither in ``known`` nor a configured dimension's label
    (``Config.validation_context`` reads those from the document before the fields are validated)."""
    known = known | (info.context or {}).get("dimension_labels", frozenset())
    return [f"{label!r} is not a label of any {what} or dimension (known: {', '.join(sorted(known))})"
            for label in names if label not in known]


class StoreConfig(_Model):
    """Bounds of the series store."""

    max_series_per_metric: int = Field(2000, ge=0, description="Series per metric before overflow (0 = unlimited).")
    max_folded_label_sets: int = Field(
        10000, ge=0, description="Per gauge: label sets folded into its overflow series whose last value is "
        "remembered, so that the overflow series is their sum; updates of further ones are dropped and counted "
        "(0 = unlimited).",
    )
    max_label_value_length: int = Field(128, ge=0, description="Longer label values are truncated (0 = never).")
    series_ttl_seconds: float = Field(900.0, ge=0, description="Series not updated for this long disappear (0 = never).")
    exemplars: bool = Field(True, description="Attach trace_id/span_id exemplars in OpenMetrics scrapes.")
    label_allow: dict[str, str] = Field(
        default_factory=dict,
        description="label name -> regular expression; values that do not fully match become 'other'.",
    )
    max_label_values: int = Field(
        1000, ge=0, description="Distinct values of each label of each span-derived counter and histogram; past it, new values of "
        "that label alone become '__overflow__' while the other labels keep theirs (0 = no per-label limit).",
    )
    label_values: dict[str, int] = Field(
        default_factory=dict,
        description="label name -> its own budget of distinct values per metric, instead of max_label_values "
        "(0 = no limit for that label).",
    )

    @field_validator("label_allow")
    @classmethod
    def _check_label_allow(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        problems = _unknown_labels(value, _LABELS, "metric", info)
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(f"{label}: {pattern!r} is not a valid regular expression ({exc})")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("label_values")
    @classmethod
    def _check_label_values(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        problems = _unknown_labels(value, _BUDGETED_LABELS, "span-derived metric", info)
        for label, budget in value.items():
            if budget < 0:
                problems.append(f"{label}: {budget} is negative (0 = no limit)")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class SamplingConfig(_Model):
    """Sampling-aware counting: a sampled span counts as its adjusted count (1/probability)."""

    tracestate: bool = Field(
        True, description="Read the sampling threshold from W3C tracestate 'ot=th:<hex>' (OTel probability sampling)."
    )
    probability_attribute: str = Field(
        "", description="Span attribute holding the sampling probability (0 < p <= 1) when the tracestate has none; "
        "empty = none.",
    )
    max_adjusted_count: float = Field(
        1_000_000.0, ge=1, le=2**56,
        description="Largest adjusted count (1/probability) one span may stand for; a span sampled more rarely is "
        "refused through partial success (sampling_weight_out_of_range). 1e6 = probability 1e-6, far below any "
        "real sampler's rate; 2^56 (th:ffffffffffffff) would let one span add 7.2e16 calls.",
    )


class LimitsConfig(_Model):
    """Per-span bounds on the amounts added to counters (bounds.py): a span beyond one is refused through
    partial success (amount_out_of_range) and counted nowhere; runtime llm_call events beyond one get a 400."""

    max_tokens_per_span: int = Field(
        100_000_000, ge=1, le=2**53,
        description="Tokens of any one type (input, output, cache read, cache write) on one LLM call: 50 times "
        "the largest context window offered today (2M).",
    )
    max_cost_usd_per_span: float = Field(
        10_000.0, gt=0, le=1e12,
        description="US dollars of one LLM call: a hundred times a long call to the dearest models today.",
    )


class CompatConfig(_Model):
    """Optional compatibility outputs (off by default: they add series)."""

    genai_metrics: bool = Field(
        False, description="OTel GenAI standard histograms (gen_ai_client_operation_duration_seconds, "
        "gen_ai_client_token_usage, gen_ai_invoke_agent_duration_seconds, gen_ai_execute_tool_duration_seconds).",
    )
    span_metrics: bool = Field(
        False, description="traces_span_metrics_calls_total and traces_span_metrics_duration_seconds for every span "
        "(Jaeger Monitor tab, spanmetrics dashboards).",
    )

    def enabled(self) -> tuple[str, ...]:
        """Names of the outputs switched on (keys of ``catalog.COMPAT_OUTPUTS``)."""
        return tuple(name for name, on in self.model_dump().items() if on)


class MetricsInConfig(_Model):
    """OTLP metrics in (``/v1/metrics``, gRPC MetricsService), translated to Prometheus (docs/metrics-in.md)."""

    enabled: bool = Field(True, description="Accept OTLP metrics and expose them on /metrics.")
    translate_names: bool = Field(
        True, description="Add unit and _total suffixes (OTel-to-Prometheus compatibility specification); "
        "false keeps the OTel name with only invalid characters replaced.",
    )
    series_ttl_seconds: float = Field(
        300.0, ge=0, description="Series of incoming metrics not updated for this long disappear (0 = never).",
    )
    max_metric_families: int = Field(
        500, ge=1, le=100_000,
        description="Distinct incoming metric names exposed at once; points of more are dropped.",
    )
    promote_resource_attributes: tuple[str, ...] = Field(
        (), description="Resource attributes copied as labels onto every series of their metrics "
        "(e.g. service.instance.id); all resource attributes are on target_info.",
    )
    scope_labels: bool = Field(True, description="Add otel_scope_name / otel_scope_version labels.")
    target_info: bool = Field(True, description="Expose each resource's attributes as a target_info series.")
    exponential_histograms: Literal["convert", "drop"] = Field(
        "convert", description="convert: to power-of-two explicit buckets (exact le counts); drop: count and drop.",
    )
    max_histogram_buckets: int = Field(
        160, ge=1, le=10_000,
        description="Bucket bounds per histogram point (exponential ones after conversion, and the union of "
        "accumulated ones), and quantiles per summary point; points with more are dropped (too_many_buckets).",
    )
    max_memory_mib: float = Field(
        64.0, ge=0, description="Estimated memory of all incoming series together (labels, buckets, accumulation "
        "state, scrape caches); points that would need more are dropped (memory_budget). 0 = no budget.",
    )

    @field_validator("promote_resource_attributes")
    @classmethod
    def _check_promoted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = key_list_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value


class QueueConfig(_Model):
    """The bounded queue between the receivers and translation, and the memory ceiling (docs/security.md)."""

    max_spans: int = Field(
        100_000, ge=1, description="Spans accepted but not yet translated; above it exports are refused (retryable)."
    )
    memory_limit_mib: int = Field(
        0, ge=0, description="Refuse exports (retryable) while the resident memory of the sidecar's processes (the "
        "main one, its decode workers and the stores' shipper process) is above this many MiB (0 = no limit)."
    )
    transport_share: float = Field(
        0.5, gt=0, le=1,
        description="Share of max_spans one transport (OTLP/HTTP or OTLP/gRPC) may hold while the other has "
        "exported in the last 10 s; past it its exports are refused (retryable), so the other always finds room "
        "(1 = no bound). A transport alone has the whole queue.",
    )
    retry_after_seconds: int = Field(
        1, ge=1, le=3600, description="Delay suggested to refused clients (HTTP Retry-After, gRPC RetryInfo)."
    )


class LogConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class ContinuityWeights(_Model):
    """Weights of the continuity score's components (docs/sessions.md); normalised by their sum."""

    phase_completion: float = Field(0.30, ge=0, description="Completed phases / all phases.")
    error_recovery: float = Field(0.25, ge=0, description="Recoveries / failed tool and LLM calls.")
    context_resets: float = Field(0.15, ge=0, description="1 - context resets per phase.")
    context_utilization: float = Field(0.10, ge=0, description="Share of context observations at most 100%.")
    execution_resets: float = Field(0.20, ge=0, description="1 - execution resets (phase reruns, restarts) per phase.")

    @model_validator(mode="after")
    def _some_weight(self) -> ContinuityWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one continuity weight must be greater than 0")
        return self


class PhaseSpanRule(_Model):
    """A span that is a phase in another convention, e.g. OpenLLMetry ``traceloop.span.kind=task``."""

    attribute: str = Field(description="Span attribute to match (one the decoder keeps, or an agent.* key).")
    value: str = Field(description="The attribute value that marks a phase span.")
    parent_kind: Literal["any", "agent"] = Field(
        "any", description="agent: only when the parent span is an agent invocation (OpenInference CHAIN)."
    )
    name_keys: tuple[str, ...] = Field(
        ("traceloop.entity.name",), description="Attributes naming the phase (first present wins), else the span name."
    )

    @field_validator("attribute")
    @classmethod
    def _decoded(cls, value: str) -> str:
        if value not in WANTED_KEYS and not value.startswith(OWN_PREFIX):
            raise ValueError(f"{value!r} is not an attribute the decoder keeps (see conventions/profile.py)")
        return value


DEFAULT_PHASE_SPANS = (
    PhaseSpanRule(attribute="traceloop.span.kind", value="task"),
    PhaseSpanRule(attribute="openinference.span.kind", value="CHAIN", parent_kind="agent"),
)


class AttributionConfig(_Model):
    """The trace-context stage: how long and how many spans may wait for their ancestors
    (docs/conventions.md, "Attribution from the trace tree")."""

    max_wait_seconds: float = Field(
        60.0, gt=0, le=3600,
        description="A span that needs its ancestors (an LLM or tool call without an agent name, an agent span) "
        "waits at most this long for them; then it is counted with what is known (a fallback, counted).",
    )
    max_pending_spans: int = Field(
        100_000, ge=1, description="Spans waiting for their ancestors; past it the oldest are counted as they are."
    )
    run_grace_seconds: float = Field(
        10.0, ge=0, le=3600,
        description="An agent invocation's fan-out (agent_invocation_llm_calls and the like) is observed this long "
        "after its span is settled, so that calls arriving just after it are counted in it.",
    )
    max_open_runs: int = Field(
        10_000, ge=1, description="Invocations whose fan-out is being tallied; past it the oldest is observed early "
        "(or, not yet ended, dropped: agentprom_fanout_missed_total).",
    )
    max_indexed_spans: int = Field(
        100_000, ge=1,
        description="Spans remembered across traces for their descendants to find; past it the least recently "
        "active trace is forgotten (its waiting spans counted as they are).",
    )


class EvaluationsConfig(_Model):
    """OTel GenAI evaluation results from OTLP logs and span events (docs/conventions.md, "Evaluations")."""

    enabled: bool = Field(
        True, description="Accept OTLP logs (/v1/logs, gRPC LogsService) and count the gen_ai.evaluation.result "
        "records among them and the span events of that name; every other log record is dropped (counted).",
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, le=2**31 - 1,
        description="Largest OTLP logs export request accepted, after decompression; the smaller of this and "
        "server.max_request_bytes (OTLP/JSON: and server.max_json_request_bytes) applies. A logs export carries "
        "all of the agent's log records, of which only the small evaluation results are kept.",
    )
    max_wait_seconds: float = Field(
        120.0, gt=0, le=3600,
        description="An evaluation log record parented to a span that is not settled yet (not arrived, or waiting "
        "for its ancestors) waits this long for it; then it is counted for its resource's service.name (counted).",
    )
    max_waiting: int = Field(
        10_000, ge=1, description="Evaluation log records waiting for their span; past it the oldest are counted "
        "for their service.name.",
    )
    max_abs_score: float = Field(
        1e6, gt=0, le=1e15,
        description="A score whose absolute value is larger is invalid, like a non-finite one, so no histogram "
        "sum can be pushed to +Inf.",
    )


class SessionsConfig(_Model):
    """Runtime sessions and phases (docs/sessions.md)."""

    enabled: bool = Field(
        True, description="Track sessions from spans and serve /runtime (off: span metrics only, faster ingest)."
    )
    inactivity_timeout_seconds: float = Field(
        300.0, gt=0, le=7 * 86400, description="An open session without activity this long ends as abandoned."
    )
    max_open_sessions: int = Field(1000, ge=1, description="Open sessions tracked; the least recently active is evicted.")
    max_ended_sessions: int = Field(1000, ge=0, description="Ended sessions kept for the runtime API.")
    max_tool_calls_per_session: int = Field(200, ge=0, description="Tool calls stored per session (counters go on).")
    max_phases_per_session: int = Field(50, ge=1, description="Phases stored per session (counters go on).")
    max_events_per_request: int = Field(10000, ge=1, description="Events accepted in one POST /runtime/event.")
    max_request_bytes: int = Field(
        1024 * 1024, ge=1024, le=2**31 - 1,
        description="Largest body of a runtime API request (/runtime/event, /runtime/session/*); larger: 413.",
    )
    continuity_weights: ContinuityWeights = Field(default_factory=ContinuityWeights)
    phase_spans: tuple[PhaseSpanRule, ...] = Field(DEFAULT_PHASE_SPANS, description="Other conventions' phase spans.")


class JsonlConfig(_Model):
    """The JSONL invocation log (docs/sessions.md, "JSONL invocation log")."""

    enabled: bool = Field(False, description="Append every completed call, phase and session to the log.")
    directory: str = Field("agentprom-data", min_length=1, description="Directory of invocations.jsonl.")
    rotate_bytes: int = Field(64 * 1024 * 1024, ge=4096, description="Rotate the log when it would pass this size.")
    keep_files: int = Field(4, ge=0, le=1000, description="Rotated files kept (invocations.jsonl.1 is the newest).")
    queue_records: int = Field(10000, ge=1, description="Records waiting for the writer thread before new ones drop.")


class PricingConfig(_Model):
    """Cost from a price table for LLM calls whose span reports none (pricing.py, docs/conventions.md)."""

    enabled: bool = Field(
        True, description="Price LLM calls that carry token usage but no cost from the table; calls of models "
        "the table lacks are counted in agent_llm_unpriced_calls_total.",
    )
    table: ReadableFile = Field(
        "", description="A price table file (YAML or JSON, the format of the shipped pricing_default.yaml) used "
        "instead of the shipped default; empty = the default. Re-read on SIGHUP.",
    )
    models: tuple[ModelPrice, ...] = Field(
        (), description="Entries added to the table or overriding its entry of the same provider and model: "
        "provider, model, and US dollars per million input, output, cache_read, cache_write, reasoning tokens.",
    )

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: tuple[ModelPrice, ...]) -> tuple[ModelPrice, ...]:
        return _unique(value)

    @model_validator(mode="after")
    def _check_table(self) -> "PricingConfig":
        if self.table and os.access(self.table, os.R_OK):
            try:
                read_table(self.table)
            except PricingError as exc:
                raise ValueError(str(exc)) from None
        return self


class Config(_Model):
    """The whole sidecar configuration."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    compat: CompatConfig = Field(default_factory=CompatConfig)
    metrics_in: MetricsInConfig = Field(default_factory=MetricsInConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    forward: ForwardConfig = Field(default_factory=ForwardConfig)
    attribution: AttributionConfig = Field(default_factory=AttributionConfig)
    evaluations: EvaluationsConfig = Field(default_factory=EvaluationsConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    jsonl: JsonlConfig = Field(default_factory=JsonlConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    dimensions: tuple[DimensionConfig, ...] = Field(
        (), description="Extra labels on chosen metrics from span or resource attributes (e.g. tenant, "
        "environment); none by default. docs/metrics.md, \"Extra dimensions\".",
    )

    @classmethod
    def validation_context(cls, document: object) -> dict[str, frozenset[str]]:
        """What field validators need of the whole document: the dimensions' labels, which the store's
        per-label settings may name (read raw: a bad dimension is reported at its own path)."""
        dimensions = document.get("dimensions") if isinstance(document, dict) else None
        labels = [d.get("label") for d in dimensions or () if isinstance(d, dict)] if isinstance(dimensions, list) else []
        return {"dimension_labels": frozenset(label for label in labels if isinstance(label, str))}

    @property
    def journal(self) -> JsonlConfig:
        """The JSONL journal as it runs: a configured store switches it on (the stores are fed from it)."""
        if self.jsonl.enabled or not self.storage.configured:
            return self.jsonl
        return self.jsonl.model_copy(update={"enabled": True})

    @model_validator(mode="after")
    def _check_journal(self) -> "Config":
        if self.storage.configured and "enabled" in self.jsonl.model_fields_set and not self.jsonl.enabled:
            raise ValueError("jsonl.enabled is false, but the stores under storage: are fed from the JSONL journal; "
                             "remove jsonl.enabled (a store switches the journal on) or the store")
        if self.storage.configured and self.jsonl.keep_files == 0:
            raise ValueError("jsonl.keep_files is 0, but the stores under storage: read the journal's rotated "
                             "files too: with none kept, whatever a store had not shipped at a rotation is lost "
                             "to it; keep at least 1")
        return self

    @model_validator(mode="after")
    def _check_dimensions(self) -> "Config":
        problems = check_dimensions(self.dimensions, self.security.attribute_deny, self.store.max_label_value_length,
                                    self.store.label_allow)
        if problems:
            raise ValueError("; ".join(problems))
        return self
