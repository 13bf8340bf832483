"""scripts/tools.d keeps every fetched tool and its data inside .tools/: the Alertmanager relocation, run for real.

Debian's Alertmanager looks for its templates in a directory compiled into the binary
(/usr/share/prometheus/alertmanager); 11-alertmanager-templates.sh relocates that path in a copy
of the binary instead of writing there. Here the script runs against a scratch TOOLS directory
holding the real unpacked package, and the relocated binary must start (templates found) in its
home and must fail to start anywhere else, which shows it no longer reads /usr/share.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, tool

SCRIPTS = sorted((ROOT / "scripts" / "tools.d").glob("*.sh"))
COMPILED_IN = b"/usr/share/prometheus/alertmanager"


def test_no_tool_script_writes_to_an_absolute_path_outside_tools():
    suspicious = []
    for script in SCRIPTS:
        heredoc = None  # inside a here-document (e.g. a Python program): data, not shell commands
        for number, line in enumerate(script.read_text().splitlines(), 1):
            if heredoc is not None:
                heredoc = None if line.strip() == heredoc else heredoc
                continue
            code = line.split("#", 1)[0]
            if re.search(r"(^|[\s=\"'])/(usr|etc|opt|var|srv|home|root)/", code):
                suspicious.append(f"{script.name}:{number}: {line.strip()}")
            opened = re.search(r"<<-?'?(\w+)'?", code)
            heredoc = opened[1] if opened else None
    assert suspicious == []


@pytest.fixture
def scratch_tools(tmp_path: Path) -> Path:
    """A TOOLS directory with the real Debian Alertmanager package unpacked, as 10-prometheus.sh leaves it."""
    real = Path(tool("prometheus-alertmanager"))
    templates = real.parent.parent / "share" / "prometheus" / "alertmanager"
    if COMPILED_IN not in real.read_bytes() or not (templates / "default.tmpl").exists():
        pytest.fail(f"{real} is not Debian's unpacked Alertmanager: run scripts/fetch-tools.sh")
    tools = tmp_path / "tools"
    (tools / "root" / "usr" / "bin").mkdir(parents=True)
    (tools / "root" / "usr" / "share" / "prometheus").mkdir(parents=True)
    shutil.copy2(real, tools / "root" / "usr" / "bin" / "prometheus-alertmanager")
    (tools / "root" / "usr" / "share" / "prometheus" / "alertmanager").symlink_to(templates)
    return tools


def start(binary: Path, cwd: Path, tmp_path: Path, name: str) -> tuple[int | None, str]:
    """Start Alertmanager; (exit code or None if it listened, its log)."""
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: r}\nreceivers: [{name: r}]\n")
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(binary), f"--config.file={config}", f"--storage.path={tmp_path / name}",
                                    "--web.listen-address=127.0.0.1:0", "--cluster.listen-address="],
                                   cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if process.poll() is not None or "failed to parse templates" in text:
                return process.poll() if process.poll() is not None else 1, text
            if 'msg="Listening on"' in text:
                return None, text
            time.sleep(0.05)  # polling a log file for a line, with a deadline
        pytest.fail("Alertmanager neither listened nor failed:\n" + log.read_text(errors="replace"))
    finally:
        process.terminate()
        process.wait(10)


def test_alertmanager_is_relocated_into_tools(scratch_tools, tmp_path):
    script = ROOT / "scripts" / "tools.d" / "11-alertmanager-templates.sh"
    done = subprocess.run(["bash", "-c", 'set -euo pipefail; log() { echo "$*" >&2; }; source "$1"', "-",
                           str(script)], env={**os.environ, "TOOLS": str(scratch_tools)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    home = scratch_tools / "alertmanager"
    binary = home / "prometheus-alertmanager"
    assert COMPILED_IN not in binary.read_bytes()
    assert (home / "alertmanager" / "default.tmpl").exists()
    assert sorted(p.name for p in home.iterdir()) == ["alertmanager", "prometheus-alertmanager"]

    code, log = start(binary, home, tmp_path, "home")
    assert code is None, log
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, log = start(binary, elsewhere, tmp_path, "elsewhere")
    assert code is not None and "alertmanager/default.tmpl" in log, log

    again = subprocess.run(["bash", "-c", 'set -euo pipefail; log() { echo "$*" >&2; }; source "$1"', "-",
                            str(script)], env={**os.environ, "TOOLS": str(scratch_tools)},
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stderr == "", "idempotent: nothing to do the second time"
