"""The continuity score on hand-computed examples (the same ones as docs/sessions.md)."""

from __future__ import annotations

import pytest

from agentprom.config.schema import ContinuityWeights
from agentprom.sessions.continuity import ContinuityInput, continuity

DEFAULT = ContinuityWeights().model_dump()


def test_default_weights_are_the_documented_ones():
    assert DEFAULT == {"phase_completion": 0.30, "error_recovery": 0.25, "context_resets": 0.15,
                       "context_utilization": 0.10, "execution_resets": 0.20}


def test_a_session_with_nothing_wrong_scores_100():
    result = continuity(ContinuityInput(), DEFAULT)
    assert result.score == 100.0
    assert set(result.components.values()) == {1.0}


def test_documented_example():
    # 4 phases, 3 completed; 2 errors, 1 recovered; 2 context resets; 5 context observations, 4 within
    # 100%; no execution resets
    x = ContinuityInput(phase_count=4, phases_completed=3, errors=2, recoveries=1, context_resets=2,
                        utilization_observations=5, utilization_within=4, execution_resets=0)
    result = continuity(x, DEFAULT)
    assert {name: round(v, 4) for name, v in result.components.items()} == {"phase_completion": 0.75, "error_recovery": 0.5, "context_resets": 0.5,
                                 "context_utilization": 0.8, "execution_resets": 1.0}
    # 100 * (0.30 * 0.75 + 0.25 * 0.5 + 0.15 * 0.5 + 0.10 * 0.8 + 0.20 * 1.0) = 100 * 0.705
    assert result.score == 70.5


def test_everything_wrong_scores_0_and_components_are_clamped():
    x = ContinuityInput(phase_count=2, phases_completed=0, errors=3, recoveries=0, context_resets=5,
                        utilization_observations=3, utilization_within=0, execution_resets=4)
    result = continuity(x, DEFAULT)
    assert result.score == 0.0
    assert result.components["context_resets"] == 0.0 and result.components["execution_resets"] == 0.0


def test_resets_without_phases_count_against_one_phase():
    result = continuity(ContinuityInput(context_resets=1), DEFAULT)
    assert result.components["context_resets"] == 0.0
    assert result.score == 85.0  # everything else is perfect: 100 * (1 - 0.15)


@pytest.mark.parametrize("errors, recoveries, expected", [(4, 1, 25.0), (3, 3, 100.0), (1, 2, 100.0), (3, 1, 33.3)])
def test_custom_weights_isolate_one_component(errors, recoveries, expected):
    weights = dict.fromkeys(DEFAULT, 0.0) | {"error_recovery": 1.0}
    assert continuity(ContinuityInput(errors=errors, recoveries=recoveries), weights).score == expected


def test_weights_are_normalised_by_their_sum():
    x = ContinuityInput(phase_count=3, phases_completed=1, errors=1)
    doubled = {name: 2 * w for name, w in DEFAULT.items()}
    assert continuity(x, doubled).score == continuity(x, DEFAULT).score
    # phase_completion 1/3, error_recovery 0: 100 * (0.30 / 3 + 0 + 0.15 + 0.10 + 0.20)
    assert continuity(x, DEFAULT).score == 55.0
