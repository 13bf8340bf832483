"""Measure what the trace context and session tracking add to the per-span translator cost; prints JSON.

Usage: python3 bench/sessions_overhead.py [--spans N] [--repeat R] [--extra-attributes K]

Feeds the same decoded spans (agent runs: an agent span, an LLM call and two tool calls per
trace, children first as spans end; in half of the traces the calls name their agent, in the
other half only the agent span does, so they wait for it in the trace context; half of the
traces keyed by gen_ai.conversation.id, so the other half are trace-id sessions that start and
end within 4-5 spans; a quarter inside an own-convention phase) through a Translator without
listeners, with the trace context, with the trace context and the session tracker (the default:
the tracker reads what the trace context settles), and with both and the JSONL log (its writer
thread not started, so only the event-loop side counts). Reports spans per CPU-second for each
and the differences, measured in one run: the machine is shared, so compare within a run.
``--extra-attributes K`` adds K attributes no stage reads to every span, as instrumentations
that record messages and parameters do (OpenInference LLM spans carry dozens): what a check
costs can grow with a span's attribute count.

To compare with an earlier commit, run its copy of this script interleaved with this one
(``git worktree add /tmp/before <rev>``; alternate the two a few times and compare the best of
each): before the trace context existed, its ``with_sessions`` mode was the default.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from agentprom.clock import ManualClock  # noqa: E402
from agentprom.context.stage import TraceContext  # noqa: E402
from agentprom.config.loader import validate  # noqa: E402
from agentprom.metrics.series_store import SeriesStore  # noqa: E402
from agentprom.evaluations.counter import Evaluations  # noqa: E402
from agentprom.guardrails import Guardrails  # noqa: E402
from agentprom.model import Span  # noqa: E402
from agentprom.runs import Runs  # noqa: E402
from agentprom.sessions.tracker import SessionTracker  # noqa: E402
from agentprom.sinks.jsonl import JsonlWriter  # noqa: E402
from agentprom.translator import Translator  # noqa: E402


#: translator alone; with the trace context; with sessions (no context: the default before the
#: context existed); the default (context and sessions); the default with the JSONL log
MODES = ("translator", "context", "default", "jsonl")


def make_spans(n: int, extra: int = 0) -> list[Span]:
    spans = []
    padding = {f"llm.input_messages.{k}.message.content": "..." for k in range(extra)}
    t0 = 1_700_000_000_000_000_000
    traces = n // 4
    for i in range(traces):
        trace = os.urandom(16)
        root, phase = os.urandom(8), os.urandom(8)
        agent = {"gen_ai.agent.name": f"agent{i % 5}"}
        common = dict(agent) if i % 4 < 2 else {}  # the calls of every other pair of traces name no agent
        if i % 2:
            common["gen_ai.conversation.id"] = f"conv{i % 200}"
        in_phase = i % 4 == 0
        parent = phase if in_phase else root
        start = t0 + i * 10_000_000
        spans.append(Span(trace, os.urandom(8), parent, "chat m", 3, start, start + 5_000_000, 0,
                          {**padding, **common, "gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                           "gen_ai.provider.name": "p", "gen_ai.usage.input_tokens": 100,
                           "gen_ai.usage.output_tokens": 20}, {"service.name": "svc"}))
        for k in range(2):
            spans.append(Span(trace, os.urandom(8), parent, "execute_tool t", 1, start, start + 1_000_000,
                              2 if k == 0 and i % 3 == 0 else 0,
                              {**padding, **common, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"t{k}"},
                              {"service.name": "svc"}))
        if in_phase:
            spans.append(Span(trace, phase, root, "phase", 1, start, start + 6_000_000, 0,
                              {**padding, **common, "agent.phase.name": "work"}, {"service.name": "svc"}))
        spans.append(Span(trace, root, b"", "invoke_agent", 1, start, start + 8_000_000, 0,
                          {**padding, **common, **agent, "gen_ai.operation.name": "invoke_agent"}, {"service.name": "svc"}))
    return spans


def run(spans: list[Span], mode: str, directory: str) -> float:
    config = validate({})
    clock = ManualClock()
    store = SeriesStore(clock=clock)
    # the trace context (context/stage.py) is part of the default configuration, as the App runs it
    context = TraceContext(config.attribution, store) if mode in ("context", "default", "jsonl") else None
    translator = Translator(store, context=context)
    if mode not in ("translator", "context"):
        sink = None
        if mode == "jsonl":
            sink = JsonlWriter(directory, 1 << 30, 1, len(spans) * 2).append
        tracker = SessionTracker(store, config.sessions, clock, sink=sink)
        translator.listeners.append(tracker.on_resolved)  # as the App subscribes it
    if context is not None and mode != "context":
        # the other listeners of the default configuration, as the App subscribes them
        attribution = config.attribution
        translator.listeners.append(Runs(store, clock, attribution.run_grace_seconds,
                                         attribution.max_open_runs).on_resolved)
        translator.listeners.append(Guardrails(store).on_resolved)
        evaluations = config.evaluations
        translator.listeners.append(Evaluations(store, clock, context, evaluations.max_abs_score,
                                                evaluations.max_wait_seconds, evaluations.max_waiting).on_resolved)
    feed = translator.spans
    gc.collect()  # what earlier runs left is not this run's cost
    began = time.process_time()
    for index in range(0, len(spans), 512):  # the batches a 512-span export request makes
        store.tick()
        feed(spans[index:index + 512])
    return len(spans) / (time.process_time() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--extra-attributes", type=int, default=0,
                        help="attributes no stage reads, added to every span (default 0)")
    args = parser.parse_args()
    spans = make_spans(args.spans, args.extra_attributes)
    # the input spans are not part of what is measured: keep the collector from rescanning them
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory() as directory:
        best = {mode: 0.0 for mode in MODES}
        for _ in range(args.repeat):  # interleaved, so a busy moment hits every mode alike
            for mode in best:
                best[mode] = max(best[mode], run(spans, mode, directory))
    base, logged = best["translator"], best["jsonl"]
    context, default = best["context"], best["default"]
    print(json.dumps({
        "spans": len(spans),
        "translator_spans_per_cpu_second": round(base),
        "with_context_spans_per_cpu_second": round(context),
        "default_spans_per_cpu_second": round(default),
        "default_with_jsonl_spans_per_cpu_second": round(logged),
        "context_us_per_span": round(1e6 / context - 1e6 / base, 2),
        "sessions_us_per_span": round(1e6 / default - 1e6 / context, 2),
        "default_us_per_span": round(1e6 / default - 1e6 / base, 2),
        "jsonl_us_per_span": round(1e6 / logged - 1e6 / default, 2),
    }))


if __name__ == "__main__":
    main()
