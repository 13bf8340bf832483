"""Instructions per span of the translator step, counted by valgrind: a measure that noise cannot move; prints JSON.

Usage: python3 bench/instructions.py [--quick] [--mode MODE] [--spans N] [--extra-attributes K]
                                     [--parents-first] [--against DIR --against-mode MODE]
       python3 bench/instructions.py --mode ingest [--spans N] [--breakdown] [--steady] [--against DIR]
       python3 bench/instructions.py --mode serve [--spans N] [--rotel]

CPU time on a shared machine moves by tens of percent between runs, which hides
a 5 % change. This script runs ``bench/sessions_overhead.py``'s spans through
one of its modes (``default``: trace context and session tracking, as the App
runs them) under ``valgrind --tool=callgrind`` twice, once with N spans and
once with four, and reports the difference per span: the interpreter's
instructions for the work itself, start-up excluded. Hash seeds and span ids
are fixed, so a rerun gives the same count to within a few instructions.

``--mode ingest`` measures what ``bench/ingest.py`` sends instead: its 512-span
requests (bench/workload.py, each with traces of its own) decoded as the
receiver decodes them (the decoder in use, then the span bounds) and consumed
by the translator of an App built from the default configuration, every
listener subscribed as ``agentprom serve`` subscribes them; gRPC and the event
loop are left out. ``--breakdown`` adds what each stage costs of that: decode
(with the bounds) and classification measured alone, the counting and each
listener as what leaving it out saves, and the trace context with the
translator's own loop as the remainder. ``--steady`` shrinks the trace
context's and the fan-out's bounds to a few requests' worth, so that the count
includes what a sidecar that has run a while does per span and a short run
does not: evicting trace trees and observing closed runs.

``--mode serve`` counts the whole sidecar instead: ``agentprom serve`` under valgrind, sent those
requests over OTLP/gRPC four at a time and stopped with SIGTERM, against one sent none (both at
once, a few minutes): gRPC, the event loop, the receiver and its bounds included.
``--rotel`` counts rotel-agent the same way (bench/ingest.py's Rust collector, blackhole exporter:
a full protobuf decode of every span and no more) and reports the ratio of the two: what
bench/ingest.py's CPU ratio measures, free of the machine's noise. Instructions are not time
(the interpreter's instructions per cycle differ from compiled Rust's, and neither count includes
the kernel's work on the sockets), so the timed ratio stays the target; this one says whether a
change moved it.

``--against DIR`` measures another checkout the same way (``git worktree add
/tmp/before <rev>``), with the same spans, and reports the ratio. Before the
trace context existed (0aeba2f and earlier) the default was the mode
``with_sessions``: pass ``--against-mode with_sessions``.

Needs valgrind (Debian: ``apt-get install valgrind``). Instruction counts say
nothing about cache misses or the garbage collector's timing; confirm a result
with ``bench/sessions_overhead.py`` and ``bench/ingest.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from workload import SPANS_PER_REQUEST  # noqa: E402

#: runs inside valgrind: build the spans of a checkout's sessions_overhead.py, feed them through a mode
_RUN = r"""
import gc, importlib.util, itertools, os, random, sys, tempfile
root, mode, n, fed, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
parents_first = sys.argv[6] == "1"
sys.path.insert(0, os.path.join(root, "src"))
spec = importlib.util.spec_from_file_location("overhead", os.path.join(root, "bench", "sessions_overhead.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
random.seed(1)
bench.os.urandom = lambda k: random.getrandbits(8 * k).to_bytes(k, "big")  # the same ids every run
spans = bench.make_spans(n, extra) if extra else bench.make_spans(n)
if parents_first:  # each trace's spans reversed: its root first
    spans = [s for _, run in itertools.groupby(spans, key=lambda s: s.trace_id) for s in reversed(list(run))]
gc.collect()
gc.freeze()
gc.set_threshold(50_000, 10, 10)  # as ``agentprom serve`` sets it (cli.tune_gc)
bench.run(spans[:fed], mode, tempfile.mkdtemp())
print(len(spans))
"""

#: ``--mode ingest``: bench/ingest.py's requests, decoded and consumed by a default App's translator.
#: ``ingest:PART`` measures one part of that (``--breakdown``): ``decode`` or ``classify`` alone (the
#: latter on requests decoded beforehand), or everything but the counting (``-counting``) or but one
#: listener (``-Runs``, ``-SpanSessions``, ...: a listener's class name).
_RUN_INGEST = r"""
import gc, json, os, sys
root, mode, n, fed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
config = json.loads(sys.argv[7])
part = mode.partition(":")[2]
sys.path[:0] = [os.path.join(root, "src"), os.path.join(root, "bench")]
import workload
from agentprom.app import App
from agentprom.clock import ManualClock
from agentprom.cli import tune_gc
from agentprom.config.loader import validate
try:  # the batch classification the translator calls (compiled where built); before it, span by span
    from agentprom.conventions.classify import classify_spans
except ImportError:
    from agentprom.conventions.classify import classify
    classify_spans = lambda spans: [classify(span) for span in spans]
from agentprom.receiver.decode import decode_traces
body = workload.request_bytes()
requests = -(-n // workload.SPANS_PER_REQUEST)
bodies = [workload.with_trace_ids(body, (0x5000 + i).to_bytes(8, "big")) for i in range(requests)]
app = App(validate(config), ManualClock())
translator = app.translator
try:  # as the receiver decodes: the decoder in use, then the span bounds (TraceDecoder)
    from agentprom.receiver.ingest import PROTOBUF
    decoder = app.ingest.decoder
    decode_traces = lambda data: decoder(data, PROTOBUF)
except (ImportError, AttributeError):  # a checkout from before it (--against): its decoder alone
    print("decoding without the span bounds: this checkout's App has no ingest.decoder", file=sys.stderr)
if part == "-counting":
    translator.record = lambda *args: None
elif part.startswith("-"):
    kept = [f for f in translator.listeners if not f.__qualname__.startswith(part[1:] + ".")]
    if len(kept) != len(translator.listeners) - 1:
        sys.exit(f"no listener {part[1:]!r} among {[f.__qualname__ for f in translator.listeners]}")
    translator.listeners = kept
batches = [decode_traces(data) for data in bodies] if part == "classify" else []
gc.collect()
tune_gc()
fed //= workload.SPANS_PER_REQUEST
if part == "decode":
    for data in bodies[:fed]:
        decode_traces(data)
elif part == "classify":
    for batch in batches[:fed]:
        classify_spans(batch.spans)
else:
    for data in bodies[:fed]:
        translator.consume(decode_traces(data), "grpc")
print(requests * workload.SPANS_PER_REQUEST)
"""

#: ``--steady``: the default configuration with the trace context's and the fan-out's bounds at a few
#: requests' worth (bench/workload.py: 64 runs and 512 spans a request), so that from the fifth request
#: on each request evicts as many trace trees and observes as many closed runs as it adds: what a
#: sidecar that has run for a while does per span, which the default bounds (100,000 spans, 10,000
#: runs) would reach only after 80,000 spans
STEADY_CONFIG = {"attribution": {"max_open_runs": 4 * 64, "max_indexed_spans": 4 * SPANS_PER_REQUEST}}

#: ``--breakdown``: the parts measured, and what each difference means
_LISTENERS = ("SpanSessions", "Runs", "Guardrails", "Evaluations")


def breakdown(root: Path, n: int, whole: float, config: dict | None = None) -> dict[str, int]:
    """Instructions per span of each stage of ``--mode ingest`` (``whole``, measured already):
    decode and classification measured alone, the counting and each listener as what leaving it
    out saves, and the trace context with the translator's own loop as what remains."""
    def run(part: str) -> float:
        return per_span(root, f"ingest:{part}", n, 0, False, config)

    parts = ["decode", "classify", "-counting", *(f"-{name}" for name in _LISTENERS)]
    with ThreadPoolExecutor(max(1, min(len(parts), os.cpu_count() or 1))) as pool:
        found = dict(zip(parts, pool.map(run, parts)))
    out = {"whole": whole, "decode": found["decode"], "classify": found["classify"],
           "counting": whole - found["-counting"]}
    for name in _LISTENERS:
        out[f"listener {name}"] = whole - found[f"-{name}"]
    out["trace context and the rest"] = whole - sum(value for key, value in out.items() if key != "whole")
    return {key: round(value) for key, value in out.items()}


def collected(output: str) -> int:
    """The instruction count in callgrind's output (``Collected : N``)."""
    found = re.search(r"Collected : (\d+)", output)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{output[-2000:]}")
    return int(found.group(1))


def serve_instructions(requests: int, target: str = "agentprom") -> int:
    """Instructions of a whole ``agentprom serve`` (this checkout, default configuration), or of
    ``rotel-agent`` with its blackhole exporter (``target="rotel"``: bench/ingest.py's), under
    callgrind that is sent ``requests`` of bench/ingest.py's requests over OTLP/gRPC, four at a
    time, and then stopped with SIGTERM."""
    import grpc
    from ingest import start_rotel
    from workload import GRPC_EXPORT, SidecarProcess, request_bytes, with_trace_ids

    body = request_bytes()
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    with tempfile.TemporaryDirectory() as workdir, tempfile.TemporaryFile() as output:
        if target == "rotel":
            proc, address = start_rotel(workdir, tuple(valgrind), output, ready_seconds=600)
        else:
            sidecar = SidecarProcess(prefix=valgrind, ready_seconds=600, env={"PYTHONHASHSEED": "0"})
            address = sidecar.grpc
        try:
            with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
                export = channel.unary_unary(GRPC_EXPORT)
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(lambda i: export(with_trace_ids(body, (0x6000 + i).to_bytes(8, "big")),
                                                   timeout=600), range(requests)))
        finally:
            if target == "rotel":
                proc.terminate()
                try:
                    proc.wait(600)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                output.seek(0)
                log = output.read().decode(errors="replace")
            else:
                log = sidecar.stop(grace=600).decode(errors="replace")
    return collected(log)


def serve_per_span(requests: int, target: str = "agentprom") -> float:
    """``serve_instructions`` of ``requests`` minus that of none, per span: start-up, shutdown and
    the idle loop's housekeeping (a little more of it while requests are sent) excluded."""
    with ThreadPoolExecutor(2) as pool:
        full, empty = pool.map(lambda n: serve_instructions(n, target), (requests, 0))
    return (full - empty) / (requests * SPANS_PER_REQUEST)


def instructions(root: Path, mode: str, n: int, fed: int, extra: int, parents_first: bool,
                 config: dict | None = None) -> tuple[int, int]:
    """Instructions of a whole run that builds spans for ``n`` and feeds the first ``fed``; and
    how many spans it built (whole traces: a few more than ``n``). ``config``: the App's (ingest)."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c",
         _RUN_INGEST if mode.partition(":")[0] == "ingest" else _RUN,
         str(root), mode, str(n), str(fed), str(extra), "1" if parents_first else "0", json.dumps(config or {})],
        env=dict(os.environ, PYTHONHASHSEED="0"), capture_output=True, text=True, check=True,
    )
    return collected(out.stderr), int(out.stdout.split()[-1])


def per_span(root: Path, mode: str, n: int, extra: int, parents_first: bool, config: dict | None = None) -> float:
    # both runs build the same spans; only feeding them differs (``ingest``: whole requests, none)
    empty_fed = 0 if mode.partition(":")[0] == "ingest" else 4
    full, built = instructions(root, mode, n, 10**9, extra, parents_first, config)
    empty, _ = instructions(root, mode, n, empty_fed, extra, parents_first, config)
    return (full - empty) / (built - empty_fed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="default",
                        help="a sessions_overhead.py mode; ingest: bench/ingest.py's requests through a default App's "
                             "translator; serve: the same requests sent to agentprom serve over OTLP/gRPC "
                             "(default: default)")
    parser.add_argument("--spans", type=int, default=8000, help="spans fed (default 8000; about 40 s per run)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (400 spans)")
    parser.add_argument("--extra-attributes", type=int, default=0, help="attributes no stage reads, per span")
    parser.add_argument("--parents-first", action="store_true", help="each trace's root first (default: children first)")
    parser.add_argument("--against", type=Path, help="another checkout to measure with the same spans")
    parser.add_argument("--against-mode", help="the mode to run there (default: --mode's)")
    parser.add_argument("--breakdown", action="store_true",
                        help="with --mode ingest: instructions per span of each stage (decode, classify, counting, "
                             "each listener, the rest): 14 valgrind runs more, one per core at a time")
    parser.add_argument("--rotel", action="store_true",
                        help="with --mode serve: count rotel-agent (bench/ingest.py's) the same way, sent the same "
                             "requests, and report the ratio: bench/ingest.py's CPU ratio without the noise")
    parser.add_argument("--steady", action="store_true",
                        help="with --mode ingest: bounds small enough (STEADY_CONFIG) that most requests find them "
                             "full, so evicting trace trees and observing closed runs are in the count, as in a "
                             "sidecar that has run for a while")
    args = parser.parse_args()
    ingest = args.mode.partition(":")[0] in ("ingest", "serve")
    if args.against is not None and args.mode == "serve":
        parser.error("--against does not take --mode serve")
    if ingest and (args.extra_attributes or args.parents_first):
        parser.error("--extra-attributes and --parents-first shape sessions_overhead.py's spans, not --mode ingest's")
    if args.breakdown and args.mode != "ingest":
        parser.error("--breakdown needs --mode ingest")
    if args.rotel and args.mode != "serve":
        parser.error("--rotel needs --mode serve")
    if args.steady and args.mode != "ingest":
        parser.error("--steady needs --mode ingest")
    config = STEADY_CONFIG if args.steady else {}
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    shape = (400 if args.quick else args.spans, args.extra_attributes, args.parents_first)
    if args.mode == "serve":
        requests = -(-shape[0] // SPANS_PER_REQUEST)
        result = {"bench": "instructions", "mode": "serve", "spans": requests * SPANS_PER_REQUEST,
                  "instructions_per_span": round(serve_per_span(requests))}
        if args.rotel:
            theirs = serve_per_span(requests, "rotel")
            result["rotel"] = {"instructions_per_span": round(theirs)}
            result["ratio"] = round(result["instructions_per_span"] / theirs, 3)
        print(json.dumps(result))
        return
    result = {"bench": "instructions", "mode": args.mode, "spans": shape[0],
              "extra_attributes": args.extra_attributes, "parents_first": args.parents_first,
              "steady": args.steady, "instructions_per_span": None}
    measured = per_span(ROOT, args.mode, *shape, config)
    result["instructions_per_span"] = round(measured)
    if args.against is not None:
        against_mode = args.against_mode or args.mode
        theirs = per_span(args.against.resolve(), against_mode, *shape, config)
        result["against"] = {"checkout": str(args.against), "mode": against_mode,
                             "instructions_per_span": round(theirs)}
        result["ratio"] = round(result["instructions_per_span"] / theirs, 3)
    if args.breakdown:
        result["breakdown"] = breakdown(ROOT, shape[0], measured, config)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
