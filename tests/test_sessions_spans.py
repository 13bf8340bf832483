"""Session lifecycles from real SDK spans of every convention: own, OTel GenAI, OpenInference, OpenLLMetry."""

from __future__ import annotations

from contextlib import contextmanager

from opentelemetry.trace import Status, StatusCode

from agentprom.clock import ManualClock
from tests.otel import tracer
from tests.runtime_api import get_json


@contextmanager
def span(t, name: str, fail: bool = False, **attrs):
    attributes = {key.replace("__", "."): value for key, value in attrs.items()}
    with t.start_as_current_span(name, attributes=attributes) as s:
        yield s
        if fail:
            s.set_status(Status(StatusCode.ERROR, "failed"))
            s.set_attribute("error.type", "ToolError")


def own_session(t, session_id: str = "own-1") -> None:
    """agentprom's own convention: a session span, two phases, and everything the convention names."""
    sid = {"agent__session__id": session_id, "gen_ai__agent__name": "builder"}
    tool = {"gen_ai__operation__name": "execute_tool", **sid}
    with span(t, "session", agent__span__kind="session", **sid):
        with span(t, "plan", agent__phase__name="plan", agent__phase__id="p1", **sid):
            # no phase attributes: attributed to "plan" through the parent span
            with span(t, "execute_tool search", fail=True, gen_ai__tool__name="search", **tool):
                pass
            with span(t, "execute_tool search", gen_ai__tool__name="search", agent__retry__attempt=2, **tool):
                pass
            with span(t, "chat gpt-4o", gen_ai__operation__name="chat", gen_ai__request__model="gpt-4o",
                       gen_ai__provider__name="openai", gen_ai__usage__input_tokens=1200,
                       gen_ai__usage__output_tokens=50, agent__context__tokens_used=1200,
                       agent__context__tokens_available=1000, **sid):
                pass
        with span(t, "build", agent__phase__name="build", **sid) as build:
            build.add_event("agent.checkpoint")
            build.add_event("agent.context_reset")
            build.add_event("agent.memory.read")
            with span(t, "execute_tool write", gen_ai__tool__name="write", agent__phase__name="build",
                       agent__memory__operation="write", **tool):
                pass


def test_own_convention_session_phases_and_signals(sidecar):
    with tracer(sidecar.http_url, "http", service="svc") as t:
        own_session(t)

    status, s = get_json(sidecar, "/runtime/session/own-1")
    assert status == 200
    assert (s["status"], s["agent"], s["model"], s["provider"]) == ("completed", "builder", "gpt-4o", "openai")
    assert (s["tool_calls"], s["tool_errors"], s["llm_calls"], s["recoveries"], s["retries"]) == (3, 1, 1, 1, 1)
    assert (s["phases"], s["phases_completed"]) == (2, 2)
    assert (s["checkpoints"], s["context_resets"], s["memory_reads"], s["memory_writes"]) == (1, 1, 1, 1)
    assert (s["context_tokens_used"], s["context_tokens_available"]) == (1200, 1000)
    assert s["peak_context_utilization"] == 1.2
    # phases 2/2; recoveries 1/1; context resets 1 - 1/2; utilization 0/1 within 100%; no execution resets
    assert s["continuity"] == {"phase_completion": 1.0, "error_recovery": 1.0, "context_resets": 0.5,
                               "context_utilization": 0.0, "execution_resets": 1.0}
    assert s["continuity_score"] == 82.5  # 100 * (0.30 + 0.25 + 0.15 * 0.5 + 0 + 0.20)

    phases = get_json(sidecar, "/runtime/session/own-1/phases")[1]["phases"]
    assert [(p["phase_id"], p["phase_name"], p["status"], p["tool_calls"], p["llm_calls"], p["errors"],
             p["recoveries"]) for p in phases] == [
        ("p1", "plan", "completed", 2, 1, 1, 1),
        ("build", "build", "completed", 1, 0, 0, 0),
    ]
    calls = get_json(sidecar, "/runtime/session/own-1/tool_calls")[1]["tool_calls"]
    assert [(c["tool_name"], c["phase_id"], c["attempt"], c["recovered"]) for c in calls] == [
        ("search", "p1", 1, False), ("search", "p1", 2, True), ("write", "build", 1, False),
    ]

    v = sidecar.value
    assert v("agent_sessions_total", agent="builder", status="completed") == 1
    assert v("agent_phases_total", agent="builder", phase="plan", status="completed") == 1
    assert v("agent_phases_total", agent="builder", phase="build", status="completed") == 1
    assert v("agent_recoveries_total", agent="builder", component="tool") == 1
    assert v("agent_tool_retries_total", agent="builder", tool="search") == 1
    assert v("agent_checkpoints_total", agent="builder") == 1
    assert v("agent_context_resets_total", agent="builder") == 1
    assert v("agent_memory_operations_total", agent="builder", operation="read") == 1
    assert v("agent_memory_operations_total", agent="builder", operation="write") == 1
    text = sidecar.scrape()
    assert 'agent_context_utilization_ratio_bucket{agent="builder",le="1.0"} 0\n' in text
    assert 'agent_context_utilization_ratio_bucket{agent="builder",le="1.5"} 1\n' in text


