"""Whether to use a compiled part: its extension module when built, unless the Python paths are asked for.

The compiled parts are twins of Python code, each making exactly what its twin makes
(receiver/_wire.pyx of decode.py's decoder and of the first look of bounds.py's span bounds,
conventions/_classify.pyx of classify.py's batch classification, context/_batch.pyx of the trace
context's batch path in batch.py, sessions/_spans.pyx of the session tracker's span loop and of
adding a call to its session). The install builds them where a C compiler is found;
``AGENTPROM_PURE_PYTHON=1`` in the environment, read when the twin's module is imported, keeps the
Python paths.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from types import ModuleType

log = logging.getLogger(__name__)


def extension(name: str, configure: Callable[[ModuleType], object]) -> ModuleType | None:
    """The compiled module ``name``, once ``configure(module)`` has handed it what it needs, when it
    is built and ``AGENTPROM_PURE_PYTHON`` is unset (or 0); else None. A module that refuses what it
    is handed (a class whose fields it cannot write in place, a schema it does not follow) leaves the
    work to the Python path, logged: never an import that fails."""
    if os.environ.get("AGENTPROM_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    try:
        configure(module)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the Python twin does the same work
        log.warning("%s is built but not used (the Python path is): %s: %s", name, type(exc).__name__, exc)
        return None
    return module
