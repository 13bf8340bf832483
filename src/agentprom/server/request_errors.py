"""aiohttp's per-request error logging, made safe: malformed requests counted, logged rate-limited, no traceback.

aiohttp answers a request it cannot parse (``Content-Length: -1``, a bad
header, a line too long, not HTTP at all) with 400 itself, before any
middleware (authentication included) runs, and logs it with a full traceback at
ERROR. Every client could thus write kilobytes of log per request. Each aiohttp
listener gets a ``RequestErrorLog`` as its ``logger``: a malformed request
counts in ``agentprom_malformed_requests_total{listener}`` and is described in
at most one line per interval (with the number of lines held back), without a
traceback; other errors (our bugs) keep their traceback but are rate-limited too.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import http_exceptions

from agentprom.clock import Clock
from agentprom.log_limit import RateLimitedLog
from agentprom.metrics.series_store import Family

server_logger = logging.getLogger("aiohttp.server")


def _exception(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1]
    return None


class RequestErrorLog:
    """Passed to ``web.AppRunner(logger=...)``; aiohttp calls ``debug``/``exception``/``warning`` on it."""

    def __init__(self, listener: str, malformed: Family, clock: Clock | None = None,
                 logger: logging.Logger = server_logger) -> None:
        self.listener = listener
        self._malformed = malformed
        self._log = RateLimitedLog(logger, clock=clock)

    def _malformed_request(self, level: int, exc: BaseException, args: tuple) -> None:
        self._malformed.inc((self.listener,))
        remote = args[0] if args else None
        # the exception's own text only: aiohttp's message is the parser's, quoting at most a few bytes
        reason = " ".join(str(getattr(exc, "message", "") or type(exc).__name__).split())[:200]
        self._log.log(level, "malformed HTTP request on %s from %s answered 400: %s",
                      self.listener, remote, reason)

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kw: Any) -> None:
        exc = _exception(exc_info)
        if isinstance(exc, http_exceptions.HttpProcessingError):
            self._malformed_request(logging.WARNING, exc, args)
            return
        self._log.exception(msg, *args, exc_info=exc_info)

    def debug(self, msg: str, *args: Any, exc_info: Any = None, **kw: Any) -> None:
        exc = _exception(exc_info)
        if isinstance(exc, http_exceptions.HttpProcessingError):  # e.g. not HTTP at all (TLS to a plain port)
            self._malformed_request(logging.DEBUG, exc, args)
            return
        self._log.debug(msg, *args)

    def warning(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.warning(msg, *args)

    def error(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.error(msg, *args)

    def info(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.info(msg, *args)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging.Logger's name)
        return self._log.logger.isEnabledFor(level)
