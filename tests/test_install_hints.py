"""Install hints say what is true for a checkout install: ``python3 -m pip install '.[EXTRA]'`` with a real extra.

agentprom is not published on a package index, so ``pip install 'agentprom[...]'`` fails for
a new user; every hint in the README, the docs, the code and the scripts is checked here, and
the two commands that need an optional extra are run without it to see the hint they print.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
SOURCES = [ROOT / "README.md", ROOT / "Dockerfile", *sorted((ROOT / "docs").glob("*.md")),
           *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "scripts").rglob("*.sh")),
           *sorted((ROOT / "examples").rglob("*"))]


def hints() -> list[tuple[str, str]]:
    found = []
    for path in SOURCES:
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if "pip install" in line:
                    found.append((str(path.relative_to(ROOT)), line.strip()))
    return found


def test_no_hint_installs_agentprom_from_an_index():
    wrong = [(path, line) for path, line in hints() if re.search(r"pip install\s+['\"]?agentprom\b", line)]
    assert not wrong, wrong


def test_every_checkout_extra_exists():
    named = [(path, extra) for path, line in hints() for group in re.findall(r"'\.\[([\w,-]+)\]'", line)
             for extra in group.split(",")]
    assert named, "no install hint found at all: the pattern is out of date"
    assert [(path, extra) for path, extra in named if extra not in EXTRAS] == []


def without_sdk(*argv: str) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter in which the OpenTelemetry SDK cannot be imported."""
    code = ("import sys; sys.modules['opentelemetry.sdk'] = None\n"
            "from agentprom.cli import main\nsys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("extra", ["demo", "bench"])
def test_a_missing_sdk_gets_the_checkout_hint(sidecar, extra):
    if extra == "demo":
        done = without_sdk("demo", "--endpoint", "http://" + sidecar.grpc_address)
    else:
        done = without_sdk("bench", "run", str(ROOT / "examples" / "bench" / "synthetic-endurance.yaml"),
                           "--sidecar", sidecar.http_url, "--sessions", "1", "--quiet")
    assert done.returncode == 1, done.stderr
    assert f"from the agentprom checkout, python3 -m pip install '.[{extra}]'" in done.stderr, done.stderr
