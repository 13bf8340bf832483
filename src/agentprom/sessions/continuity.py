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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

COMPONENTS = ("phase_completion", "error_recovery", "context_resets", "context_utilization", "execution_resets")


class Counts(Protocol):
    """What the score reads; ``model.Session`` has these attributes."""

    phase_count: int
    phases_completed: int
    errors: int
    recoveries: int
    context_resets: int
    utilization_observations: int
    utilization_within: int
    execution_resets: int


@dataclass(frozen=True, slots=True)
class ContinuityInput:
    """``Counts`` as a plain record (tests, docs examples)."""

    phase_count: int = 0
    phases_completed: int = 0
    errors: int = 0
    recoveries: int = 0
    context_resets: int = 0
    utilization_observations: int = 0
    utilization_within: int = 0
    execution_resets: int = 0


class Continuity(NamedTuple):
    score: float
    components: dict[str, float]


class Scorer:
    """Scores sessions with one set of weights (normalised once, here)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        total = sum(weights[name] for name in COMPONENTS)
        if total <= 0:
            raise ValueError("the continuity weights must sum to more than 0")
        self.weights = tuple(100.0 * weights[name] / total for name in COMPONENTS)

    def __call__(self, x: Counts) -> Continuity:
        phases = x.phase_count
        per_phase = phases or 1
        errors = x.errors
        observations = x.utilization_observations
        completion = x.phases_completed / phases if phases else 1.0
        recovery = min(1.0, x.recoveries / errors) if errors else 1.0
        resets = max(0.0, 1.0 - x.context_resets / per_phase)
        utilization = x.utilization_within / observations if observations else 1.0
        execution = max(0.0, 1.0 - x.execution_resets / per_phase)
        w = self.weights
        score = w[0] * completion + w[1] * recovery + w[2] * resets + w[3] * utilization + w[4] * execution
        return Continuity(round(score, 1), {
            "phase_completion": completion,
            "error_recovery": recovery,
            "context_resets": resets,
            "context_utilization": utilization,
            "execution_resets": execution,
        })


def continuity(x: Counts, weights: Mapping[str, float]) -> Continuity:
    """Score once with the given weights (each component name -> weight, sum > 0)."""
    return Scorer(weights)(x)
