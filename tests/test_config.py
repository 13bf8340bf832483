"""Configuration: defaults, every error at once with its path, precedence of flags > env > file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentprom.config.loader import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agentprom.yaml"
    path.write_text(text)
    return path


def test_shipped_config_is_valid_and_equals_the_defaults():
    shipped = load_config(ROOT / "config" / "agentprom.yaml", env={})
    assert shipped == load_config(None, env={})
    assert shipped.server.otlp_grpc == "127.0.0.1:4317"
    assert shipped.server.otlp_http == "127.0.0.1:4318"
    assert shipped.server.metrics == "0.0.0.0:9464"
    assert shipped.server.max_request_bytes == 64 * 1024 * 1024


def test_every_problem_is_reported_with_path_value_and_rule(tmp_path):
    path = write(tmp_path, "server:\n  otlp_grpc: nowhere\n  typo_key: 1\n  max_request_bytes: -5\nlog:\n  level: loud\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = {p.path: p for p in info.value.problems}
    assert set(problems) == {"server.otlp_grpc", "server.typo_key", "server.max_request_bytes", "log.level"}
    assert problems["server.otlp_grpc"].value == "nowhere"
    assert "HOST:PORT" in problems["server.otlp_grpc"].message
    assert "unknown key" in problems["server.typo_key"].message
    assert "rule: greater_than_equal" in problems["server.max_request_bytes"].message
    text = str(info.value)
    assert "4 problem(s)" in text and "'loud'" in text


@pytest.mark.parametrize(("text", "path", "hint"), [
    ("store:\n  max_series_per_metrics: 10\n", "store.max_series_per_metrics", "max_series_per_metric"),
    ("store:\n  max_seriess_per_metric: 10\n", "store.max_seriess_per_metric", "max_series_per_metric"),
    ("sever:\n  otlp_grpc: 127.0.0.1:0\n", "sever", "server"),
    ("server:\n  otlp_grcp: 127.0.0.1:0\n", "server.otlp_grcp", "otlp_grpc"),
    ("sessions:\n  phase_spans:\n    - attribute: traceloop.span.kind\n      value: b\n      parent_knd: agent\n",
     "sessions.phase_spans.0.parent_knd", "parent_kind"),
    ("store:\n  completely_unrelated: 1\n", "store.completely_unrelated", None),
])
def test_a_misspelt_key_gets_the_nearest_valid_one(tmp_path, text, path, hint):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    (problem,) = info.value.problems
    assert problem.path == path
    assert problem.message.startswith("unknown key (not part of the schema)")
    if hint:
        assert f"; did you mean {hint}? (rule: extra_forbidden)" in problem.message
    else:
        assert "did you mean" not in problem.message


def test_check_config_prints_the_suggestion(tmp_path):
    path = write(tmp_path, "store:\n  max_series_per_metrics: 10\n")
    done = subprocess.run([sys.executable, "-m", "agentprom", "check-config", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "store.max_series_per_metrics: unknown key (not part of the schema); did you mean " \
           "max_series_per_metric?" in done.stderr


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("server: [1, 2]\n", "server"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("server:\n  otlp_grpc: [\n", "not valid YAML: line"),
        ("server:\n  metrics: 127.0.0.1:70000\n", "port must be between"),
        ("store:\n  label_allow:\n    tool: '(['\n", "not a valid regular expression"),
        ("store:\n  label_allow:\n    nolabel: 'x'\n", "not a label of any metric"),
        # bounds that keep every counter finite must themselves be finite and meaningful
        ("limits:\n  max_tokens_per_span: 0\n", "limits.max_tokens_per_span"),
        ("limits:\n  max_cost_usd_per_span: .inf\n", "limits.max_cost_usd_per_span"),
        ("sampling:\n  max_adjusted_count: 0.5\n", "sampling.max_adjusted_count"),
        ("sampling:\n  max_adjusted_count: 1e30\n", "sampling.max_adjusted_count"),
    ],
)
def test_invalid_files(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(write(tmp_path, text), env={})
    assert fragment in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "nope.yaml", env={})


def test_precedence_flags_over_env_over_file(tmp_path):
    path = write(tmp_path, "server:\n  otlp_grpc: 10.0.0.1:1\n  otlp_http: 10.0.0.1:2\n  metrics: 10.0.0.1:3\n")
    env = {"AGENTPROM_OTLP_HTTP": "127.0.0.2:2", "AGENTPROM_METRICS": "127.0.0.2:3", "AGENTPROM_LOG_LEVEL": "debug"}
    config = load_config(path, env=env, flags={"server.metrics": "127.0.0.3:3", "server.otlp_grpc": None})
    assert config.server.otlp_grpc == "10.0.0.1:1"  # file
    assert config.server.otlp_http == "127.0.0.2:2"  # env over file
    assert config.server.metrics == "127.0.0.3:3"  # flag over env
    assert config.log.level == "debug"


def test_bad_env_value_names_its_source():
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"AGENTPROM_OTLP_GRPC": "bad"})
    assert "(from AGENTPROM_OTLP_GRPC)" in str(info.value)


def test_ipv6_addresses():
    config = load_config(None, env={}, flags={"server.otlp_grpc": "[::1]:0"})
    assert config.server.otlp_grpc == "[::1]:0"
