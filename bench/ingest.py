"""Ingest throughput over OTLP/gRPC: agentprom against rotel (a Rust collector) in one run.

Several sender processes replay pre-serialized 512-span export requests (each
sent with trace ids of its own, as real traffic has), each keeping a few calls
in flight, first against the sidecar and then against
``rotel-agent`` with its blackhole exporter. For each target it reports spans
acknowledged per second and the target's CPU seconds per 1,000 spans (of the whole process
tree: the sidecar's decode workers count), and its peak resident memory; the ratios make the
figure meaningful on a noisy, shared machine. On such a machine one pair's ratio moves by half
between runs (0.18 to 0.29 seen in one hour), so ``--pairs`` measures several pairs one after the
other and reports the pair with the median throughput ratio, listing every pair's.

The sidecar runs its default configuration (sessions and trace context on; ``server.workers: 1``,
no decode worker processes) unless ``--workers`` says otherwise.
Nothing lost, nothing counted twice: once the load ends, the script waits for the sidecar's
queue to drain and checks its catalog counters against what was acknowledged during the measured
window: ``agentprom_spans_received_total`` must have grown by exactly the spans acknowledged, and
``agent_llm_calls_total`` and ``agent_tool_calls_total`` by the LLM and tool spans among them.

    python3 bench/ingest.py [--quick] [--seconds S] [--senders N] [--in-flight K] [--workers W] [--pairs P]
    python3 bench/ingest.py --compare-workers 1,2 [--rounds R] [--seconds S] ...

``--compare-workers`` measures only the sidecar, once per ``server.workers`` value per round, the
values alternating (so a busy machine's phases fall on each alike), and reports each value's best
and median spans/s, CPU per 1,000 spans (process tree) and cores used by the main process alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import (  # noqa: E402
    GRPC_EXPORT,
    SPANS_PER_REQUEST,
    SidecarProcess,
    cpu_seconds,
    emit,
    free_port,
    http_get,
    own_cpu_seconds,
    request_bytes,
    rss_bytes,
    with_trace_ids,
    wait_until,
)


def _sender(number: int, address: str, requests: list[bytes], seconds: float, in_flight: int, start_at: float,
            out) -> None:
    import grpc

    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)])
    export = channel.unary_unary(GRPC_EXPORT)  # raw bytes in and out: no client-side serialization
    grpc.channel_ready_future(channel).result(timeout=10)
    while time.time() < start_at:
        time.sleep(0.005)
    deadline = time.monotonic() + seconds
    sent = errors = 0
    pending = []
    i = 0
    while time.monotonic() < deadline:
        while len(pending) < in_flight:
            # every request carries traces of its own (workload.with_trace_ids)
            body = with_trace_ids(requests[i % len(requests)], (number << 48 | i).to_bytes(8, "big"))
            pending.append(export.future(body, timeout=30))
            i += 1
        future = pending.pop(0)
        try:
            future.result()
            sent += 1
        except grpc.RpcError:
            errors += 1
    for future in pending:  # drain: these count too, they were sent within the window
        try:
            future.result()
            sent += 1
        except grpc.RpcError:
            errors += 1
    channel.close()
    out.put((sent, errors))


def run_load(address: str, pid: int, seconds: float, senders: int, in_flight: int) -> dict:
    requests = [request_bytes(f"-{v}") for v in range(4)]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 1.5  # every sender connected before the clock starts
    procs = [ctx.Process(target=_sender, args=(number, address, requests, seconds, in_flight, start_at, out))
             for number in range(senders)]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.005)
    peak = PeakRss(pid)
    cpu0, own0, t0 = cpu_seconds(pid), own_cpu_seconds(pid), time.monotonic()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    cpu1, own1, t1 = cpu_seconds(pid), own_cpu_seconds(pid), time.monotonic()
    peak.stop()
    for p in procs:
        p.join(10)
    sent = sum(r[0] for r in results)
    spans = sent * SPANS_PER_REQUEST
    wall = t1 - t0
    cpu = cpu1 - cpu0
    return {
        "spans_per_s": round(spans / wall),
        "cpu_s_per_1000_spans": round(cpu / spans * 1000, 5) if spans else None,
        "cpu_cores_used": round(cpu / wall, 2),
        "main_process_cores_used": round((own1 - own0) / wall, 2),
        "requests": sent,
        "errors": sum(r[1] for r in results),
        "seconds": round(wall, 2),
        "peak_rss_mib": round(peak.main / 2**20, 1),
        "peak_rss_process_tree_mib": round(peak.tree / 2**20, 1),
    }


class PeakRss:
    """Samples a process's resident memory (and its process tree's) every 50 ms until ``stop``."""

    def __init__(self, pid: int) -> None:
        self.pid, self.main, self.tree = pid, 0, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.05):
            try:
                self.main = max(self.main, rss_bytes(self.pid))
                self.tree = max(self.tree, rss_bytes(self.pid, tree=True))
            except (OSError, RuntimeError):
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


#: the catalog counters the exactly-once check reads
COUNTED = ("agentprom_spans_received_total", "agent_llm_calls_total", "agent_tool_calls_total")


def counters(metrics_address: str) -> dict[str, float]:
    """Each ``COUNTED`` family summed over its series, once the sidecar's queue is empty."""
    deadline = time.monotonic() + 60
    while True:
        text = http_get(f"http://{metrics_address}/metrics").decode()
        queued = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("agentprom_queue_spans ")]
        if queued == [0.0] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    totals = dict.fromkeys(COUNTED, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def expected_per_request(requests: list[bytes]) -> dict[str, float]:
    """What one request adds to each ``COUNTED`` family (every request of the workload has the same mix)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from agentprom.conventions.classify import classify
    from agentprom.model import Kind
    from agentprom.receiver.decode import decode_traces

    kinds = [classify(span).kind for span in decode_traces(requests[0]).spans]
    return {"agentprom_spans_received_total": float(len(kinds)),
            "agent_llm_calls_total": float(kinds.count(Kind.LLM)),
            "agent_tool_calls_total": float(kinds.count(Kind.TOOL))}


def exactly_once(metrics_address: str, before: dict[str, float], acknowledged: int) -> dict:
    """The counters' growth against what the acknowledged requests hold; ``ok`` only if every one matches."""
    after = counters(metrics_address)
    per_request = expected_per_request([request_bytes("-0")])
    check = {name: {"counted": after[name] - before[name], "expected": per_request[name] * acknowledged}
             for name in COUNTED}
    return {"ok": all(c["counted"] == c["expected"] for c in check.values()), **check}


def rotel_binary() -> str:
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.origin:
        raise SystemExit("rotel is not installed: python3 -m pip install rotel==0.0.1a15 (see README, Performance)")
    return str(Path(spec.origin).parent / "rotel-agent")


def start_rotel(workdir: str, prefix: tuple[str, ...] = (), output=subprocess.DEVNULL,
                ready_seconds: float = 20) -> tuple[subprocess.Popen, str]:
    """rotel-agent with its blackhole exporter on a free port (under ``prefix``, e.g. valgrind:
    bench/instructions.py); its stdout and stderr go to ``output``."""
    grpc_address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [*prefix, rotel_binary(), "start", "--otlp-grpc-endpoint", grpc_address,
         "--otlp-http-endpoint", f"127.0.0.1:{free_port()}", "--exporter", "blackhole",
         "--pid-file", os.path.join(workdir, "rotel.pid"), "--log-file", os.path.join(workdir, "rotel.log")],
        stdout=output, stderr=output,
    )
    import socket

    def listening() -> bool:
        with socket.create_connection(tuple_address(grpc_address), timeout=0.5):
            return True

    try:
        wait_until(listening, ready_seconds, "rotel listening")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, grpc_address


