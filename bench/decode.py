"""Decode floor: protobuf parsing alone versus agentprom's whole per-request work, in one process.

For the same pre-serialized 512-span requests it times (CPU seconds, one core):
``parse`` = ``ExportTraceServiceRequest.FromString`` only (upb; lazy, so this is
the floor no Python receiver can beat), ``decode`` = parse plus our walk into
``Span`` records, and ``pipeline`` = decode plus the per-span bounds check
(``bounds.py``), classification and the series store updates. ``share_outside_parsing`` is the part of the pipeline's time
spent in our own Python, i.e. what is left to optimize.

``decode`` is the decoder in use (``decode.COMPILED``: the compiled one, receiver/_wire.pyx, when it is
built); ``decode_python`` and ``decode_compiled`` time both paths on the same requests in the same run,
and ``compiled_speedup`` is their ratio (null when the extension is not built).

The decode workers' hand-over (``server.workers``, receiver/decode_workers.py) is timed the same
way, without the pipes: ``worker`` = what a worker does per request (decode, bounds, ``marshal``),
``handover`` = what the main process does with a worker's answer before translating it (unmarshal,
rebuild the spans), to set against ``decode`` (what the main process does without workers).

    python3 bench/decode.py [--quick] [--requests N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from workload import SPANS_PER_REQUEST, emit, request_bytes  # noqa: E402

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from agentprom.bounds import AmountLimits, SpanBounds  # noqa: E402
from agentprom.metrics.series_store import SeriesStore  # noqa: E402
from agentprom.conventions.profile import WANTED_KEYS, WANTED_RESOURCE_KEYS  # noqa: E402
from agentprom.receiver import decode as decode_module  # noqa: E402
from agentprom.receiver.decode import NO_LIMITS, decode_traces, decode_traces_python  # noqa: E402
from agentprom.receiver.decode_worker import _decode_in_worker  # noqa: E402
from agentprom.receiver.decode_workers import TraceDecoder, batch_from_worker  # noqa: E402
from agentprom.translator import Translator  # noqa: E402


def cpu_rate(fn, requests: list[bytes], count: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` spans per CPU second for ``fn`` over ``count`` requests."""
    best = 0.0
    for _ in range(repeats):
        start = time.process_time()
        for i in range(count):
            fn(requests[i % len(requests)])
        elapsed = time.process_time() - start
        best = max(best, count * SPANS_PER_REQUEST / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--requests", type=int, default=None, help="requests per measurement (default 200)")
    args = parser.parse_args()
    count = args.requests or (10 if args.quick else 200)
    requests = [request_bytes(f"-{v}") for v in range(8)]
    translator = Translator(SeriesStore())
    bounds = SpanBounds(AmountLimits.defaults(), translator.weights)

    def pipeline(body: bytes) -> None:
        batch = decode_traces(body)
        bounds.check(batch)
        translator.consume(batch, "grpc")

    pipeline(requests[0])  # warm caches and series
    parse = cpu_rate(ExportTraceServiceRequest.FromString, requests, count)
    decode = cpu_rate(decode_traces, requests, count)
    python = cpu_rate(decode_traces_python, requests, count)
    compiled = decode if decode_module.COMPILED else None  # decode_traces is the compiled decoder then
    full = cpu_rate(pipeline, requests, count)
    decoder = TraceDecoder(WANTED_KEYS, NO_LIMITS, WANTED_RESOURCE_KEYS, bounds)
    worker = cpu_rate(lambda body: _decode_in_worker(decoder, body, "protobuf"), requests, count)
    answers = {body: _decode_in_worker(decoder, body, "protobuf") for body in requests}
    handover = cpu_rate(lambda body: batch_from_worker(answers[body]), requests, count)
    emit({
        "bench": "decode",
        "spans_per_request": SPANS_PER_REQUEST,
        "request_bytes": len(requests[0]),
        "parse_spans_per_cpu_s": round(parse),
        "decode_spans_per_cpu_s": round(decode),
        "decode_compiled": decode_module.COMPILED,
        "decode_python_spans_per_cpu_s": round(python),
        "decode_compiled_spans_per_cpu_s": round(compiled) if compiled else None,
        "compiled_speedup": round(compiled / python, 2) if compiled else None,
        "pipeline_spans_per_cpu_s": round(full),
        "pipeline_cpu_ms_per_1000_spans": round(1e6 / full, 2),
        "share_outside_parsing": round(1 - full / parse, 3),
        "decode_share_of_pipeline": round(full / decode, 3),
        "worker_us_per_span": round(1e6 / worker, 2),
        "handover_us_per_span": round(1e6 / handover, 2),
        "decode_us_per_span": round(1e6 / decode, 2),
    })


if __name__ == "__main__":
    main()
