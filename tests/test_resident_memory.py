"""The memory ceiling's reading (receiver/pipeline.py, ``Resident``): the sidecar's own resident memory
and its helper processes' private memory (decode workers, the stores' shipper), on real processes."""

from __future__ import annotations

import subprocess
import sys

from agentprom.clock import ManualClock
from agentprom.metrics.series_store import SeriesStore
from agentprom.receiver.pipeline import Pipeline, QueueLimits, Resident, private_bytes, resident_bytes
from agentprom.translator import Translator

MIB = 1024 * 1024


def _process_holding(mib: int) -> subprocess.Popen:
    """A real process that holds ``mib`` MiB resident (written) until killed; ready when it prints."""
    child = subprocess.Popen([sys.executable, "-c", f"import sys, time\nb = bytearray(b'x') * ({mib} * {MIB})\n"
                              "print('ready', flush=True)\ntime.sleep(600)"], stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"ready\n"
    return child


def test_resident_memory_sums_the_helper_processes_and_reads_them_once_a_second():
    clock = ManualClock()
    child = _process_holding(64)
    try:
        assert private_bytes(child.pid) >= 64 * MIB
        pids = [child.pid]
        calls = []
        resident = Resident(clock.monotonic, lambda: calls.append(1) or pids)
        own = resident_bytes()
        total = resident()
        assert total >= own + 64 * MIB and len(calls) == 1
        # within the second the helpers' sum is reused, this process's own memory read again
        ballast = bytearray(b"x") * (32 * MIB)
        assert resident() >= total + 30 * MIB and len(calls) == 1
        del ballast
        # a helper that ended counts nothing once the helpers are read again
        child.kill()
        child.wait()
        assert private_bytes(child.pid) == 0
        clock.advance(Resident.HELPERS_SECONDS)
        assert resident() < total - 32 * MIB and len(calls) == 2
    finally:
        child.kill()
        child.wait()


def test_a_pipeline_refuses_when_its_helpers_take_it_over_the_limit():
    clock = ManualClock()
    child = _process_holding(64)
    try:
        store = SeriesStore(clock=clock)
        pipeline = Pipeline(Translator(store), store,
                            QueueLimits(memory_limit_bytes=resident_bytes() + 32 * MIB),
                            rss=Resident(clock.monotonic, lambda: [child.pid]))
        assert pipeline.admit("grpc") == "memory_limit"
        child.kill()
        child.wait()
        clock.advance(Resident.HELPERS_SECONDS)
        assert pipeline.admit("grpc") is None
    finally:
        child.kill()
        child.wait()
