"""Extra dimensions (issue 15, item 1): labels from span or resource attributes on chosen metrics.

Unit tests drive the real translator and store; one test sends spans with the real OpenTelemetry
SDK exporter to a running sidecar, so the decoders' keeping of configured span and resource keys
is covered too. The attack tests are test_label_budget.py's, with the flood in a dimension.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentprom.app import store_limits
from agentprom.clock import ManualClock
from agentprom.config.loader import ConfigError, load_config, validate
from agentprom.context.stage import TraceContext
from agentprom.dimensions import with_dimensions
from agentprom.metrics.catalog import CATALOG, render_markdown
from agentprom.metrics.label_budget import OVERFLOW_VALUE
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Span
from agentprom.receiver.decode import Batch
from agentprom.sessions.events import parse_events
from agentprom.sessions.tracker import SessionTracker
from agentprom.translator import Translator

T0 = 1_700_000_000_000_000_000
TENANT = {"label": "tenant", "attributes": ["app.tenant", "enduser.id"], "default": "none",
          "metrics": ["agent_tokens_total", "agent_llm_cost_usd_total", "agent_tool_calls_total"]}
ENVIRONMENT = {"label": "environment", "attributes": ["deployment.environment.name"],
               "metrics": ["agent_tokens_total"]}


class Rig:
    """The real translator and trace context over a store built as the App builds it."""

    def __init__(self, document: dict) -> None:
        config = validate({"attribution": {"max_indexed_spans": 5000}, **document})
        self.store = SeriesStore(store_limits(config), ManualClock(), with_dimensions(CATALOG, config.dimensions))
        self.translator = Translator(self.store, context=TraceContext(config.attribution, self.store),
                                     dimensions=config.dimensions)
        self.next_id = 1

    def span(self, attributes: dict, resource: dict | None = None) -> Span:
        n = self.next_id
        self.next_id += 1
        return Span(n.to_bytes(16, "big"), n.to_bytes(8, "big"), b"", "span", 1, T0, T0 + 10**6, 0,
                    attributes, resource if resource is not None else {"service.name": "svc"})

    def llm(self, tokens: int = 10, cost: float | None = 0.5, resource: dict | None = None, **attributes) -> Span:
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.agent.name": "planner", "gen_ai.provider.name": "openai",
                 "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": tokens, **attributes}
        if cost is not None:
            attrs["gen_ai.usage.cost"] = cost
        return self.span(attrs, resource)

    def tool(self, name: str, agent: str = "planner", **attributes) -> Span:
        return self.span({"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": agent,
                          "gen_ai.tool.name": name, **attributes})

    def send(self, spans: list[Span]) -> None:
        self.translator.consume(Batch(spans=spans), "grpc")
        self.translator.drain()

    def series(self, metric: str) -> dict[tuple[str, ...], float]:
        return {key: s.value for key, s in self.store[metric].series.items()}


def test_value_from_span_then_resource_then_default():
    rig = Rig({"dimensions": [TENANT]})
    rig.send([
        rig.llm(**{"app.tenant": "acme"}),  # the first attribute
        rig.llm(**{"enduser.id": "bob"}),  # the second, when the first is absent
        rig.llm(**{"app.tenant": "acme", "enduser.id": "bob"}),  # the first present wins
        rig.llm(resource={"service.name": "svc", "app.tenant": "globex"}),  # on the resource
        rig.llm(resource={"service.name": "svc", "app.tenant": "globex"}, **{"enduser.id": "carol"}),  # span first
        rig.llm(),  # nowhere: the default
        rig.llm(**{"app.tenant": ""}),  # empty counts as absent
        rig.llm(**{"app.tenant": ["a", "b"]}),  # an array is no label value
        rig.llm(**{"app.tenant": 42}),  # a number is written as text
    ])
    assert rig.series("agent_tokens_total") == {
        ("planner", "openai", "m", "input", "acme"): 20,
        ("planner", "openai", "m", "input", "bob"): 10,
        ("planner", "openai", "m", "input", "globex"): 10,
        ("planner", "openai", "m", "input", "carol"): 10,
        ("planner", "openai", "m", "input", "none"): 30,
        ("planner", "openai", "m", "input", "42"): 10,
    }
    assert sum(rig.series("agent_llm_cost_usd_total").values()) == pytest.approx(4.5)
    # a family that was not chosen keeps its catalog labels
    assert rig.series("agent_llm_calls_total") == {("planner", "openai", "m", "chat", "ok"): 9}


def test_two_dimensions_on_one_family_in_configuration_order():
    rig = Rig({"dimensions": [TENANT, ENVIRONMENT]})
    assert rig.store["agent_tokens_total"].spec.labels == ("agent", "provider", "model", "type", "tenant",
                                                           "environment")
    assert rig.store["agent_tool_calls_total"].spec.labels == ("agent", "tool", "status", "tenant")
    rig.send([rig.llm(resource={"service.name": "svc", "deployment.environment.name": "prod"},
                      **{"enduser.id": "bob"}),
              rig.tool("search", **{"app.tenant": "acme"})])
    assert rig.series("agent_tokens_total") == {("planner", "openai", "m", "input", "bob", "prod"): 10}
    assert rig.series("agent_tool_calls_total") == {("planner", "search", "ok", "acme"): 1}


def test_runtime_events_get_the_defaults():
    rig = Rig({"dimensions": [TENANT]})
    rig.send([rig.tool("search", **{"app.tenant": "acme"})])  # a span's value must not leak into the event
    events, errors, _ = parse_events([
        {"event_type": "session_started", "session_id": "s1", "agent": "planner"},
        {"event_type": "tool_completed", "session_id": "s1", "tool_name": "search", "duration_ms": 5},
    ], 10)
    assert not errors
    rig.translator.sessions = SessionTracker(rig.store, validate({}).sessions, ManualClock())
    for event in events:
        rig.translator.event(event)
    assert rig.series("agent_tool_calls_total") == {("planner", "search", "ok", "acme"): 1,
                                                    ("planner", "search", "ok", "none"): 1}


def test_dimension_values_go_through_label_hygiene():
    rig = Rig({"dimensions": [TENANT], "store": {"max_label_value_length": 8, "label_allow": {"tenant": "[a-z]+"}}})
    rig.send([rig.tool("t", **{"app.tenant": "abcdefghijkl"}), rig.tool("t", **{"app.tenant": "ACME"}),
              rig.tool("t", **{"app.tenant": "\ud800x"})])
    tenants = {key[3] for key in rig.series("agent_tool_calls_total")}
    assert tenants == {"abcdefgh", "other"}


# -- configuration ---------------------------------------------------------------------------------

def test_invalid_dimensions_are_located(tmp_path):
    path = tmp_path / "agentprom.yaml"
    path.write_text(
        "security:\n  attribute_deny: ['secret.*']\n"
        "store:\n  label_values: {tenant: 10, nope: 3}\n"
        "dimensions:\n"
        "  - {label: agent, attributes: [x], metrics: [agent_tokens_total]}\n"
        "  - {label: 9lives, attributes: [], metrics: [agent_sessions_total]}\n"
        "  - {label: __tenant, attributes: [a, a], metrics: [agent_tokens_total, agent_tokens_total]}\n"
        "  - {label: ok, attributes: [x], metrics: [agent_tool_calls_total], default: ''}\n"
        "  - {label: tenant, attributes: [x], metrics: [agent_tool_calls_total],"
        " budgets: {acme: {cost_usd_per_hour: 5}}}\n"
        "  - {label: tenant2, attributes: [x], metrics: [agent_tool_calls_total], colour: red}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert "dimensions.0.label: 'agent' is already a label of agentprom's metrics" in text
    assert "dimensions.1.label: '9lives' is not a Prometheus label name" in text
    assert "dimensions.1.attributes" in text and "at least 1 item" in text
    assert "dimensions.1.metrics: 'agent_sessions_total' cannot take a dimension" in text
    assert "dimensions.2.label: '__tenant': label names starting with __ are reserved" in text
    assert "dimensions.2.attributes: 'a' is listed twice" in text
    assert "dimensions.2.metrics: 'agent_tokens_total' is listed twice" in text
    assert "dimensions.3.default" in text
    assert "budgets.acme.cost_usd_per_hour needs agent_llm_cost_usd_total in metrics" in text
    assert "dimensions.5.colour: unknown key" in text
    assert "store.label_values: 'nope' is not a label" in text and "'tenant'" not in text.split("nope")[0][-60:]

    path.write_text(
        "security:\n  attribute_deny: ['secret.*']\n"
        "dimensions:\n"
        "  - {label: tenant, attributes: [secret.tenant], metrics: [agent_tokens_total]}\n"
        "  - {label: tenant, attributes: [x], metrics: [agent_tool_calls_total]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert "label 'tenant' is configured twice" in text
    assert "'secret.tenant' is removed by security.attribute_deny" in text


def test_a_budget_no_series_can_match_is_refused():
    long = dict(TENANT, budgets={"x" * 200: {"cost_usd_per_hour": 1}})
    with pytest.raises(ConfigError, match="longer than store.max_label_value_length"):
        validate({"dimensions": [long]})
    outside = dict(TENANT, budgets={"ACME": {"cost_usd_per_hour": 1}})
    with pytest.raises(ConfigError, match="does not match store.label_allow"):
        validate({"dimensions": [outside], "store": {"label_allow": {"tenant": "[a-z]+"}}})
    validate({"dimensions": [dict(TENANT, budgets={"acme": {"cost_usd_per_hour": 1}})],
              "store": {"label_allow": {"tenant": "[a-z]+"}}})


def test_store_settings_may_name_a_dimension():
    config = validate({"store": {"label_values": {"tenant": 10}, "label_allow": {"tenant": "[a-z]+"}},
                       "dimensions": [TENANT]})
    assert config.store.label_values == {"tenant": 10}
    with pytest.raises(ConfigError, match="'tenant' is not a label"):
        validate({"store": {"label_values": {"tenant": 10}}})


def test_the_catalog_docs_follow_the_configuration():
    config = validate({"dimensions": [TENANT]})
    text = render_markdown(with_dimensions(CATALOG, config.dimensions), config.dimensions)
    assert "| `agent_tokens_total` | counter | `agent`, `provider`, `model`, `type`, `tenant` |" in text
    assert "| `agent_llm_calls_total` | counter | `agent`, `provider`, `model`, `operation`, `status` |" in text
    assert "`tenant`: from `app.tenant`, `enduser.id`" in text and "default `none`" in text
    assert "## Extra dimensions" in text and "## Extra dimensions" not in render_markdown(CATALOG)


# -- through the decoders: the real SDK exporter and a running sidecar --------------------------------

def test_span_and_resource_attributes_reach_the_labels_over_otlp(make_sidecar):
    sidecar = make_sidecar({"dimensions": [TENANT, ENVIRONMENT]})
    provider = TracerProvider(resource=Resource.create({"service.name": "shop",
                                                        "deployment.environment.name": "staging"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sidecar.grpc_address, insecure=True)))
    tracer = provider.get_tracer("test")
    for tenant in ("acme", "acme", None):
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.agent.name": "planner",
                      "gen_ai.provider.name": "openai", "gen_ai.request.model": "m",
                      "gen_ai.usage.input_tokens": 7}
        if tenant:
            attributes["app.tenant"] = tenant
        with tracer.start_as_current_span("chat m", attributes=attributes):
            pass
    provider.shutdown()
    assert sidecar.value("agent_tokens_total", agent="planner", provider="openai", model="m", type="input",
                         tenant="acme", environment="staging") == 14
    assert sidecar.value("agent_tokens_total", agent="planner", provider="openai", model="m", type="input",
                         tenant="none", environment="staging") == 7
    text = sidecar.scrape()
    assert 'agent_tokens_total{agent="planner",provider="openai",model="m",type="input",tenant="acme",' \
           'environment="staging"} 14' in text


# -- attacks on a dimension --------------------------------------------------------------------------

def attack(rig: Rig, agents: list[str], names: int, seed: int) -> tuple[dict[str, int], float]:
    """``names`` distinct tenants spread over ``agents``' tool calls. Returns the calls sent per agent
    and the tracemalloc peak growth in bytes; checks that the second half left (almost) nothing."""
    rng = random.Random(seed)
    sent = {agent: 0 for agent in agents}
    batch: list[Span] = []
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    halfway = 0
    for i in range(names):
        agent = agents[i % len(agents)]
        batch.append(rig.tool(rng.choice(["search", "read"]), agent, **{"app.tenant": f"t-{i}-{rng.randrange(10**6)}"}))
        sent[agent] += 1
        if len(batch) >= 500:
            rig.send(batch)
            batch = []
        if i == names // 2:
            halfway = tracemalloc.get_traced_memory()[0]
    rig.send(batch)
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert now - halfway < 4 * 2**20, (halfway, now)
    return sent, peak - base


@pytest.mark.parametrize("agents", [["victim"], ["victim", "accomplice"]])
def test_attack_of_100000_tenants_keeps_each_agent_total(agents):
    rig = Rig({"dimensions": [TENANT]})
    sent, peak = attack(rig, agents, 100_000, seed=len(agents))
    calls = rig.store["agent_tool_calls_total"]
    per_agent: dict[str, float] = {}
    per_tenant: dict[str, float] = {}
    for key, series in calls.series.items():
        per_agent[key[0]] = per_agent.get(key[0], 0) + series.value
        per_tenant[key[3]] = per_tenant.get(key[3], 0) + series.value
    assert per_agent == sent  # sum by (agent): exact
    assert calls.overflow is None  # nothing folded away its agent
    budget = rig.store.limits.max_label_values
    assert len(per_tenant) == budget + 1  # the first 1000 tenants, then __overflow__
    assert per_tenant[OVERFLOW_VALUE] == 100_000 - budget
    assert rig.store.value("agentprom_label_overflow_total", ("agent_tool_calls_total", "tenant")) == 100_000 - budget
    assert rig.store.value("agentprom_label_overflow_total", ("agent_tool_calls_total", "tool")) == 0
    assert peak < 48 * 2**20, peak