def test_session_span_error_or_reported_status_fails_the_session(sidecar):
    with tracer(sidecar.grpc_address) as t:
        with span(t, "session", fail=True, agent__span__kind="session", agent__session__id="bad-1"):
            pass
        with span(t, "step", agent__session__id="bad-2", agent__session__status="failed"):
            pass
        with span(t, "session", agent__span__kind="session", agent__session__id="bad-2"):
            pass
    assert get_json(sidecar, "/runtime/session/bad-1")[1]["status"] == "failed"
    assert get_json(sidecar, "/runtime/session/bad-2")[1]["status"] == "failed"


def test_otel_genai_conversation_times_out_and_trace_sessions_end_with_their_root(make_sidecar):
    clock = ManualClock()
    sidecar = make_sidecar(clock=clock)
    genai = {"gen_ai__agent__name": "planner"}
    with tracer(sidecar.grpc_address) as t:
        for _turn in range(2):  # two agent runs (two traces) of one conversation
            with span(t, "invoke_agent planner", gen_ai__operation__name="invoke_agent",
                      gen_ai__conversation__id="conv-1", **genai):
                with span(t, "execute_tool lookup", gen_ai__operation__name="execute_tool",
                          gen_ai__tool__name="lookup", gen_ai__conversation__id="conv-1", **genai):
                    pass
        # no session key at all: the trace is the session, and its root span ends it
        with span(t, "invoke_agent solo", fail=True, gen_ai__operation__name="invoke_agent",
                  gen_ai__agent__name="solo") as root:
            trace_id = format(root.get_span_context().trace_id, "032x")
            with span(t, "execute_tool x", gen_ai__operation__name="execute_tool", gen_ai__agent__name="solo"):
                pass
        # a plain HTTP trace is no session
        with span(t, "GET /health", http__request__method="GET"):
            pass

    conv = get_json(sidecar, "/runtime/session/conv-1")[1]
    assert (conv["status"], conv["agent"], conv["tool_calls"]) == ("active", "planner", 2)
    solo = get_json(sidecar, f"/runtime/session/{trace_id}")[1]
    assert (solo["status"], solo["agent"], solo["tool_calls"]) == ("failed", "solo", 1)
    assert get_json(sidecar, "/runtime/sessions")[1]["total"] == 2

    clock.advance(301)
    assert sidecar.call(sidecar.app.tracker.expire) == 1
    assert get_json(sidecar, "/runtime/session/conv-1")[1]["status"] == "abandoned"
    assert sidecar.value("agent_sessions_total", agent="planner", status="abandoned") == 1
    assert sidecar.value("agent_sessions_total", agent="solo", status="failed") == 1


