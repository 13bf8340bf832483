"""Session and JSONL configuration: documented defaults, validation with located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentprom.config.loader import ConfigError, load_config, validate
from agentprom.config.schema import Config

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_spells_out_the_defaults():
    shipped = load_config(ROOT / "config" / "agentprom.yaml", env={})
    assert shipped.sessions == Config().sessions
    assert shipped.jsonl == Config().jsonl


def test_bad_session_and_jsonl_settings_are_all_reported():
    with pytest.raises(ConfigError) as info:
        validate({
            "sessions": {
                "inactivity_timeout_seconds": 0,
                "max_open_sessions": 0,
                "continuity_weights": dict.fromkeys(
                    ("phase_completion", "error_recovery", "context_resets", "context_utilization",
                     "execution_resets"), 0),
                "phase_spans": [{"attribute": "some.attribute.nobody.decodes", "value": "x"},
                                {"attribute": "traceloop.span.kind", "value": "task", "parent_kind": "tool"}],
            },
            "jsonl": {"enabled": "sometimes", "rotate_bytes": 10, "colour": "blue"},
        })
    paths = {problem.path for problem in info.value.problems}
    assert paths == {
        "sessions.inactivity_timeout_seconds",
        "sessions.max_open_sessions",
        "sessions.continuity_weights",
        "sessions.phase_spans.0.attribute",
        "sessions.phase_spans.1.parent_kind",
        "jsonl.enabled",
        "jsonl.rotate_bytes",
        "jsonl.colour",
    }
    assert "not an attribute the decoder keeps" in str(info.value)


def test_own_attributes_may_define_phase_spans():
    config = validate({"sessions": {"phase_spans": [{"attribute": "agent.step.kind", "value": "phase"}]}})
    assert config.sessions.phase_spans[0].attribute == "agent.step.kind"
