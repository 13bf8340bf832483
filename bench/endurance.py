"""Endurance: the shipped synthetic endurance scenario against a real sidecar process; prints JSON.

Runs examples/bench/synthetic-endurance.yaml (simulated timestamps) through
the `agentprom bench` runner against `agentprom serve` on free loopback ports,
and reports how fast sessions and spans went through (harness and sidecar CPU
measured in the same run), how much agent time the run covered, the sidecar's
RSS before and after (growth over a long run is what an endurance test is
for), and how many sidecar records differed from the workload's ground truth
(should be 0).

    python3 bench/endurance.py [--quick] [--sessions N] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from workload import ROOT, SidecarProcess, cpu_seconds, emit, rss_bytes  # noqa: E402

from agentprom.benchmark.plan import plan_session  # noqa: E402
from agentprom.benchmark.runner import Runner  # noqa: E402
from agentprom.benchmark.scenario import load_scenario  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--sessions", type=int, default=None, help="sessions to run (default 2000)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sessions = args.sessions or (20 if args.quick else 2000)

    scenario = load_scenario(ROOT / "examples" / "bench" / "synthetic-endurance.yaml")
    # the example stops at 12 hours of agent time: lift that so the session count decides
    scenario = scenario.model_copy(update={"duration_seconds": None})
    records: list[dict] = []
    sidecar = SidecarProcess()
    try:
        rss_before = rss_bytes(sidecar.pid)
        cpu_before = cpu_seconds(sidecar.pid)
        harness_cpu = time.process_time()
        started = time.perf_counter()
        summary = Runner(scenario, f"http://{sidecar.http}", records.append, sessions=sessions, seed=args.seed).run()
        wall = time.perf_counter() - started
        harness_cpu = time.process_time() - harness_cpu
        sidecar_cpu = cpu_seconds(sidecar.pid) - cpu_before
        rss_after = rss_bytes(sidecar.pid)
    finally:
        sidecar.stop()

    spans = sum(1 + r["phases"] + r["tool_calls"] + r["llm_calls"] for r in records if r["phases"] is not None)
    end_ms, start = 0, 0
    for index in range(len(records)):
        plan = plan_session(scenario.workload, args.seed, index, start)
        start, end_ms = plan.next_start_ms, plan.end_ms
    emit({
        "bench": "endurance",
        "sessions": summary.sessions,
        "succeeded": summary.succeeded,
        "without_record": summary.without_record,
        "mismatched": summary.mismatched,
        "spans": spans,
        "agent_hours": round(end_ms / 3_600_000, 2),
        "wall_s": round(wall, 2),
        "sessions_per_s": round(summary.sessions / wall, 1),
        "spans_per_s": round(spans / wall),
        "harness_cpu_ms_per_session": round(harness_cpu * 1000 / summary.sessions, 2),
        "sidecar_cpu_ms_per_1000_spans": round(sidecar_cpu * 1e6 / spans, 1) if spans else None,
        "sidecar_rss_mb_before": round(rss_before / 2**20, 1),
        "sidecar_rss_mb_after": round(rss_after / 2**20, 1),
    })


if __name__ == "__main__":
    main()