def test_openinference_chain_under_agent_is_a_phase(sidecar):
    oi = {"session__id": "oi-1"}
    with tracer(sidecar.http_url, "http", service="oi-service") as t:
        with span(t, "Agent workflow", openinference__span__kind="AGENT", agent__name="researcher", **oi):
            with span(t, "retrieve", openinference__span__kind="CHAIN", **oi):
                with span(t, "search", openinference__span__kind="TOOL", tool__name="search", **oi):
                    pass
                with span(t, "ChatCompletion", openinference__span__kind="LLM", llm__model_name="gpt-4o-mini",
                          llm__system="openai", llm__token_count__prompt=10, llm__token_count__completion=5, **oi):
                    pass
        # a CHAIN without an agent parent is not a phase
        with span(t, "loose chain", openinference__span__kind="CHAIN", **oi):
            with span(t, "fetch", openinference__span__kind="TOOL", tool__name="fetch", **oi):
                pass

    s = get_json(sidecar, "/runtime/session/oi-1")[1]
    assert (s["agent"], s["tool_calls"], s["llm_calls"], s["phases"]) == ("researcher", 2, 1, 1)
    assert s["tokens"]["total"] == 15
    phases = get_json(sidecar, "/runtime/session/oi-1/phases")[1]["phases"]
    assert [(p["phase_name"], p["status"], p["tool_calls"], p["llm_calls"]) for p in phases] == [
        ("retrieve", "completed", 1, 1)
    ]
    calls = get_json(sidecar, "/runtime/session/oi-1/tool_calls")[1]["tool_calls"]
    assert [(c["tool_name"], c["phase_name"]) for c in calls] == [("search", "retrieve"), ("fetch", None)]
    assert sidecar.value("agent_phases_total", agent="researcher", phase="retrieve", status="completed") == 1


def test_openllmetry_task_is_a_phase(sidecar):
    tl = {"traceloop__association__properties__session_id": "tl-1", "gen_ai__agent__name": "crew"}
    with tracer(sidecar.grpc_address) as t:
        with span(t, "crew.workflow", traceloop__span__kind="workflow", **tl):
            with span(t, "plan.task", traceloop__span__kind="task", traceloop__entity__name="plan", **tl):
                with span(t, "search.tool", traceloop__span__kind="tool", traceloop__entity__name="search", **tl):
                    pass
                with span(t, "openai.chat", llm__request__type="chat", gen_ai__provider__name="openai",
                          gen_ai__request__model="gpt-4o", http__request__resend_count=1, **tl):
                    pass
    s = get_json(sidecar, "/runtime/session/tl-1")[1]
    assert (s["agent"], s["status"], s["tool_calls"], s["llm_calls"], s["retries"]) == ("crew", "active", 1, 1, 1)
    phases = get_json(sidecar, "/runtime/session/tl-1/phases")[1]["phases"]
    assert [(p["phase_name"], p["status"], p["tool_calls"], p["llm_calls"]) for p in phases] == [
        ("plan", "completed", 1, 1)
    ]
    # an LLM retry signalled by the HTTP layer
    assert sidecar.value("agent_tool_retries_total", agent="crew", tool="llm:gpt-4o") == 1


