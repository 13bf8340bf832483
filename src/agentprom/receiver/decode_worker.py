"""One decode worker process: reads export bodies from its stdin, writes their spans to its stdout.

Started by ``DecodeWorkers`` (decode_workers.py) as ``python -m agentprom.receiver.decode_worker``.
The protocol is frames on the two pipes, each an 8-byte big-endian length and that many bytes:

* in: first the pickled ``TraceDecoder`` (the sidecar's own object: same keys, limits, bounds),
  then one frame per request, its first byte the encoding (``P`` protobuf, ``J`` JSON), the rest the body;
* out: one frame per request, in order: the ``marshal``-ed outcome (``_decode_in_worker``).

The worker ends when its stdin closes (the sidecar closed the pool, or died). It ignores SIGINT and
SIGTERM: the sidecar ends it after its drain, so a signal sent to the whole process group cannot
fail the decodes in flight. Anything written to stdout by mistake would corrupt the protocol, so
file descriptor 1 is pointed at stderr and the frames go to a private copy of the pipe.
"""

from __future__ import annotations

import marshal
import os
import pickle
import signal
import sys
from dataclasses import fields
from operator import attrgetter
from typing import BinaryIO

from agentprom.model import Span
from agentprom.receiver.decode import DecodeError, LimitExceeded

ENCODINGS = {b"P"[0]: "protobuf", b"J"[0]: "json"}
LENGTH_BYTES = 8


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = _read_exactly(stream, LENGTH_BYTES)
    if header is None:
        return None
    return _read_exactly(stream, int.from_bytes(header, "big"))


#: a span as plain values, in ``Span``'s field order (``Span(*row)`` rebuilds it)
_span_row = attrgetter(*(f.name for f in fields(Span)))


def span_rows(spans: list[Span]) -> list[tuple]:
    """Spans as plain values: what a worker sends, ``Span(*row)`` rebuilds each."""
    return list(map(_span_row, spans))


def _decode_in_worker(decoder, body: bytes, encoding: str) -> bytes:
    try:
        batch = decoder(body, encoding)
    except LimitExceeded as exc:
        return marshal.dumps((False, exc.reason, str(exc)))
    except DecodeError as exc:
        return marshal.dumps((False, "", str(exc)))
    except Exception as exc:  # a bug: the sidecar answers it as it would in its own process
        return marshal.dumps((None, type(exc).__name__, str(exc)[:512]))
    return marshal.dumps((True, span_rows(batch.spans), batch.rejected), 4)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr, never into a frame
    stdin = sys.stdin.buffer
    first = _read_frame(stdin)
    if first is None:
        return 0
    decoder = pickle.loads(first)
    while True:
        header = _read_exactly(stdin, LENGTH_BYTES + 1)
        if header is None:
            return 0  # the sidecar closed the pool, or is gone
        body = _read_exactly(stdin, int.from_bytes(header[:LENGTH_BYTES], "big"))
        if body is None:
            return 0
        result = _decode_in_worker(decoder, body, ENCODINGS[header[LENGTH_BYTES]])
        out.write(len(result).to_bytes(LENGTH_BYTES, "big"))
        out.write(result)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
