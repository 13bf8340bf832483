"""Close HTTP clients that are too slow to send their request (slowloris).

Two limits, both on the OTLP/HTTP listener (the first on every HTTP listener):

* Headers: aiohttp arms its keep-alive timer when a connection opens and
  closes the connection when it fires while no complete request head has
  arrived; trickling header bytes does not re-arm it. So
  ``keepalive_timeout = http_header_timeout_seconds`` (see ``runner_options``)
  is a header timeout, and also closes idle keep-alive connections.
* Body: ``request_deadline`` gives each request's handler (reading the body and
  answering) a deadline; past it the client gets the ``on_timeout`` answer (408)
  and the connection is closed rather than lingering for the rest of the body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)


def runner_options(header_timeout: float) -> dict[str, float]:
    """Keyword arguments for ``web.AppRunner`` that bound how long request heads may take."""
    # lingering_time: after an early answer, read (and drop) the rest of a body for at most this long
    return {"keepalive_timeout": header_timeout, "lingering_time": min(header_timeout, 2.0)}


def request_deadline(seconds: float, on_timeout: Callable[[web.Request], web.StreamResponse]) -> Callable:
    """An aiohttp middleware: a handler not done within ``seconds`` is cut off with ``on_timeout``."""

    @web.middleware
    async def deadline(request: web.Request, handler):
        try:
            async with asyncio.timeout(seconds):
                return await handler(request)
        except TimeoutError:
            log.debug("request to %s not received within %.1fs; closing the connection", request.path, seconds)
            response = on_timeout(request)
            response.force_close()
            try:
                await response.prepare(request)
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                pass
            if request.transport is not None:
                request.transport.close()  # do not wait for the rest of a trickled body
            return response

    return deadline