def test_recovery_counts_once_per_failure_run(sidecar):
    sid = {"agent__session__id": "rec", "gen_ai__agent__name": "fixer"}
    tool = {"gen_ai__operation__name": "execute_tool", **sid}
    with tracer(sidecar.grpc_address) as t:
        with span(t, "session", agent__span__kind="session", **sid):
            for fail in (True, True, False, False):  # fail, fail, succeed (recovery), succeed (none)
                with span(t, "execute_tool deploy", fail=fail, gen_ai__tool__name="deploy", **tool):
                    pass
            with span(t, "execute_tool other", fail=True, gen_ai__tool__name="other", **tool):
                pass  # never recovered
            with span(t, "chat", fail=True, gen_ai__operation__name="chat", gen_ai__request__model="m", **sid):
                pass
            with span(t, "chat", gen_ai__operation__name="chat", gen_ai__request__model="m", **sid):
                pass  # an LLM recovery
    s = get_json(sidecar, "/runtime/session/rec")[1]
    assert (s["errors"], s["recoveries"]) == (4, 2)
    assert s["continuity"]["error_recovery"] == 0.5
    assert get_json(sidecar, "/runtime/session/rec/metrics")[1]["recovery_rate"] == 0.5
    assert sidecar.value("agent_recoveries_total", agent="fixer", component="tool") == 1
    assert sidecar.value("agent_recoveries_total", agent="fixer", component="llm") == 1


def test_llm_recovery_matches_the_requested_model_not_the_dated_response_model(sidecar):
    # OpenAI-style spans: the failed call names only the requested model; its successful retry
    # also carries the dated response model. Both are the same call target.
    sid = {"agent__session__id": "rec-llm", "gen_ai__agent__name": "writer", "gen_ai__operation__name": "chat",
           "gen_ai__request__model": "gpt-4o-mini"}
    with tracer(sidecar.grpc_address) as t:
        with span(t, "chat", fail=True, **sid):
            pass
        with span(t, "chat", gen_ai__response__model="gpt-4o-mini-2024-07-18", **sid):
            pass
    s = get_json(sidecar, "/runtime/session/rec-llm")[1]
    assert (s["errors"], s["recoveries"]) == (1, 1)
    assert sidecar.value("agent_recoveries_total", agent="writer", component="llm") == 1


def test_spans_without_the_key_join_the_session_their_trace_names(sidecar):
    # Only the agent span carries session.id (as in traces where the key was set late): its
    # children arrive first, open a trace-id session, and are folded into "oi-2" when it arrives.
    with tracer(sidecar.grpc_address, service="oi-service") as t:
        with span(t, "Agent workflow", openinference__span__kind="AGENT"):
            with span(t, "research_agent", openinference__span__kind="AGENT", agent__name="researcher",
                      session__id="oi-2") as agent_span:
                with span(t, "search", openinference__span__kind="TOOL", tool__name="search", fail=True):
                    pass
                with span(t, "search", openinference__span__kind="TOOL", tool__name="search"):
                    pass
                agent_span.add_event("agent.checkpoint")
    sessions = get_json(sidecar, "/runtime/sessions")[1]
    assert [s["session_id"] for s in sessions["sessions"]] == ["oi-2"]  # no trace-id session left over
    s = get_json(sidecar, "/runtime/session/oi-2")[1]
    assert (s["agent"], s["status"], s["tool_calls"], s["errors"], s["recoveries"], s["checkpoints"]) == (
        "researcher", "active", 2, 1, 1, 1)
    assert sidecar.value("agent_sessions_active", agent="researcher") == 1
    assert sidecar.value("agent_sessions_active", agent="oi-service") == 0
    assert sidecar.value("agent_sessions_total", agent="oi-service", status="completed") == 0


def test_session_constructor_sets_every_field_to_its_declared_default():
    """Session's hand-written constructor (slots; sessions/model.py) must agree with the fields
    declared: a field added without it would be unset, a default changed in one place only would differ."""
    import dataclasses

    from agentprom.sessions.model import Session

    first, second = Session("s1", 5.0), Session("s2", 6.0, restored=True)
    assert (first.session_id, first.last_activity, first.restored, second.restored) == ("s1", 5.0, False, True)
    for f in dataclasses.fields(Session):
        if f.default is dataclasses.MISSING:  # the constructor's own and the per-session containers
            assert hasattr(first, f.name), f.name
            continue
        assert getattr(first, f.name) == f.default, f.name
    assert first.calls is not second.calls and first.phases is not second.phases  # each its own
