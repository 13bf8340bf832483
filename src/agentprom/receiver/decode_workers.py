"""Decoding trace export bodies: in this process, or in a pool of worker processes on other cores.

Parsing a request (protobuf walk, key filter, bounds) is about 40 % of what a span costs the
sidecar, and it needs none of the sidecar's state. With ``server.workers`` above 1, bodies of at
least ``server.worker_min_bytes`` are decoded by that many worker processes while the event loop, the
single owner of the trace context, the series store and the sessions, keeps translating. A worker
sends its spans back as plain tuples in ``marshal`` format (about a fifth of the cost of decoding
them again; a resource's attribute map stays one object shared by its spans), and the loop turns
them back into ``Span`` objects; everything after that is the same as with one process.

What holds across workers (the receivers' contract, receiver/ingest.py):

* Admission (queue bound, memory ceiling and its reservation, fairness) is decided on the loop
  before a body is handed to a worker, and counting happens on the loop once it comes back, so an
  export is answered only after its spans are queued, as with one process; requests decoded at the
  same time may be queued in either order, as they may be answered in either order.
* A worker that dies (killed, out of memory) fails the requests it held with a retryable refusal
  (``worker_lost``: HTTP 503, gRPC UNAVAILABLE, with a retry delay): the client resends them, and
  nothing from them was counted. The pool is replaced, and the replacement counted in
  ``agentprom_decode_worker_restarts_total``.
* Workers ignore SIGINT and SIGTERM: on shutdown the sidecar stops its receivers, lets the decodes
  in flight finish within the grace, and only then closes the pool. Workers end with the sidecar
  even when it is killed (their request pipe closes).
* Should the pool fail to start (no ``/dev/shm`` for its semaphores, a process limit), decoding
  stays in this process and a warning says why.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import fields
from operator import attrgetter
from typing import Any

from agentprom.bounds import SpanBounds
from agentprom.receiver.decode import Batch, DecodeError, DecodeLimits, LimitExceeded, decode_traces
from agentprom.receiver.otlp_json import decode_traces_json
from agentprom.model import Span

log = logging.getLogger(__name__)

PROTOBUF = "protobuf"
JSON = "json"


#: a span as plain values, in ``Span``'s field order (``Span(*row)`` rebuilds it)
_span_row = attrgetter(*(f.name for f in fields(Span)))


class TraceDecoder:
    """Body bytes to a bounds-checked ``Batch``: the one decoding path, on the loop and in workers
    (so it is plain data, sent to each worker once when the pool starts)."""

    def __init__(self, wanted_keys: frozenset[str], limits: DecodeLimits, resource_keys: frozenset[str],
                 bounds: SpanBounds) -> None:
        self.wanted_keys = wanted_keys
        self.limits = limits
        self.resource_keys = resource_keys
        self.bounds = bounds

    def __call__(self, body: bytes, encoding: str) -> Batch:
        decode = decode_traces if encoding == PROTOBUF else decode_traces_json
        batch = decode(body, self.wanted_keys, self.limits, self.resource_keys)
        self.bounds.check(batch)
        return batch


class WorkerLost(Exception):
    """The worker decoding a request died; the request may be resent."""


# -- in each worker process ---------------------------------------------------------------------

_decoder: TraceDecoder | None = None


def _start_worker(decoder: TraceDecoder) -> None:
    global _decoder
    _decoder = decoder
    # the sidecar decides when workers end (after the drain); a terminal's Ctrl-C or a SIGTERM sent
    # to the whole process group must not fail the decodes in flight
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _decode_in_worker(body: bytes, encoding: str) -> bytes:
    assert _decoder is not None
    try:
        batch = _decoder(body, encoding)
    except LimitExceeded as exc:
        return marshal.dumps((False, exc.reason, str(exc)))
    except DecodeError as exc:
        return marshal.dumps((False, "", str(exc)))
    return marshal.dumps((True, list(map(_span_row, batch.spans)), batch.rejected), 4)


def _ready() -> int:
    return os.getpid()


# -- on the event loop --------------------------------------------------------------------------

def batch_from_worker(data: bytes) -> Batch:
    """The ``Batch`` a worker sent, or the ``DecodeError`` it met raised here."""
    ok, first, second = marshal.loads(data)
    if not ok:
        raise LimitExceeded(first, second) if first else DecodeError(second)
    return Batch([Span(*row) for row in first], second)


class DecodeWorkers:
    """The pool (started with the sidecar, or on first use) and its replacement when a worker dies."""

    def __init__(self, decoder: TraceDecoder, workers: int, min_bytes: int, restarts: Any = None) -> None:
        self.decoder = decoder
        self.workers = workers
        #: smaller bodies are decoded on the loop (``server.worker_min_bytes``)
        self.min_bytes = min_bytes
        #: ``agentprom_decode_worker_restarts_total`` (a Family), or None
        self._restarts = restarts
        self._pool: ProcessPoolExecutor | None = None
        #: the pool could not start: decode in this process from now on
        self.failed = False
        self._closed = False

    def wants(self, body: bytes) -> bool:
        return not self.failed and len(body) >= self.min_bytes

    def _ensure(self) -> ProcessPoolExecutor | None:
        if self._pool is None and not self.failed and not self._closed:
            try:
                self._pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("spawn"),
                                                 initializer=_start_worker, initargs=(self.decoder,))
            except (OSError, ImportError, NotImplementedError) as exc:
                self._fail(exc)
        return self._pool

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        log.warning("decode workers could not start (%s); decoding in the main process", exc)

    async def start(self) -> None:
        """Start the workers now and wait until the pool answers (so the first large request does
        not wait for a spawn). Should that fail, decoding stays in this process."""
        pool = self._ensure()
        if pool is not None:
            loop = asyncio.get_running_loop()
            try:
                await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(self.workers)))
            except (OSError, BrokenProcessPool) as exc:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                self._fail(exc)

    async def decode(self, body: bytes, encoding: str) -> Batch:
        """Decode in a worker; raises ``DecodeError`` for a bad body, ``WorkerLost`` if the worker died."""
        pool = self._ensure()
        if pool is None:
            return self.decoder(body, encoding)
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(pool, _decode_in_worker, body, encoding)
        except OSError as exc:  # a worker process could not be started
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                self._fail(exc)
            return self.decoder(body, encoding)
        except BrokenProcessPool:
            self._replace(pool)
            raise WorkerLost("a decode worker ended while decoding this request; retry later") from None
        return batch_from_worker(data)

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:  # the first of the requests that saw it break replaces it
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            if self._restarts is not None:
                self._restarts.inc(())
            log.warning("a decode worker ended unexpectedly; its requests were refused as retryable, "
                        "and the pool is restarted")

    async def close(self) -> None:
        """End the workers once the decodes in flight have finished (after the receivers stopped)."""
        self._closed = True  # anything decoded after this is decoded here
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and diagnostics)."""
        pool = self._pool
        return list(pool._processes) if pool is not None and pool._processes else []
