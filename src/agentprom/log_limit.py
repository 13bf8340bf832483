"""Rate-limited logging, for lines a remote client can cause (one per request, span or name).

A client that can make us log once per request can fill a disk and drown the
lines that matter. ``RateLimitedLog`` writes a line at most once per interval
for each message template; the lines it holds back are counted and the next
line written says how many there were. Time comes from an injected clock.
"""

from __future__ import annotations

import logging
from typing import Any

from agentprom.clock import Clock, SystemClock

#: Default interval between two lines of the same template, in seconds.
INTERVAL_SECONDS = 10.0

#: Templates remembered at most (they are literals in our code; the bound only guards mistakes).
_MAX_TEMPLATES = 256


class RateLimitedLog:
    """A logger facade: ``warning``/``error``/``exception``/``info``/``debug`` write at most
    one line per ``interval`` per message template, then report the suppressed count."""

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL_SECONDS,
                 clock: Clock | None = None) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock or SystemClock()
        #: template -> [monotonic time of the last line written, lines suppressed since]
        self._state: dict[str, list] = {}

    def log(self, level: int, msg: str, *args: Any, exc_info: Any = None) -> bool:
        """Write the line unless one of this template was written within the interval; True if written."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self.clock.monotonic()
        state = self._state.get(msg)
        if state is not None and now - state[0] < self.interval:
            state[1] += 1
            return False
        suppressed = state[1] if state is not None else 0
        if state is None and len(self._state) >= _MAX_TEMPLATES:
            self._state.clear()
        self._state[msg] = [now, 0]
        if suppressed:
            msg += " (%d more like this in the last %.0fs not logged)"
            args += (suppressed, self.interval)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def debug(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.DEBUG, msg, *args, **kw)

    def info(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.INFO, msg, *args, **kw)

    def warning(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.WARNING, msg, *args, **kw)

    def error(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.ERROR, msg, *args, **kw)

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kw: Any) -> bool:
        """An error with its traceback (for bugs; a remote client's bad input never gets one)."""
        return self.log(logging.ERROR, msg, *args, exc_info=exc_info, **kw)
