"""A short run of the atheris (libFuzzer) harness over each decoder: scripts/fuzz_decoders.py.

The harness is a fuzzing entry point for long runs by hand; here each target runs a few thousand
inputs from its seed, so a decoder change that lets an unexpected exception escape on simple
mutations fails the suite, and the harness itself keeps working.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("traces-protobuf", "traces-json", "metrics-protobuf", "metrics-json", "logs-protobuf", "logs-json")

if platform.system() != "Linux" or platform.machine() != "x86_64":
    pytest.skip("atheris ships wheels for Linux x86-64 only (pyproject.toml)", allow_module_level=True)


def fuzz(target: str, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz_decoders.py"), target, *flags,
         f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus")],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_short_fuzzing_run_finds_nothing(target, tmp_path):
    (tmp_path / "corpus").mkdir()
    done = fuzz(target, tmp_path, "-runs=3000", "-seed=1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Done 3000 runs" in done.stderr
    assert not list(tmp_path.glob("crash-*"))
    assert any((tmp_path / "corpus").iterdir())  # coverage grew from the seed


PLANTED = """
import runpy, sys
harness = runpy.run_path(sys.argv[1])  # not as __main__: main() is called below
real, seed = harness["TARGETS"]["traces-json"]

def planted(data):
    real(data)
    data.decode("utf-8")  # the seed is ASCII; the first mutation to a non-UTF-8 byte "crashes"

harness["TARGETS"]["planted"] = (planted, seed)
harness["main"]([sys.argv[1], "planted", *sys.argv[2:]])
"""


def test_a_finding_fails_the_run(tmp_path):
    """An exception other than DecodeError is reported: non-zero exit, traceback, a crash file."""
    done = subprocess.run(
        [sys.executable, "-c", PLANTED, str(ROOT / "scripts" / "fuzz_decoders.py"), "-runs=20000", "-seed=1",
         f"-artifact_prefix={tmp_path}/"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0
    assert "Uncaught Python exception" in done.stdout and "UnicodeDecodeError" in done.stdout  # atheris prints there
    assert list(tmp_path.glob("crash-*"))
