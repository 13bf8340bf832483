"""Decode worker processes (server.workers): the same batches as decoding in-process, a dead worker's
requests refused as retryable and the pool replaced, and decoding in-process when no pool can start."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from agentprom.bounds import AmountLimits, SpanBounds
from agentprom.config.loader import validate
from agentprom.config.network_schema import MAX_DEFAULT_WORKERS, default_workers, usable_cores
from agentprom.conventions.profile import WANTED_KEYS, WANTED_RESOURCE_KEYS
from agentprom.metrics.series_store import SeriesStore
from agentprom.receiver import decode_workers
from agentprom.receiver.decode import DecodeError, DecodeLimits, LimitExceeded
from agentprom.receiver.decode_workers import DecodeWorkers, TraceDecoder
from agentprom.receiver.pipeline import private_bytes, resident_bytes
from bench.workload import request_bytes
from tests.conftest import Sidecar
from tests.test_decode import JSON_DOC, pb_request
from tests.test_receiver_errors import PROTOBUF, good_protobuf, llm_calls

MIB = 1024 * 1024


def decoder(max_spans: int = 50_000) -> TraceDecoder:
    return TraceDecoder(WANTED_KEYS, DecodeLimits(max_spans, 10_000, 4096), WANTED_RESOURCE_KEYS,
                        SpanBounds(AmountLimits.defaults()))


def with_events_and_rejections() -> bytes:
    """A request with what a span can carry besides attributes: an exception, agentprom's own
    events, an evaluation event, a first-token event, and a span rejected for its ids."""
    request = pb_request()
    spans = request.resource_spans[0].scope_spans[0].spans
    first = spans[0]
    for name, attrs in (("exception", {"exception.type": "ValueError"}), ("agent.checkpoint", {"agent.checkpoint.id": "c1"}),
                        ("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "relevance",
                                                      "gen_ai.evaluation.score.value": 0.5}),
                        ("First Token Stream Event", {})):
        event = first.events.add(name=name, time_unix_nano=first.start_time_unix_nano + 1)
        for key, value in attrs.items():
            kv = event.attributes.add(key=key)
            if isinstance(value, float):
                kv.value.double_value = value
            else:
                kv.value.string_value = value
    bad = spans.add()
    bad.CopyFrom(first)
    bad.trace_id = b"\0" * 16
    return request.SerializeToString()


def run(coro):
    return asyncio.run(coro)


async def decode_all(workers: DecodeWorkers, bodies: list[tuple[bytes, str]]) -> list:
    try:
        return [await workers.decode(body, encoding) for body, encoding in bodies]
    finally:
        await workers.close()


def test_workers_decode_exactly_what_the_main_process_decodes():
    bodies = [(request_bytes("-w"), "protobuf"), (with_events_and_rejections(), "protobuf"),
              (json.dumps(JSON_DOC).encode(), "json")]
    local = decoder()
    workers = DecodeWorkers(local, 2, 0)
    remote = run(decode_all(workers, bodies))
    for (body, encoding), got in zip(bodies, remote):
        expected = local(body, encoding)
        assert got.spans == expected.spans and got.rejected == expected.rejected
        assert got.spans, encoding
        # the decoders share one resource map among a resource's spans; so does the worker's copy
        assert len({id(span.resource) for span in got.spans}) == len({id(span.resource) for span in expected.spans})
    assert remote[1].rejected == {"invalid_trace_id": 1}
    assert remote[1].spans[0].events and remote[1].spans[0].evaluations and remote[1].spans[0].exception_type


def test_a_bad_body_raises_in_the_caller_as_it_would_in_process():
    workers = DecodeWorkers(decoder(max_spans=10), 2, 0)

    async def attempts():
        try:
            with pytest.raises(DecodeError) as bad:
                await workers.decode(good_protobuf()[:-4], "protobuf")
            assert not isinstance(bad.value, LimitExceeded)
            with pytest.raises(LimitExceeded) as many:
                await workers.decode(request_bytes("-x"), "protobuf")  # 512 spans, 10 allowed
            assert many.value.reason == "too_many_spans"
            return await workers.decode(good_protobuf(), "protobuf")  # the workers are fine after both
        finally:
            await workers.close()

    assert len(run(attempts()).spans) == 1


def test_a_pool_that_cannot_start_leaves_decoding_in_this_process(monkeypatch, caplog):
    async def refuse(*args, **kwargs):
        raise OSError("no more processes here")

    monkeypatch.setattr(decode_workers.asyncio, "create_subprocess_exec", refuse)
    workers = DecodeWorkers(decoder(), 2, 0)
    with caplog.at_level(logging.WARNING, logger="agentprom.receiver.decode_workers"):
        batch = run(decode_all(workers, [(good_protobuf(), "protobuf")]))[0]
    assert len(batch.spans) == 1 and workers.failed and not workers.wants(good_protobuf())
    assert "decoding in the main process" in caplog.text and "no more processes here" in caplog.text


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("workers", [2], indirect=True)
def test_a_dead_worker_fails_what_it_held_retryably_and_is_replaced(sidecar):
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    workers = sidecar.app.ingest.workers
    first, second = workers.pids()
    assert sidecar.value("agentprom_decode_workers") == 2
    # an idle worker dies: nothing was waiting for it, and the next request finds a new one
    os.kill(second, signal.SIGKILL)
    wait_until(lambda: sidecar.value("agentprom_decode_worker_restarts_total") == 1 and len(workers.pids()) == 2)
    assert sidecar.value("agentprom_decode_workers") == 2
    replacement = next(pid for pid in workers.pids() if pid != first)
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    # a worker dies holding a request (the workers are stopped, so that it holds it until killed)
    for pid in workers.pids():
        os.kill(pid, signal.SIGSTOP)
    answers: list = []
    poster = threading.Thread(target=lambda: answers.append(sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)))
    poster.start()
    wait_until(lambda: sidecar.call(lambda: workers.pending()) == 1)
    held_by = [w.proc.pid for w in workers._pool if w.sent]  # noqa: SLF001
    os.kill(held_by[0], signal.SIGKILL)
    poster.join(20)
    for pid in workers.pids():
        os.kill(pid, signal.SIGCONT)
    status, headers, _payload = answers[0]
    assert status == 503 and headers["Retry-After"] == "1"
    assert sidecar.value("agentprom_requests_refused_total", transport="http", reason="worker_lost") == 1
    assert sidecar.value("agentprom_decode_worker_restarts_total") == 2
    # the client's retry is decoded by a worker alive; the refused request was never counted
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    assert llm_calls(sidecar) == 3
    assert held_by[0] not in workers.pids() and len(workers.pids()) == 2
    assert sidecar.value("agentprom_decode_workers") == 2
    assert (set(workers.pids()) - {held_by[0]}) & ({first, replacement} - set(held_by))  # the other one was left alone


def ignored_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("SigIgn:")).split()[1], 16)


@pytest.mark.parametrize("workers", [2], indirect=True)
def test_workers_ignore_a_sigterm_sent_to_the_process_group(sidecar):
    """A SIGTERM for the whole group (a terminal, some supervisors) must not fail decodes in flight:
    the sidecar ends its workers itself, after the drain."""
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    pids = sidecar.app.ingest.workers.pids()
    both = 1 << (signal.SIGTERM - 1) | 1 << (signal.SIGINT - 1)
    for pid in pids:  # once each worker has started (the pool starts them one after the other)
        wait_until(lambda: ignored_signals(pid) & both == both)
        os.kill(pid, signal.SIGTERM)
    assert sidecar.app.ingest.workers.pids() == pids
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    assert sidecar.value("agentprom_decode_worker_restarts_total") == 0


def test_stop_ends_the_workers():
    sidecar = Sidecar(workers=2).start()
    assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
    pids = sidecar.app.ingest.workers.pids()
    assert pids
    sidecar.stop()
    for pid in pids:
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2])


def test_the_memory_limit_counts_the_decode_workers():
    """A ceiling this process alone is under, but not with its workers, refuses exports as retryable."""
    sidecar = Sidecar(workers=2).start()
    try:
        assert sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)[0] == 200
        app = sidecar.app
        workers = sum(private_bytes(pid) for pid in app.ingest.workers.pids())
        assert app.helper_pids() == app.ingest.workers.pids() and workers >= 2 * 5 * MIB
        limit = resident_bytes() + workers // 2
        app.pipeline.limits = dataclasses.replace(app.pipeline.limits, memory_limit_bytes=limit)
        assert resident_bytes() < limit  # this process alone passes
        status, headers, _payload = sidecar.post("/v1/traces", good_protobuf(), PROTOBUF)
        assert status == 503 and headers["Retry-After"] == "1"
        assert sidecar.value("agentprom_requests_refused_total", transport="http", reason="memory_limit") == 1
        assert llm_calls(sidecar) == 1
    finally:
        sidecar.stop()


def test_workers_are_off_by_default_and_auto_takes_one_fewer_than_the_usable_cores():
    assert validate({}).server.decode_workers == 1
    assert validate({"server": {"workers": "auto"}}).server.decode_workers == default_workers(usable_cores())
    assert [default_workers(cores) for cores in (1, 2, 3, 4, 5, 64)] == [1, 1, 2, 3, MAX_DEFAULT_WORKERS, MAX_DEFAULT_WORKERS]
    assert validate({"server": {"workers": 1}}).server.decode_workers == 1
    with pytest.raises(Exception, match="workers"):
        validate({"server": {"workers": 0}})


@pytest.mark.parametrize("files, cores", [
    ({"cpu.max": "50000 100000\n"}, 1),  # a Kubernetes CPU limit of 500m
    ({"cpu.max": "max 100000\n"}, None),  # no limit: the affinity decides
    ({"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),  # cgroup v1, 1.5 cores
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_usable_cores_follow_a_cpu_quota(tmp_path, monkeypatch, files, cores):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert usable_cores(str(tmp_path)) == (cores or 8)


def test_workers_that_cannot_start_leave_decoding_in_this_process(monkeypatch, caplog):
    """A worker that ends before its first answer, again and again (a broken install, say), must
    not refuse every large request forever: after a few, decoding stays in this process."""
    monkeypatch.setattr(DecodeWorkers, "command", ("-c", "import sys; sys.exit(3)"))
    store = SeriesStore()
    workers = DecodeWorkers(decoder(), 1 + DecodeWorkers.MAX_EARLY_DEATHS, 0, None,
                            store.families["agentprom_decode_workers"])

    async def attempts():
        outcomes = []
        try:
            for _ in range(10):
                try:
                    outcomes.append(len((await workers.decode(good_protobuf(), "protobuf")).spans))
                except decode_workers.WorkerLost:
                    outcomes.append("lost")
                if workers.failed:
                    outcomes.append(len((await workers.decode(good_protobuf(), "protobuf")).spans))
                    break
        finally:
            await workers.close()
        return outcomes

    with caplog.at_level(logging.WARNING, logger="agentprom.receiver.decode_workers"):
        outcomes = run(attempts())
    assert workers.failed and outcomes[-1] == 1 and set(outcomes[:-1]) <= {"lost"}
    running = store["agentprom_decode_workers"].series
    assert () in running and running[()].value == 0  # exported, and none runs: alertable
    assert "before their first answer (exit status 3); decoding in the main process" in caplog.text


class Failing(TraceDecoder):
    """A decoder with a bug that one body triggers."""

    def __call__(self, body: bytes, encoding: str):
        if body == b"boom":
            raise KeyError("a bug")
        return super().__call__(body, encoding)


def test_a_bug_in_a_worker_is_answered_as_in_process_and_the_worker_goes_on(monkeypatch):
    # the worker unpickles ``Failing`` from this module: let it import it as pytest did
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, here + "/..", os.environ.get("PYTHONPATH")) if p))
    base = decoder()
    workers = DecodeWorkers(Failing(base.wanted_keys, base.limits, base.resource_keys, base.bounds), 1, 0)

    async def attempts():
        try:
            with pytest.raises(decode_workers.WorkerError, match="KeyError"):
                await workers.decode(b"boom", "protobuf")
            pids = workers.pids()
            batch = await workers.decode(good_protobuf(), "protobuf")
            return pids, workers.pids(), batch
        finally:
            await workers.close()

    before, after, batch = run(attempts())
    assert before == after and len(batch.spans) == 1  # same worker: it did not die of it


def test_a_request_given_up_while_it_waits_is_never_sent():
    workers = DecodeWorkers(decoder(), 1, 0)

    async def attempts():
        try:
            await workers.start()
            (pid,) = workers.pids()
            os.kill(pid, signal.SIGSTOP)  # the worker holds what it was sent
            held = [asyncio.ensure_future(workers.decode(request_bytes(f"-{i}"), "protobuf"))
                    for i in range(decode_workers.AHEAD + 3)]
            await asyncio.sleep(0)
            assert workers.pending() == len(held)
            for task in held[decode_workers.AHEAD:]:
                task.cancel()  # the clients gave up
            os.kill(pid, signal.SIGCONT)
            answered = await asyncio.gather(*held[:decode_workers.AHEAD])
            after = await workers.decode(good_protobuf(), "protobuf")
            return answered, after, workers._pool[0].answered  # noqa: SLF001
        finally:
            await workers.close()

    answered, after, count = run(attempts())
    assert [len(b.spans) for b in answered] == [512] * decode_workers.AHEAD and len(after.spans) == 1
    assert count == decode_workers.AHEAD + 1  # the three given up were never sent to the worker


def test_close_ends_stuck_workers_fails_what_they_held_and_decodes_the_rest_here():
    workers = DecodeWorkers(decoder(), 1, 0)
    workers.CLOSE_SECONDS = 0.5

    async def attempts():
        await workers.start()
        (pid,) = workers.pids()
        os.kill(pid, signal.SIGSTOP)  # hung
        calls = [asyncio.ensure_future(workers.decode(good_protobuf(), "protobuf"))
                 for _ in range(decode_workers.AHEAD + 1)]  # the last one waits in the queue
        await asyncio.sleep(0)
        await workers.close()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        return pid, outcomes

    pid, outcomes = run(attempts())
    *held, queued = outcomes
    assert all(isinstance(o, decode_workers.WorkerLost) for o in held) and len(queued.spans) == 1, outcomes
    assert not os.path.exists(f"/proc/{pid}")  # killed and reaped


def test_a_hung_worker_is_ended_and_its_request_refused_as_retryable_in_time():
    """A worker that stops answering (here SIGSTOP) must not hold requests for ever: once it has
    owed an answer for ANSWER_SECONDS it is ended, what it held fails as retryable, and another
    takes over. Also when every caller gave up on it first (HTTP's request timeout, a gRPC
    deadline): a later request must not find the hung worker still holding its places."""
    workers = DecodeWorkers(decoder(), 1, 0)
    workers.ANSWER_SECONDS = 0.5

    async def attempts():
        try:
            await workers.start()
            (pid,) = workers.pids()
            os.kill(pid, signal.SIGSTOP)
            started = time.monotonic()
            with pytest.raises(decode_workers.WorkerLost):
                async with asyncio.timeout(20):  # without the watchdog: a TimeoutError here, not a hang
                    await workers.decode(good_protobuf(), "protobuf")
            waited = time.monotonic() - started
            after = await workers.decode(good_protobuf(), "protobuf")  # a new worker answers
            (second,) = workers.pids()
            os.kill(second, signal.SIGSTOP)
            impatient = [asyncio.ensure_future(workers.decode(good_protobuf(), "protobuf"))
                         for _ in range(decode_workers.AHEAD + 1)]
            await asyncio.sleep(0.2)
            for call in impatient:
                call.cancel()  # the callers gave up before the deadline
            async with asyncio.timeout(20):
                patient = await workers.decode(good_protobuf(), "protobuf")
            return pid, second, waited, after, patient, workers.pids()
        finally:
            await workers.close()

    pid, second, waited, after, patient, pids = run(attempts())
    assert waited < 10 and len(after.spans) == 1 and len(patient.spans) == 1
    assert not {pid, second} & set(pids) and not os.path.exists(f"/proc/{pid}")  # ended, reaped, replaced
    assert not os.path.exists(f"/proc/{second}")


def test_a_worker_that_cannot_be_replaced_for_a_moment_does_not_end_the_workers(monkeypatch, caplog):
    """The first start failing leaves decoding here for good (above); a replacement failing once
    (a process limit reached for a moment) is tried again at the next request."""
    real = decode_workers.asyncio.create_subprocess_exec
    starts = []

    async def flaky(*args, **kwargs):
        starts.append(1)
        if len(starts) == 2:  # the replacement of the first worker
            raise OSError("Resource temporarily unavailable")
        return await real(*args, **kwargs)

    monkeypatch.setattr(decode_workers.asyncio, "create_subprocess_exec", flaky)
    workers = DecodeWorkers(decoder(), 1, 0)

    async def attempts():
        try:
            first = await workers.decode(good_protobuf(), "protobuf")
            (pid,) = workers.pids()
            os.kill(pid, signal.SIGKILL)
            for _ in range(200):  # its reader notices, and the replacement fails to start
                await asyncio.sleep(0.01)
                if len(starts) == 2 and workers._starting is None:  # noqa: SLF001
                    break
            meanwhile = await workers.decode(good_protobuf(), "protobuf")  # a worker again, or here
            later = await workers.decode(good_protobuf(), "protobuf")
            return first, meanwhile, later, workers.pids()
        finally:
            await workers.close()

    with caplog.at_level(logging.WARNING, logger="agentprom.receiver.decode_workers"):
        first, meanwhile, later, pids = run(attempts())
    assert [len(b.spans) for b in (first, meanwhile, later)] == [1, 1, 1]
    assert not workers.failed and len(starts) == 3 and len(pids) == 1
    assert "could not be started (Resource temporarily unavailable); trying again" in caplog.text
