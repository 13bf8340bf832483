"""Memory under a cardinality attack: RSS while 1M distinct tool names arrive.

Every span of the attack is a tool call with a tool name never seen before
(the case of tool names taken from user input). With the default budget of
1,000 distinct values per label the store must turn the excess tool names into
``tool="__overflow__"`` (the agent keeps its name; the series limit of 2,000
per metric stays behind it), so RSS has to level off once the budget is
reached instead of growing with the attack. The sidecar is a real process fed over OTLP/gRPC and scraped
at every checkpoint (so the renderer's caches are included). Reports RSS at
each checkpoint, whether the second half of the attack stayed flat, and RSS
per active series.

    python3 bench/memory.py [--quick] [--values N]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import (  # noqa: E402
    GRPC_EXPORT,
    SPANS_PER_REQUEST,
    SidecarProcess,
    _kv,
    _span,
    emit,
    request,
    rss_bytes,
)

PLACEHOLDER = b"@@@@@@@@@"  # 9 bytes: tool names keep their length, so the protobuf stays valid
#: growth allowed over the second half of the attack and still called a plateau
PLATEAU_TOLERANCE = 0.05


def attack_template() -> list[bytes]:
    """A 512-span request of tool spans, split around every tool-name placeholder."""
    tool = PLACEHOLDER.decode()
    spans = [
        _span(i, f"execute_tool {tool}", 1, 12.0, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "attacked", "gen_ai.tool.name": tool,
        })
        for i in range(SPANS_PER_REQUEST)
    ]
    body = request(spans, "attacked-agent").SerializeToString()
    parts = body.split(PLACEHOLDER)
    assert len(parts) == 2 * SPANS_PER_REQUEST + 1, "each span names its tool twice"
    return parts


def attack_request(parts: list[bytes], first: int) -> bytes:
    names = [b"%09d" % (first + i // 2) for i in range(len(parts) - 1)]
    out = [parts[0]]
    for name, part in zip(names, parts[1:]):
        out.append(name)
        out.append(part)
    return b"".join(out)


def active_series(exposition: str) -> int:
    return int(sum(float(v) for v in re.findall(r'^agentprom_active_series\{[^}]*\} (\S+)$', exposition, re.M)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (proves the script works)")
    parser.add_argument("--values", type=int, default=None, help="distinct label values (default 1,000,000)")
    parser.add_argument("--checkpoints", type=int, default=10)
    args = parser.parse_args()
    values = args.values or (20_000 if args.quick else 1_000_000)
    requests_total = -(-values // SPANS_PER_REQUEST)

    import grpc

    parts = attack_template()
    sidecar = SidecarProcess()
    channel = grpc.insecure_channel(sidecar.grpc)
    export = channel.unary_unary(GRPC_EXPORT)
    try:
        sidecar.scrape()
        baseline = rss_bytes(sidecar.pid)
        samples = []
        every = max(1, requests_total // args.checkpoints)
        pending = []
        for r in range(requests_total):
            pending.append(export.future(attack_request(parts, r * SPANS_PER_REQUEST), timeout=60))
            if len(pending) >= 4:
                pending.pop(0).result()
            if (r + 1) % every == 0 or r + 1 == requests_total:
                for future in pending:
                    future.result()
                pending.clear()
                text = sidecar.scrape().decode()
                samples.append({"distinct_values_sent": (r + 1) * SPANS_PER_REQUEST,
                                "rss_mb": round(rss_bytes(sidecar.pid) / 2**20, 1),
                                "active_series": active_series(text)})
        final_text = sidecar.scrape().decode()
        overflow = re.search(r'^agentprom_series_overflow_total\{metric="agent_tool_calls_total"\} (\S+)$',
                             final_text, re.M)
        replaced = re.search(
            r'^agentprom_label_overflow_total\{metric="agent_tool_calls_total",label="tool"\} (\S+)$', final_text, re.M)
    finally:
        channel.close()
        sidecar.stop()
    half = samples[len(samples) // 2]["rss_mb"]
    final = samples[-1]["rss_mb"]
    active = samples[-1]["active_series"]
    emit({
        "bench": "memory",
        "distinct_values": requests_total * SPANS_PER_REQUEST,
        "series_limit_per_metric": 2000,
        "label_values_per_label": 1000,
        "baseline_rss_mb": round(baseline / 2**20, 1),
        "final_rss_mb": final,
        "rss_growth_second_half": round(final / half - 1, 4),
        "plateau": final <= half * (1 + PLATEAU_TOLERANCE),
        "active_series": active,
        "rss_kb_per_active_series": round((final * 2**20 - baseline) / active / 1024, 2) if active else None,
        "folded_observations": float(overflow.group(1)) if overflow else 0,
        "replaced_tool_values": float(replaced.group(1)) if replaced else 0,
        "checkpoints": samples,
    })


if __name__ == "__main__":
    main()
