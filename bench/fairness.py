"""Fairness between transports: export latency over OTLP/HTTP and OTLP/gRPC under mixed load.

N HTTP senders and M gRPC senders (asyncio, each one request at a time, in two
sender processes) replay the same 512-span export request against one sidecar
on loopback for a fixed time. A refused export (503 / UNAVAILABLE) is retried
after the suggested delay, as the OTel SDKs do. Prints p50/p99 latency of the
accepted exports and the refusal count per transport.

    python3 bench/fairness.py [--seconds S] [--http N] [--grpc M] [--config FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import GRPC_EXPORT, SidecarProcess, emit, request_bytes  # noqa: E402


async def _http_senders(url: str, body: bytes, n: int, seconds: float, start_at: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    refused = 0

    async def sender(session) -> None:
        nonlocal refused
        deadline = start_at + seconds
        while time.time() < deadline:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}) as r:
                await r.read()
                if r.status == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    refused += 1
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))

    await asyncio.sleep(max(0.0, start_at - time.time()))
    connector = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(sender(session) for _ in range(n)))
    return {"latencies": latencies, "refused": refused}


async def _grpc_senders(address: str, body: bytes, m: int, seconds: float, start_at: float) -> dict:
    import grpc

    latencies: list[float] = []
    refused = 0

    async def sender() -> None:
        nonlocal refused
        async with grpc.aio.insecure_channel(address) as channel:  # one connection per sender, like an SDK
            export = channel.unary_unary(GRPC_EXPORT)
            await channel.channel_ready()
            await asyncio.sleep(max(0.0, start_at - time.time()))
            deadline = start_at + seconds
            while time.time() < deadline:
                t0 = time.perf_counter()
                try:
                    await export(body, timeout=60)
                    latencies.append(time.perf_counter() - t0)
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    refused += 1
                    await asyncio.sleep(1.0)

    await asyncio.gather(*(sender() for _ in range(m)))
    return {"latencies": latencies, "refused": refused}


def _run(kind: str, target: str, body: bytes, count: int, seconds: float, start_at: float, out) -> None:
    senders = _http_senders if kind == "http" else _grpc_senders
    out.put((kind, asyncio.run(senders(target, body, count, seconds, start_at))))


def _summary(result: dict, seconds: float) -> dict:
    lat = sorted(result["latencies"])
    if not lat:
        return {"accepted": 0, "refused": result["refused"]}
    return {
        "accepted": len(lat),
        "accepted_per_s": round(len(lat) / seconds, 1),
        "refused": result["refused"],
        "p50_ms": round(1000 * statistics.median(lat), 1),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
    }


def _sample_queue(sidecar: SidecarProcess, start_at: float, seconds: float) -> list[float]:
    """agentprom_queue_spans once a second during the run (what admission sees)."""
    depths = []
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < start_at + seconds:
        t0 = time.time()
        for line in sidecar.scrape().decode().splitlines():
            if line.startswith("agentprom_queue_spans "):
                depths.append(float(line.split()[1]))
        time.sleep(max(0.0, 1.0 - (time.time() - t0)))
    return depths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--http", type=int, default=32, help="concurrent OTLP/HTTP senders")
    parser.add_argument("--grpc", type=int, default=8, help="concurrent OTLP/gRPC senders (one connection each)")
    parser.add_argument("--config", default="", help="a config file for the sidecar")
    args = parser.parse_args()
    config = Path(args.config).read_text() if args.config else ""
    body = request_bytes()
    sidecar = SidecarProcess(config)
    try:
        out: multiprocessing.Queue = multiprocessing.Queue()
        start_at = time.time() + 2.0
        procs = [
            multiprocessing.Process(target=_run, args=("http", f"http://{sidecar.http}/v1/traces", body,
                                                       args.http, args.seconds, start_at, out)),
            multiprocessing.Process(target=_run, args=("grpc", sidecar.grpc, body, args.grpc, args.seconds,
                                                       start_at, out)),
        ]
        for proc in procs:
            proc.start()
        depths = _sample_queue(sidecar, start_at, args.seconds)
        results = dict(out.get(timeout=args.seconds + 120) for _ in procs)
        for proc in procs:
            proc.join(30)
    finally:
        sidecar.stop()
    emit({"seconds": args.seconds, "http_senders": args.http, "grpc_senders": args.grpc,
          "http": _summary(results["http"], args.seconds), "grpc": _summary(results["grpc"], args.seconds),
          "queue_spans": {"max": max(depths, default=0), "mean": round(statistics.fmean(depths), 0) if depths else 0}})


if __name__ == "__main__":
    main()
