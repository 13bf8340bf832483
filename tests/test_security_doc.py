"""docs/security.md's table of limits stays true: every config key exists with the stated default, every test exists."""

from __future__ import annotations

import re
from pathlib import Path

from agentprom.config.schema import Config

ROOT = Path(__file__).resolve().parent.parent


def limit_rows() -> list[list[str]]:
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("## Every limit, with its default", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| limit")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows if not set(row) <= set("|- ")]


def test_every_config_key_in_the_limits_table_exists():
    config = Config()
    keys = [key for row in limit_rows() for key in re.findall(r"`([a-z_]+\.[a-z_.]+)`", row[1])]
    assert len(keys) > 30
    for key in keys:
        if key.startswith("sessions.") and key.count(".") == 0:
            continue
        node = config
        for part in key.split("."):
            assert hasattr(node, part), f"docs/security.md names {key}, which the config schema does not have"
            node = getattr(node, part)


def test_every_test_named_in_the_limits_table_exists():
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    files = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    for row in limit_rows():
        for name in re.findall(r"`(test_[a-z0-9_]+(?:\.py)?)`", row[-1]):
            if name.endswith(".py"):
                assert name in files, name
            else:
                assert f"def {name}(" in sources, f"docs/security.md names {name}, which no test defines"
