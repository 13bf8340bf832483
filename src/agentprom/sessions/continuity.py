"""The continuity score (0-100) of a runtime session: how smoothly it ran from start to end.

Five components, each a number in [0, 1] where 1 is best, combined as a
weighted mean (weights from ``sessions.continuity_weights``, normalised by
their sum) and scaled to 0-100, rounded to one decimal:

=====================  ==================================================  ================
component              value                                               when undefined
=====================  ==================================================  ================
phase_completion       completed phases / phases                           1 (no phases)
error_recovery         min(1, recoveries / errors)                         1 (no errors)
context_resets         max(0, 1 - context resets / max(phases, 1))         -
context_utilization    observations with used/available <= 1 / all         1 (none)
execution_resets       max(0, 1 - execution resets / max(phases, 1))       -
=====================  ==================================================  ================

``context_resets`` and ``context_utilization`` together are the issue's
"context preservation"; ``execution_resets`` is "absence of execution resets"
(a phase run again after it ended, or a session started again while open).
docs/sessions.md carries the same table and worked examples.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContinuityInput:
    phases: int = 0
    phases_completed: int = 0
    errors: int = 0
    recoveries: int = 0
    context_resets: int = 0
    utilization_observations: int = 0
    utilization_within: int = 0
    execution_resets: int = 0


@dataclass(frozen=True, slots=True)
class Continuity:
    score: float
    components: dict[str, float]


def components(x: ContinuityInput) -> dict[str, float]:
    per_phase = max(x.phases, 1)
    return {
        "phase_completion": x.phases_completed / x.phases if x.phases else 1.0,
        "error_recovery": min(1.0, x.recoveries / x.errors) if x.errors else 1.0,
        "context_resets": max(0.0, 1.0 - x.context_resets / per_phase),
        "context_utilization": (
            x.utilization_within / x.utilization_observations if x.utilization_observations else 1.0
        ),
        "execution_resets": max(0.0, 1.0 - x.execution_resets / per_phase),
    }


def continuity(x: ContinuityInput, weights: dict[str, float]) -> Continuity:
    """Score a session; ``weights`` maps each component name to its weight (sum > 0)."""
    parts = components(x)
    total = sum(weights[name] for name in parts)
    score = 100.0 * sum(weights[name] * value for name, value in parts.items()) / total
    return Continuity(round(score, 1), {name: round(value, 4) for name, value in parts.items()})
