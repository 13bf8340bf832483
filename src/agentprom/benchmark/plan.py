"""The synthetic agent's plan: seeded sessions of phases and calls, and each session's ground truth.

Pure (no I/O, no clock): ``plan_session(workload, seed, index, start_ms)``
always gives the same session for the same arguments, whatever ran before it
(each session draws from its own generator, seeded by the run's seed and the
session's index). Times are whole milliseconds on the run's timeline; the
emitter (synthetic.py) anchors them to the wall clock.

How a session runs (docs/bench.md, "The synthetic agent"):

* phases run in order; a phase makes its LLM and tool calls one after another
  (the first call is an LLM call when it has any, the rest shuffled), with
  think time before each;
* an attempt fails with the tool's (or the LLM's) failure probability; a failed
  attempt is retried (``agent.retry.attempt`` + 1) after a back-off, with
  ``retry.probability``, up to ``retry.max_attempts``; a call whose last attempt
  failed fails its phase, and the phase stops there;
* a failed phase runs again (same phase id: an execution reset) up to
  ``reruns`` times; a phase that still fails fails the session, which stops
  unless ``continue_after_failure``.

``SessionPlan.truth`` counts what the sidecar should report for the session,
by the rules of docs/sessions.md (a recovery is a successful call of a tool or
model that had failed since its last success, counted in the order the spans
end; one checkpoint per completed phase).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentprom.benchmark.scenario import PhaseSpec, Workload
from agentprom.config.schema import ContinuityWeights
from agentprom.sessions.continuity import ContinuityInput, Scorer

TOOL, LLM = "tool", "llm"


@dataclass(slots=True)
class Call:
    kind: str  # TOOL or LLM
    name: str  # the tool, or the model
    start_ms: int
    end_ms: int
    attempt: int
    ok: bool
    error_type: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    context_reset: bool = False


@dataclass(slots=True)
class PhaseRun:
    name: str
    phase_id: str
    #: 0 for the first run, then 1, 2, ... for reruns after a failure
    rerun: int
    start_ms: int
    end_ms: int = 0
    ok: bool = True
    calls: list[Call] = field(default_factory=list)


@dataclass(slots=True)
class SessionPlan:
    index: int
    start_ms: int
    end_ms: int
    phases: list[PhaseRun]
    ok: bool
    #: when the next session starts (after the planned gap)
    next_start_ms: int
    context_window: int

    @property
    def calls(self) -> list[Call]:
        """Every call, in the order their spans end."""
        return [call for phase in self.phases for call in phase.calls]

    def truth(self, weights: Mapping[str, float] | None = None) -> dict[str, Any]:
        """What the sidecar should report for this session. ``continuity_score`` uses ``weights``
        (default: the sidecar's default ``sessions.continuity_weights``)."""
        calls = self.calls
        tools = [c for c in calls if c.kind == TOOL]
        llms = [c for c in calls if c.kind == LLM]
        failing: set[tuple[str, str]] = set()
        recoveries = 0
        for call in calls:
            key = (call.kind, call.name)
            if not call.ok:
                failing.add(key)
            elif key in failing:
                failing.discard(key)
                recoveries += 1
        errors = sum(not c.ok for c in calls)
        completed = sum(p.ok for p in self.phases)
        context_resets = sum(c.context_reset for c in llms)
        observed = [c for c in llms if c.ok] if self.context_window else []
        counts = ContinuityInput(
            phase_count=len(self.phases),
            phases_completed=completed,
            errors=errors,
            recoveries=recoveries,
            context_resets=context_resets,
            utilization_observations=len(observed),
            utilization_within=sum(c.input_tokens <= self.context_window for c in observed),
            execution_resets=sum(p.rerun > 0 for p in self.phases),
        )
        scorer = Scorer(weights if weights is not None else ContinuityWeights().model_dump())
        return {
            "status": "completed" if self.ok else "failed",
            "success": self.ok,
            "duration_ms": self.end_ms - self.start_ms,
            "tool_calls": len(tools),
            "tool_errors": sum(not c.ok for c in tools),
            "llm_calls": len(llms),
            "llm_errors": sum(not c.ok for c in llms),
            "errors": errors,
            "recovery_count": recoveries,
            "retries": sum(c.attempt > 1 for c in calls),
            "phases": len(self.phases),
            "phases_completed": completed,
            "execution_resets": counts.execution_resets,
            "context_resets": context_resets,
            "checkpoints": completed,
            "input_tokens": sum(c.input_tokens for c in llms),
            "output_tokens": sum(c.output_tokens for c in llms),
            "continuity_score": scorer(counts).score,
        }


def session_rng(seed: int, index: int) -> random.Random:
    # a string seed is hashed with SHA-512: stable across processes and Python hash seeds
    return random.Random(f"agentprom-bench:{seed}:{index}")


def _ms(value: float) -> int:
    return max(0, round(value))


class _Planner:
    def __init__(self, workload: Workload, rng: random.Random) -> None:
        self.w = workload
        self.rng = rng

    def phase(self, spec: PhaseSpec, position: int, rerun: int, start_ms: int) -> PhaseRun:
        w, rng = self.w, self.rng
        run = PhaseRun(spec.name, f"p{position + 1}.{spec.name}", rerun, start_ms)
        n_llm, n_tool = spec.llm_calls.sample(rng), spec.tool_calls.sample(rng)
        kinds = [TOOL] * n_tool + [LLM] * max(0, n_llm - 1)
        rng.shuffle(kinds)
        if n_llm:
            kinds.insert(0, LLM)  # an agent thinks before it acts
        names = list(spec.tools if spec.tools is not None else w.tools)
        weights = [w.tools[name].weight for name in names]
        t = start_ms
        for kind in kinds:
            t += _ms(w.think_time_ms.sample(rng))
            name = rng.choices(names, weights)[0] if kind == TOOL else w.llm.model
            t = self.call(run, kind, name, t)
            if not run.ok:
                break
        run.end_ms = t + _ms(w.think_time_ms.sample(rng))
        return run

    def call(self, run: PhaseRun, kind: str, name: str, t: int) -> int:
        """Append the attempts of one call to ``run``; return when the last one ended."""
        w, rng = self.w, self.rng
        spec = w.tools[name] if kind == TOOL else w.llm
        attempt = 1
        while True:
            ok = rng.random() >= spec.failure_probability
            end = t + _ms(spec.duration_ms.sample(rng))
            call = Call(kind, name, t, end, attempt, ok, None if ok else spec.error_type)
            if kind == LLM and ok:
                call.input_tokens = _ms(w.llm.input_tokens.sample(rng))
                call.output_tokens = _ms(w.llm.output_tokens.sample(rng))
                call.context_reset = rng.random() < w.llm.context_reset_probability
            run.calls.append(call)
            t = end
            if ok:
                return t
            if attempt >= w.retry.max_attempts or rng.random() >= w.retry.probability:
                run.ok = False
                return t
            attempt += 1
            t += _ms(w.retry.backoff_ms.sample(rng))


def plan_session(workload: Workload, seed: int, index: int, start_ms: int) -> SessionPlan:
    rng = session_rng(seed, index)
    planner = _Planner(workload, rng)
    phases: list[PhaseRun] = []
    ok = True
    t = start_ms
    for position, spec in enumerate(workload.phases):
        for rerun in range(spec.reruns + 1):
            t += _ms(workload.think_time_ms.sample(rng))
            run = planner.phase(spec, position, rerun, t)
            phases.append(run)
            t = run.end_ms
            if run.ok:
                break
        if not run.ok:
            ok = False
            if not workload.continue_after_failure:
                break
    end = t + _ms(workload.think_time_ms.sample(rng))
    gap = _ms(workload.session_gap_ms.sample(rng))
    return SessionPlan(index, start_ms, end, phases, ok, end + gap, workload.llm.context_window)
