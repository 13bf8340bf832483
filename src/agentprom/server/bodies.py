"""Read an HTTP request body within a byte limit, without buffering more than the limit.

aiohttp's own ``client_max_size`` is one limit per application; the OTLP
JSON bodies and the runtime event API take smaller ones (a parsed JSON
document costs many times its bytes), so each route reads through here.
"""

from __future__ import annotations

from aiohttp import web


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
