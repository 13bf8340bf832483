"""Decoding trace export bodies: in this process, or in a pool of worker processes on other cores.

Decoding a request (protobuf walk, key filter, bounds) is about 5 of the 20-25 us a span costs the
sidecar (bench/decode.py), and it needs none of the sidecar's state. With ``server.workers`` above 1, bodies of at
least ``server.worker_min_bytes`` are decoded by that many worker processes while the event loop, the
single owner of the trace context, the series store and the sessions, keeps translating. A worker
sends its spans back as plain tuples in ``marshal`` format (about a fifth of the cost of decoding
them again; a resource's attribute map stays one object shared by its spans), and the loop turns
them back into ``Span`` objects (about 2 us a span); everything after that is the same as with one process.

What holds across workers (the receivers' contract, receiver/ingest.py):

* Admission (queue bound, memory ceiling and its reservation, fairness) is decided on the loop
  before a body is handed to a worker, and counting happens on the loop once it comes back, so an
  export is answered only after its spans are queued, as with one process; requests decoded at the
  same time may be queued in either order, as they may be answered in either order.
* A worker that dies (killed, out of memory) fails the requests it held with a retryable refusal
  (``worker_lost``: HTTP 503, gRPC UNAVAILABLE, with a retry delay): the client resends them, and
  nothing from them was counted. Another worker is started in its place, counted in
  ``agentprom_decode_worker_restarts_total``. A worker that stops answering (stopped, hung) is
  treated alike: a watchdog ends it once it has owed an answer for ``ANSWER_SECONDS`` (counted from
  when it got the request, or answered the one before), whether its callers still wait or not.
* Workers ignore SIGINT and SIGTERM: on shutdown the sidecar stops its receivers, lets the decodes
  in flight finish within the grace, and only then closes the workers' input. Workers end with the
  sidecar even when it is killed (their input pipe closes). decode_worker.py is the worker's side.
* Should no worker start (a process limit, say), decoding stays in this process and a warning
  says why.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import os
import pickle
import site
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agentprom.bounds import SpanBounds
from agentprom.receiver.decode import Batch, DecodeError, DecodeLimits, LimitExceeded, bounds_suspects, decode_traces
from agentprom.receiver.otlp_json import decode_traces_json
from agentprom.model import Span
from agentprom.receiver.decode_worker import LENGTH_BYTES

log = logging.getLogger(__name__)

PROTOBUF = "protobuf"
JSON = "json"


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
        self.bounds.check(batch, bounds_suspects)
        return batch


class WorkerLost(Exception):
    """The worker decoding a request died; the request may be resent."""


# -- the pool, on the event loop ----------------------------------------------------------------

def batch_from_worker(data: bytes) -> Batch:
    """The ``Batch`` a worker sent, or the ``DecodeError`` it met raised here (an unexpected error
    in the worker is raised as ``WorkerError``: a fault of ours, as it would be in this process)."""
    ok, first, second = marshal.loads(data)
    if ok is None:
        raise WorkerError(f"decode worker: {first}: {second}")
    if not ok:
        raise LimitExceeded(first, second) if first else DecodeError(second)
    return Batch([Span(*row) for row in first], second)


class _Unserved(Exception):
    """No worker will take this request: it is decoded in this process."""


class WorkerError(RuntimeError):
    """Decoding raised something unexpected in a worker (a bug): answered as in this process."""


#: requests written to one worker before its answers come back: enough to keep it busy, few enough
#: that a cancelled request is rarely sent, and the pipes hold little
AHEAD = 2


class _Worker:
    """One worker process, its pipes, and the requests written to it (answered in order)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.sent: deque[asyncio.Future] = deque()
        self.reader: asyncio.Task | None = None
        #: requests answered (a worker that dies before its first answer may not be able to start at all)
        self.answered = 0
        #: its output ended: it takes nothing more
        self.dead = False
        #: loop time since when it owes the answer to ``sent[0]`` (written, or the one before answered)
        self.owing_since = 0.0
        #: ended by the watchdog (not an early death: a worker stopped or starved is not a broken install)
        self.hung = False