def tuple_address(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def compare_workers(values: list[int], rounds: int, seconds: float, senders: int, in_flight: int) -> None:
    runs: dict[int, list[dict]] = {v: [] for v in values}
    for _ in range(rounds):
        for workers in values:
            sidecar = SidecarProcess(json.dumps({"server": {"workers": workers}}))
            try:
                run_load(sidecar.grpc, sidecar.pid, min(seconds, 2.0), senders, in_flight)  # warm-up
                runs[workers].append(run_load(sidecar.grpc, sidecar.pid, seconds, senders, in_flight))
            finally:
                sidecar.stop()

    def summary(results: list[dict]) -> dict:
        rates = sorted(r["spans_per_s"] for r in results)
        return {"best_spans_per_s": rates[-1], "median_spans_per_s": rates[len(rates) // 2],
                "cpu_s_per_1000_spans": [r["cpu_s_per_1000_spans"] for r in results],
                "main_process_cores_used": [r["main_process_cores_used"] for r in results]}

    emit({"bench": "ingest", "mode": "compare_workers", "senders": senders, "in_flight_per_sender": in_flight,
          "seconds": seconds, "rounds": rounds, "cpus": os.cpu_count(),
          "workers": {str(v): summary(runs[v]) for v in values}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--seconds", type=float, default=None, help="load duration per target (default 15)")
    parser.add_argument("--senders", type=int, default=None, help="sender processes (default 3)")
    parser.add_argument("--in-flight", type=int, default=4, help="calls in flight per sender")
    parser.add_argument("--workers", type=int, default=None,
                        help="the sidecar's server.workers (default: its own default, 1)")
    parser.add_argument("--compare-workers", default="",
                        help="comma-separated server.workers values to compare, alternating (no rotel run)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare-workers (default 3)")
    parser.add_argument("--pairs", type=int, default=None,
                        help="sidecar-then-rotel measurements; the median ratio's pair is reported (default 3, "
                        "1 with --quick)")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 15.0)
    senders = args.senders or (1 if args.quick else 3)
    if args.pairs is not None and args.pairs < 1:
        parser.error("--pairs must be at least 1")
    args.pairs = args.pairs or (1 if args.quick else 3)
    if args.compare_workers:
        compare_workers([int(v) for v in args.compare_workers.split(",")], args.rounds, seconds, senders,
                        args.in_flight)
        return

    pairs = [measure_pair(args.workers, seconds, senders, args.in_flight) for _ in range(args.pairs)]
    # the pair whose throughput ratio is the median stands for the run; every pair is listed
    middle = sorted(pairs, key=lambda pair: pair["throughput_ratio"])[len(pairs) // 2]
    emit({
        "bench": "ingest",
        "transport": "otlp_grpc",
        "spans_per_request": SPANS_PER_REQUEST,
        "senders": senders,
        "in_flight_per_sender": args.in_flight,
        "cpus": os.cpu_count(),
        "workers": args.workers or "default",
        **middle,
        "exactly_once_every_pair": all(pair["agentprom"]["exactly_once"]["ok"] for pair in pairs),
        "pairs": [{"agentprom_spans_per_s": pair["agentprom"]["spans_per_s"],
                   "rotel_spans_per_s": pair["rotel"]["spans_per_s"],
                   "throughput_ratio": pair["throughput_ratio"], "cpu_per_span_ratio": pair["cpu_per_span_ratio"]}
                  for pair in pairs],
    })


def measure_pair(workers: int | None, seconds: float, senders: int, in_flight: int) -> dict:
    """The sidecar, then rotel, under the same load: both results and their ratios."""
    sidecar = SidecarProcess(json.dumps({"server": {"workers": workers}}) if workers else "")
    try:
        run_load(sidecar.grpc, sidecar.pid, min(seconds, 2.0), senders, in_flight)  # warm-up
        before = counters(sidecar.metrics)
        ours = run_load(sidecar.grpc, sidecar.pid, seconds, senders, in_flight)
        ours["exactly_once"] = exactly_once(sidecar.metrics, before, ours["requests"])
    finally:
        sidecar.stop()
    with tempfile.TemporaryDirectory() as workdir:
        proc, address = start_rotel(workdir)
        try:
            run_load(address, proc.pid, min(seconds, 2.0), senders, in_flight)
            theirs = run_load(address, proc.pid, seconds, senders, in_flight)
        finally:
            proc.terminate()
            proc.wait(10)
    return {
        "agentprom": ours,
        "rotel": theirs,
        "throughput_ratio": round(ours["spans_per_s"] / theirs["spans_per_s"], 3),
        "cpu_per_span_ratio": round(ours["cpu_s_per_1000_spans"] / theirs["cpu_s_per_1000_spans"], 2)
        if ours["cpu_s_per_1000_spans"] and theirs["cpu_s_per_1000_spans"] else None,
    }


if __name__ == "__main__":
    main()
