"""Record Strands Agents' native OpenTelemetry GenAI spans for a multi-agent tree (fixture
``strands_multi_agent``).

Ran with (Python 3.11, 2026-12-03)::

    python3 -m venv /tmp/venv-strands-multi
    /tmp/venv-strands-multi/bin/pip install 'strands-agents[openai]' opentelemetry-sdk \
        opentelemetry-exporter-otlp-proto-common
    # resolved: strands-agents 1.62.0, openai 2.54.0, opentelemetry-api/sdk 1.45.1,
    #           opentelemetry-exporter-otlp-proto-common 1.45.2
    cd <repo> && /tmp/venv-strands-multi/bin/python scripts/record_traces/strands_multi_agent.py

Same setup as ``strands.py``: Strands' tracer takes the *global* tracer provider when an Agent
is built, so the harness's in-memory provider is enough; default semantic conventions (no
``OTEL_SEMCONV_STABILITY_OPT_IN``).

Scenario ("agents as tools", one run, one trace): agent ``orchestrator`` (OpenAIModel, model
``gpt-4o-mini``) has two tools that each build and call another Strands Agent: ``research``
runs agent ``researcher`` and ``write`` runs agent ``writer``. ``researcher`` has a plain tool
``search_web`` and a tool ``fact_check`` that runs a third agent ``fact_checker``. ``writer``
has no tools. The fake model answers by the requesting agent (its system prompt) and the tool
calls already in the conversation, not by arrival order (``ByAgent`` below):

- orchestrator: calls ``research``, then ``write``, then answers;
- researcher: calls ``search_web``, then ``fact_check``, then answers;
- fact_checker and writer: answer at once.

One tool call per model turn, so nothing runs concurrently; every completion reports 50 prompt
and 10 completion tokens (the harness's usage). No randomness.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

os.environ.pop("OTEL_SDK_DISABLED", None)
os.environ.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
# strands.py lives in this folder too: keep the folder last on the path so ``import strands`` is the package
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(_HERE)] + [_HERE]

import harness  # noqa: E402
from harness import FakeOpenAI, Reply  # noqa: E402

NAME = "strands_multi_agent"
SERVICE = "strands-multi-agent-demo"

#: agent name -> system prompt (the fake model tells the agents apart by it)
PROMPTS = {
    "orchestrator": "You are the orchestrator. Delegate research and writing to your tools.",
    "researcher": "You are the researcher. Search the web and fact-check what you find.",
    "fact_checker": "You are the fact checker. Confirm or refute one claim.",
    "writer": "You are the writer. Turn research notes into a short paragraph.",
}

#: agent name -> the tool calls it makes, one per turn, in order (then it answers)
PLAN: dict[str, list[tuple[str, str]]] = {
    "orchestrator": [("research", '{"topic": "the Eiffel Tower"}'),
                     ("write", '{"notes": "The Eiffel Tower is 330 m tall (verified)."}')],
    "researcher": [("search_web", '{"query": "Eiffel Tower height"}'),
                   ("fact_check", '{"claim": "The Eiffel Tower is 330 m tall."}')],
    "fact_checker": [],
    "writer": [],
}

ANSWERS = {
    "orchestrator": "Here is your paragraph: the Eiffel Tower stands 330 m tall.",
    "researcher": "The Eiffel Tower is 330 m tall (verified).",
    "fact_checker": "Confirmed: the Eiffel Tower is 330 m tall.",
    "writer": "The Eiffel Tower stands 330 m tall.",
}


def _system_text(request: dict[str, Any]) -> str:
    for message in request.get("messages") or []:
        if message.get("role") == "system":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


class ByAgent:
    """Replies keyed on the request, not on arrival order: the agent is found by its system
    prompt, its next step by the tool calls already made in the conversation."""

    def __init__(self) -> None:
        self.served: list[str] = []  # agent of each request, in arrival order

    def __call__(self, request: dict[str, Any]) -> Reply:
        system = _system_text(request)
        agent = next((name for name, prompt in PROMPTS.items() if prompt in system), None)
        if agent is None:
            raise AssertionError(f"request from an unknown agent: {system!r}")
        self.served.append(agent)
        made = [call["function"]["name"] for m in request.get("messages") or []
                if m.get("role") == "assistant" for call in m.get("tool_calls") or []]
        plan = PLAN[agent]
        if len(made) < len(plan):
            return Reply(tool_calls=[plan[len(made)]])
        return Reply(text=ANSWERS[agent])


def main() -> None:
    provider, exporter = harness.in_memory_provider(SERVICE)

    from strands import Agent, tool
    from strands.models.openai import OpenAIModel
    from strands.telemetry import StrandsTelemetry

    StrandsTelemetry(tracer_provider=provider)  # no exporter of its own: spans go to the harness's

    policy = ByAgent()
    with FakeOpenAI(policy) as fake:
        def make_agent(name: str, tools: list[Any]) -> Agent:
            model = OpenAIModel(client_args={"api_key": "sk-fake", "base_url": fake.base_url, "max_retries": 0},
                                model_id="gpt-4o-mini")
            return Agent(name=name, model=model, tools=tools, system_prompt=PROMPTS[name],
                         callback_handler=None)

        @tool
        def search_web(query: str) -> str:
            """Search the web."""
            return f"Top result for {query!r}: the Eiffel Tower is 330 m tall."

        @tool
        def fact_check(claim: str) -> str:
            """Have the fact-checker agent verify one claim."""
            return str(make_agent("fact_checker", [])(f"Check: {claim}"))

        @tool
        def research(topic: str) -> str:
            """Have the researcher agent research a topic."""
            return str(make_agent("researcher", [search_web, fact_check])(f"Research {topic}."))

        @tool
        def write(notes: str) -> str:
            """Have the writer agent write a paragraph from notes."""
            return str(make_agent("writer", [])(f"Write a paragraph from: {notes}"))

        result = make_agent("orchestrator", [research, write])("Write a short verified paragraph on the Eiffel Tower.")
        print("final answer:", str(result).strip())
        print("requests served:", len(fake.requests), policy.served)

    provider.force_flush()
    spans = exporter.get_finished_spans()
    print(harness.tree(spans))
    harness.write_fixture(NAME, spans, {
        "date": "2026-12-03",
        "service.name": SERVICE,
        "packages": harness.versions("strands-agents", "openai", "opentelemetry-sdk", "opentelemetry-api",
                                     "opentelemetry-exporter-otlp-proto-common"),
        "python": sys.version.split()[0],
        "semconv": "default (OTEL_SEMCONV_STABILITY_OPT_IN unset)",
        "scenario": "agents as tools, one run (one trace): orchestrator (OpenAIModel gpt-4o-mini, tools research "
                    "and write) calls research -> agent researcher (tools search_web and fact_check) calls "
                    "search_web, then fact_check -> agent fact_checker answers; researcher answers; orchestrator "
                    "calls write -> agent writer answers; orchestrator answers. Fake model replies keyed on the "
                    "system prompt and the tool calls already made; 50/10 tokens per completion.",
        "requests_by_agent": policy.served,
    })


if __name__ == "__main__":
    main()