class DecodeWorkers:
    """The worker processes (started with the sidecar, or on first use) and their replacement.

    Requests wait in one queue here and are written to a worker holding fewer than ``AHEAD``;
    each worker answers in order, so its answers are matched to its requests first in, first
    out. A request whose caller gave up is dropped from the queue unsent. The pipes are the event
    loop's own (asyncio subprocess transports; Python's child watcher waits for the exits in threads
    blocked in ``waitpid``), so nothing competes with the loop for the interpreter lock (a
    ``ProcessPoolExecutor`` adds a feeder and a result thread)."""

    #: how a worker is started (``sys.executable`` and these arguments)
    command: tuple[str, ...] = ("-m", "agentprom.receiver.decode_worker")
    #: workers in a row that end before their first answer, after which decoding stays in this process
    MAX_EARLY_DEATHS = 3
    #: ``close`` waits this long for the workers to exit before killing them
    CLOSE_SECONDS = 2.0
    #: a worker that owes an answer this long (hung: stopped, deadlocked, starved) is ended and
    #: replaced, and what it held fails as retryable; a whole maximal body decodes in well under a second
    ANSWER_SECONDS = 30.0

    def __init__(self, decoder: TraceDecoder, workers: int, min_bytes: int, restarts: Any = None,
                 running: Any = None) -> None:
        self.decoder = decoder
        self.workers = workers
        #: smaller bodies are decoded on the loop (``server.worker_min_bytes``)
        self.min_bytes = min_bytes
        #: ``agentprom_decode_worker_restarts_total`` (a Family), or None
        self._restarts = restarts
        #: ``agentprom_decode_workers`` (a gauge Family), or None
        self._running = running
        self._pool: list[_Worker] = []
        #: requests not yet written to a worker: (future, header, body)
        self._queue: deque[tuple[asyncio.Future, bytes, bytes]] = deque()
        self._starting: asyncio.Task | None = None
        #: the watchdog of hung workers (``_watch``), while there is a pool
        self._watchdog: asyncio.Task | None = None
        #: the workers could not start: decode in this process from now on
        self.failed = False
        self._closed = False
        self._early_deaths = 0
        #: a worker was started once (a later failure to start one is not taken as final at once)
        self._started = False
        self._decoder_frame = _frame(pickle.dumps(decoder, pickle.HIGHEST_PROTOCOL))

    def wants(self, body: bytes) -> bool:
        return not self.failed and not self._closed and len(body) >= self.min_bytes

    async def start(self) -> None:
        """Start the workers now (so the first large request does not wait for them). Should that
        fail, decoding stays in this process."""
        self._ensure()
        if self._starting is not None:
            await asyncio.shield(self._starting)

    def _ensure(self) -> None:
        """Start workers up to ``workers`` (in a task of its own: a caller that gives up does not stop it)."""
        if self._starting is None and len(self._pool) < self.workers and not self.failed and not self._closed:
            self._starting = asyncio.get_running_loop().create_task(self._spawn(), name="decode-workers-start")

    async def _spawn(self) -> None:
        try:
            env = dict(os.environ)
            # the worker imports this package from where this process did (a checkout, say), unless a
            # worker would find it anyway (installed: site-packages must not go before the standard library)
            package_root = str(Path(__file__).resolve().parents[2])
            if package_root not in site.getsitepackages() + [site.getusersitepackages()]:
                env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
            while len(self._pool) < self.workers and not self.failed and not self._closed:
                try:
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, *self.command, stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE, env=env, limit=READ_LIMIT)
                except OSError as exc:
                    # at the first start: decode here from now on. Later (a replacement; a process limit
                    # reached for a moment, say) it counts as an early death: tried again at the next
                    # request, until MAX_EARLY_DEATHS in a row
                    self._early_deaths += 1
                    if not self._started or self._early_deaths >= self.MAX_EARLY_DEATHS:
                        self.failed = True
                        log.warning("decode workers could not start (%s); decoding in the main process", exc)
                    else:
                        log.warning("a decode worker could not be started (%s); trying again at the next request",
                                    exc)
                    break
                self._started = True
                worker = _Worker(proc)
                self._pool.append(worker)
                assert proc.stdin is not None
                proc.stdin.write(self._decoder_frame)
                worker.reader = asyncio.get_running_loop().create_task(self._read(worker), name="decode-worker")
                if self._closed:  # closed while this one started
                    proc.stdin.close()
        finally:
            self._starting = None
            self._count_running()
        if self._pool and self._watchdog is None and not self._closed:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name="decode-workers-watchdog")
        if self.failed or not self._pool:  # none to take what waits: decoded here
            self._fail_queued()
        self._dispatch()

    async def _read(self, worker: _Worker) -> None:
        """Answer the worker's requests in order; when its output ends, it has died (or was closed)."""
        stdout = worker.proc.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(LENGTH_BYTES)
                data = await stdout.readexactly(int.from_bytes(header, "big"))
                worker.answered += 1
                worker.owing_since = asyncio.get_running_loop().time()  # for the next one, if any
                self._early_deaths = 0
                if worker.sent:
                    future = worker.sent.popleft()
                    if not future.done():
                        future.set_result(data)
                self._dispatch()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        worker.dead = True
        self._count_running()
        try:  # its exit status, for the log (a process whose output ended is exiting)
            await asyncio.wait_for(worker.proc.wait(), 2.0)
        except asyncio.TimeoutError:
            pass  # killed in _lost
        self._lost(worker)

    def _count_running(self) -> None:
        if self._running is not None:
            self._running.set((), sum(not worker.dead for worker in self._pool))

    def _lost(self, worker: _Worker) -> None:
        if worker in self._pool:
            self._pool.remove(worker)
            self._count_running()
            if not self._closed and not self.failed:
                if self._restarts is not None:
                    self._restarts.inc(())
                held = len(worker.sent)
                if not worker.hung:  # a hung worker says nothing of whether workers can start here
                    self._early_deaths = self._early_deaths + 1 if not worker.answered else 0
                if self._early_deaths >= self.MAX_EARLY_DEATHS:  # it cannot start here: stop trying
                    self.failed = True
                    log.warning("decode workers ended %d times in a row before their first answer (exit "
                                "status %s); decoding in the main process", self._early_deaths, worker.proc.returncode)
                else:
                    log.warning("a decode worker ended unexpectedly (exit status %s; %d request(s) it held are "
                                "refused as retryable); starting another", worker.proc.returncode, held)
        while worker.sent:
            future = worker.sent.popleft()
            if not future.done():
                future.set_exception(WorkerLost("a decode worker ended while decoding this request; retry later"))
        if worker.proc.returncode is None:
            try:
                worker.proc.kill()
            except ProcessLookupError:
                pass
        if self._closed or self.failed:
            self._fail_queued()
        else:
            self._ensure()

    def _dispatch(self) -> None:
        """Write queued requests to the workers that hold fewer than ``AHEAD``; drop those given up."""
        queue = self._queue
        while queue:
            ready = [w for w in self._pool if not w.dead and len(w.sent) < AHEAD]
            if not ready:
                return
            future, header, body = queue.popleft()
            if future.done():  # cancelled while it waited: never sent
                continue
            worker = min(ready, key=lambda w: len(w.sent))
            if not worker.sent:
                worker.owing_since = asyncio.get_running_loop().time()
            worker.sent.append(future)
            stdin = worker.proc.stdin
            assert stdin is not None
            try:
                stdin.write(header)
                stdin.write(body)
            except (ConnectionError, RuntimeError):
                pass  # the worker is gone: its reader fails the future

    def _fail_queued(self) -> None:
        """The workers stopped (closed, or cannot start): what waits for one is decoded here instead."""
        while self._queue:
            future = self._queue.popleft()[0]
            if not future.done():
                future.set_exception(_Unserved())

    async def decode(self, body: bytes, encoding: str) -> Batch:
        """Decode in a worker; raises ``DecodeError`` for a bad body, ``WorkerLost`` if the worker died
        (or the workers stopped) before answering."""
        if self.failed or self._closed:  # a large body: off the loop all the same
            return await self._decode_here(body, encoding)
        self._ensure()
        future = asyncio.get_running_loop().create_future()
        self._queue.append((future, len(body).to_bytes(LENGTH_BYTES, "big") + (b"P" if encoding == PROTOBUF else b"J"),
                            body))
        self._dispatch()
        try:
            data = await future
        except _Unserved:
            return await self._decode_here(body, encoding)
        return batch_from_worker(data)

    async def _watch(self) -> None:
        """End the workers that owe an answer longer than ``ANSWER_SECONDS`` (their readers then fail
        what they held, as retryable, and start others: ``_lost``). Runs while there is a pool."""
        loop = asyncio.get_running_loop()
        while self._pool and not self._closed:
            await asyncio.sleep(min(1.0, self.ANSWER_SECONDS / 4))
            now = loop.time()
            for worker in self._pool:
                if (worker.sent and not worker.dead and now - worker.owing_since > self.ANSWER_SECONDS
                        and worker.proc.returncode is None):
                    log.warning("a decode worker has not answered for %gs; ending it (the %d request(s) it held "
                                "are refused as retryable)", self.ANSWER_SECONDS, len(worker.sent))
                    worker.dead = worker.hung = True  # nothing more is written to it meanwhile
                    worker.proc.kill()
                    self._count_running()
        self._watchdog = None

    async def _decode_here(self, body: bytes, encoding: str) -> Batch:
        """No worker takes this large body: the decode thread does (never the loop)."""
        return await asyncio.get_running_loop().run_in_executor(decode_pool(), self.decoder, body, encoding)

    def pending(self) -> int:
        """Requests waiting for a worker or written to one and not answered yet."""
        return len(self._queue) + sum(len(w.sent) for w in self._pool)

    async def close(self) -> None:
        """End the workers (after the receivers stopped: nothing waits for them any more). They get
        ``CLOSE_SECONDS`` to exit on their own, then are killed; whatever they still held fails."""
        self._closed = True  # anything decoded after this is decoded in this process
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._starting is not None:
            await asyncio.shield(self._starting)
        pool = list(self._pool)
        self._fail_queued()
        for worker in pool:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()  # the worker's end of input: it exits
        waits = [asyncio.wait_for(worker.proc.wait(), self.CLOSE_SECONDS) for worker in pool]
        for worker, outcome in zip(pool, await asyncio.gather(*waits, return_exceptions=True)):
            if isinstance(outcome, asyncio.TimeoutError) and worker.proc.returncode is None:
                worker.proc.kill()
        await asyncio.gather(*(worker.reader for worker in pool if worker.reader is not None))
        self._pool.clear()
        self._count_running()

    def pids(self) -> list[int]:
        """The worker processes' ids (their memory counts against the memory limit; tests, diagnostics)."""
        return [w.proc.pid for w in self._pool if not w.dead]


#: the workers' output streams buffer this much before pausing the pipe (answers are often 100 KB+)
READ_LIMIT = 1 << 20


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(LENGTH_BYTES, "big") + payload


_decode_pool: ThreadPoolExecutor | None = None


def decode_pool() -> ThreadPoolExecutor:
    """The thread large bodies are decoded in without workers (receiver/ingest.py), or when the
    workers cannot take them: one, since decodes hold the interpreter lock mostly (more threads
    would not decode faster), and one at a time bounds their memory."""
    global _decode_pool
    if _decode_pool is None:
        _decode_pool = ThreadPoolExecutor(1, thread_name_prefix="agentprom-decode")
    return _decode_pool
