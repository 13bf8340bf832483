"""Optional compatibility outputs: OTel GenAI standard metrics and spanmetrics-style span metrics.

Each output is switched on in the config's ``compat:`` section; its families are
then registered in the store (``catalog.active_catalog``), and ``compat_outputs``
returns a translator listener for every output whose families are present.

* ``genai_metrics`` (OTel semantic conventions for GenAI metrics, and the
  ``gen_ai.invoke_agent.duration`` / ``gen_ai.execute_tool.duration`` metrics of
  semantic-conventions-genai): labels are the spec's attributes in Prometheus
  spelling; an attribute the span does not carry is an empty label, as the OTel
  to Prometheus translation drops absent attributes. ``error_type`` is set only
  on failed spans. Tokens are observed on LLM-call spans only (input and output).
* ``span_metrics`` (OTel Collector spanmetrics connector names): one call and
  one duration observation for every valid span, with ``span_kind`` as
  ``SPAN_KIND_*`` and ``status_code`` as ``STATUS_CODE_UNSET|OK|ERROR``.

Both honour the span's sampling weight, like the core metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentprom.conventions import profile as P
from agentprom.conventions.classify import Classified, first_str
from agentprom.metrics.catalog import COMPAT_OUTPUTS
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import SPAN_KIND_NAMES, Kind, Span

if TYPE_CHECKING:
    from agentprom.context.resolved import Resolved

STATUS_CODE_NAMES = {0: "STATUS_CODE_UNSET", 1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}
#: what the OTel SDKs call a service that did not name itself
UNKNOWN_SERVICE = "unknown_service"
#: token types the spec's ``gen_ai.token.type`` defines
SPEC_TOKEN_TYPES = ("input", "output")


class GenAiMetrics:
    """Feeds the four OTel GenAI standard histograms."""

    def __init__(self, store: SeriesStore) -> None:
        f = store.families
        self._operation = f["gen_ai_client_operation_duration_seconds"]
        self._tokens = f["gen_ai_client_token_usage"]
        self._agent = f["gen_ai_invoke_agent_duration_seconds"]
        self._tool = f["gen_ai_execute_tool_duration_seconds"]
        self._exemplars = store.limits.exemplars

    def __call__(self, resolved: Resolved) -> None:
        for span, c in zip(resolved.spans, resolved.classified):
            self.one(span, c)

    def one(self, span: Span, c: Classified) -> None:
        kind = c.kind
        if kind is Kind.OTHER or not c.counted:  # as the catalog's own metrics: no wrappers, steps, outer calls
            return
        attrs = span.attributes
        w = c.weight
        exemplar = (span.trace_id.hex(), span.span_id.hex()) if self._exemplars else None
        duration = span.duration_s
        provider = first_str(attrs, P.PROVIDER_KEYS) or ""
        if kind is Kind.LLM:
            request_model = first_str(attrs, P.REQUEST_MODEL_KEYS) or ""
            response_model = first_str(attrs, P.RESPONSE_MODEL_KEYS) or ""
            self._operation.observe(
                (c.operation, provider, request_model, response_model, c.error_type), duration, exemplar, w
            )
            for token_type in SPEC_TOKEN_TYPES:
                count = c.tokens.get(token_type)
                if count is not None:
                    self._tokens.observe(
                        (c.operation, provider, request_model, response_model, token_type), count, exemplar, w
                    )
            return
        agent = first_str(attrs, P.AGENT_NAME_KEYS) or first_str(attrs, (P.ENTITY_NAME,)) or ""
        if kind is Kind.AGENT:
            operation = attrs.get(P.GENAI_OPERATION)
            if P.GENAI_OPERATIONS.get(operation) is not Kind.AGENT:
                operation = "invoke_agent"  # OpenInference / Traceloop agent spans
            request_model = first_str(attrs, P.REQUEST_MODEL_KEYS) or ""
            self._agent.observe((operation, provider, agent, request_model, c.error_type), duration, exemplar, w)
        else:  # Kind.TOOL
            self._tool.observe(("execute_tool", agent, c.tool, c.error_type), duration, exemplar, w)


class SpanMetrics:
    """Feeds ``traces_span_metrics_*`` for every span."""

    def __init__(self, store: SeriesStore) -> None:
        self._calls = store.families["traces_span_metrics_calls_total"]
        self._duration = store.families["traces_span_metrics_duration_seconds"]
        self._exemplars = store.limits.exemplars

    def __call__(self, resolved: Resolved) -> None:
        for span, c in zip(resolved.spans, resolved.classified):
            self.one(span, c)

    def one(self, span: Span, c: Classified) -> None:
        service = span.resource.get(P.SERVICE_NAME)
        labels = (
            service if isinstance(service, str) and service else UNKNOWN_SERVICE,
            span.name,
            SPAN_KIND_NAMES.get(span.kind, "SPAN_KIND_UNSPECIFIED"),
            STATUS_CODE_NAMES.get(span.status_code, "STATUS_CODE_UNSET"),
        )
        exemplar = (span.trace_id.hex(), span.span_id.hex()) if self._exemplars else None
        self._calls.inc(labels, c.weight, exemplar)
        self._duration.observe(labels, span.duration_s, exemplar, c.weight)


Listener = Callable[["Resolved"], None]

OUTPUTS: dict[str, Callable[[SeriesStore], Listener]] = {
    "genai_metrics": GenAiMetrics,
    "span_metrics": SpanMetrics,
}


def compat_outputs(store: SeriesStore) -> list[Listener]:
    """A listener for every compat output whose families the store registered."""
    return [
        make(store)
        for option, make in OUTPUTS.items()
        if all(name in store.families for name in COMPAT_OUTPUTS[option])
    ]
