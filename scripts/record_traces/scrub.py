"""Replace machine-specific paths (virtualenv, Python install, work tree, home) in a written fixture.

Exception events carry ``exception.stacktrace`` with absolute file paths; a fixture must not
depend on (or reveal) the machine it was recorded on. Used by the recorders after
``harness.write_fixture``; kept apart from ``harness.py`` so recorders on other branches can
adopt it without touching the harness.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from pathlib import Path

from harness import ROOT

_LEFTOVER = re.compile(r"(/tmp/|/work/|/home/|/root/|/usr/|/opt/)")


def _replacements() -> list[tuple[str, str]]:
    pairs = [
        (sysconfig.get_paths()["purelib"], "<site-packages>"),
        (sysconfig.get_paths()["platlib"], "<site-packages>"),
        (sys.prefix, "<venv>"),
        (sys.base_prefix, "<python>"),
        (sysconfig.get_paths()["stdlib"], "<python-stdlib>"),
        (str(ROOT), "<repo>"),
        (os.path.expanduser("~"), "<home>"),
    ]
    # longest first, so a path is replaced by its most specific placeholder
    return sorted({(a, b) for a, b in pairs if a and a != "/"}, key=lambda p: -len(p[0]))


def scrub_fixture(folder: Path, names: tuple[str, ...] = ("trace.json", "recorded.json", "tree.txt")) -> None:
    """Rewrite the files of ``folder`` with placeholders for local paths; fail if any path is left."""
    for name in names:
        path = folder / name
        if not path.exists():
            continue
        text = path.read_text()
        for local, placeholder in _replacements():
            text = text.replace(local, placeholder)
        left = _LEFTOVER.search(text)
        if left:
            start = max(0, left.start() - 60)
            raise SystemExit(f"{path}: machine-specific path left: ...{text[start:left.end() + 60]}...")
        path.write_text(text)
