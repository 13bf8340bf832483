"""The ``agentprom bench`` subcommands: ``run``, ``compare`` and ``check``; argument parsing and exit codes.

Exit codes: ``run``: 0 when every session got its record from the sidecar
(and, for synthetic runs, the record matches the workload's ground truth), 1
otherwise (sidecar unreachable, sessions without a record, mismatches), 2 for
an invalid scenario or usage. ``compare``: 0 pass, 1 a metric regressed, 2
unreadable input or invalid settings. ``check``: 0 valid, 2 invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from agentprom.config.loader import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SIDECAR_ENV = "AGENTPROM_BENCH_SIDECAR"
DEFAULT_SIDECAR = "http://127.0.0.1:4318"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from agentprom.benchmark.compare import BY_NAME

    bench = sub.add_parser(
        "bench",
        help="run agent benchmarks against a sidecar and compare results",
        description="Benchmark agents through the sidecar: `bench run` runs a scenario (a synthetic agent or "
        "your agent's command) and writes one JSON record per session from the sidecar's session API; "
        "`bench compare` compares two result files and exits 1 on a significant regression. "
        "See docs/bench.md.",
    )
    commands = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")

    run = commands.add_parser(
        "run",
        help="run a scenario and record one JSON line per session",
        description="Run a benchmark scenario against a running sidecar. Each session's record "
        "(session_id, benchmark_name, tool_calls, duration_ms, success, recovery_count, continuity_score, "
        "and more) is read from the sidecar's session API once the session has ended and appended as one "
        "JSON line. Exit 0 when every session got its record (and synthetic records match the workload's "
        "ground truth), 1 otherwise, 2 for an invalid scenario.",
    )
    run.add_argument("scenario", help="scenario YAML file (kind: synthetic or command; docs/bench.md)")
    run.add_argument("--sidecar", metavar="URL", default=None,
                     help=f"the sidecar's OTLP/HTTP base URL, which also serves /runtime "
                     f"(default {DEFAULT_SIDECAR}) [env {SIDECAR_ENV}]")
    run.add_argument("--out", metavar="FILE", help="append the records to FILE (default: standard output)")
    run.add_argument("--sessions", type=int, metavar="N",
                     help="override the scenario's session count (synthetic sessions, or command runs)")
    run.add_argument("--seed", type=int, help="override the synthetic workload's seed")
    run.add_argument("--logs", metavar="DIR", help="command scenarios: keep each run's stdout and stderr in DIR")
    run.add_argument("--quiet", action="store_true", help="no per-session progress lines on standard error")
    run.add_argument("--force", action="store_true",
                     help="synthetic scenarios: send even when the sidecar holds sessions no benchmark sent "
                     "(simulated pacing dates the synthetic sessions ahead of now; by default the run refuses "
                     "to mix them with an agent's real sessions)")

    compare = commands.add_parser(
        "compare",
        help="compare two result files; exit 1 on a significant regression",
        description="Compare a candidate run with a baseline, metric by metric: success rate (Fisher's exact "
        "test), duration p50 (Mann-Whitney U) and p95 (bootstrap), mean tool calls, recoveries and "
        "continuity score (Mann-Whitney U). A metric regresses when its change in the bad direction exceeds "
        "its threshold and its one-sided p-value (Holm-adjusted) is below alpha. Exit 0 pass, 1 regression, "
        "2 bad input.",
        epilog="Default thresholds: " + ", ".join(
            f"{m.name}={'off' if m.default_threshold is None else format(m.default_threshold, 'g')}"
            f"{'' if m.default_threshold is None else (' %' if m.change == 'percent' else ' points')}"
            for m in BY_NAME.values()) + ".",
    )
    compare.add_argument("baseline", help="results JSONL of the baseline run")
    compare.add_argument("candidate", help="results JSONL of the candidate run")
    compare.add_argument("--format", choices=["table", "json"], default="table", help="output (default table)")
    compare.add_argument("--thresholds", metavar="FILE", help="YAML with alpha, correction, resamples, seed "
                         "and thresholds (docs/bench.md)")
    compare.add_argument("--threshold", metavar="NAME=VALUE", action="append", default=[],
                         help="set one threshold (percent or points, as above; 'off' = report only); "
                         "repeatable; wins over --thresholds. NAME: " + ", ".join(BY_NAME))
    compare.add_argument("--alpha", type=float, help="significance level (default 0.05)")
    compare.add_argument("--correction", choices=["holm", "none"], help="multiple-testing adjustment (default holm)")
    compare.add_argument("--resamples", type=int, metavar="N", help="bootstrap resamples (default 2000)")
    compare.add_argument("--benchmark", metavar="NAME", help="compare only the records of this benchmark_name "
                         "(required when a file mixes benchmarks)")

    check = commands.add_parser("check", help="validate a scenario file",
                                description="Validate a scenario file; print every problem with its path. "
                                "Exit 0 when valid, 2 otherwise.")
    check.add_argument("scenario", help="scenario YAML file")
    bench.set_defaults(bench_parser=bench)


def main(args: argparse.Namespace) -> int:
    if args.bench_command == "run":
        return run(args)
    if args.bench_command == "compare":
        return compare(args)
    if args.bench_command == "check":
        return check(args)
    args.bench_parser.print_help()
    return EXIT_USAGE


def _scenario(path: str) -> Any:
    """The scenario at ``path``, or None after printing every problem it has."""
    from agentprom.benchmark.scenario import load_scenario

    try:
        return load_scenario(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def check(args: argparse.Namespace) -> int:
    scenario = _scenario(args.scenario)
    if scenario is None:
        return EXIT_USAGE
    print(f"{args.scenario}: valid {scenario.kind} scenario {scenario.name!r}")
    return EXIT_OK


def _open_output(path: str | None) -> TextIO:
    return sys.stdout if path is None else open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by run)


def run(args: argparse.Namespace) -> int:
    from agentprom.benchmark.records import dumps
    from agentprom.benchmark.runner import BenchError, Runner
    from agentprom.benchmark.sidecar import normalize_url

    scenario = _scenario(args.scenario)
    if scenario is None:
        return EXIT_USAGE
    try:
        sidecar = normalize_url(args.sidecar or os.environ.get(SIDECAR_ENV) or DEFAULT_SIDECAR)
    except ValueError as exc:
        print(f"--sidecar: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.sessions is not None and args.sessions < 1:
        print("--sessions must be at least 1", file=sys.stderr)
        return EXIT_USAGE

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        out = _open_output(args.out)
    except OSError as exc:
        print(f"cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE

    def write(record: dict[str, Any]) -> None:
        out.write(dumps(record) + "\n")
        out.flush()

    try:
        runner = Runner(scenario, sidecar, write, sessions=args.sessions, seed=args.seed, progress=progress,
                        log_dir=Path(args.logs) if args.logs else None, force=args.force)
        summary = runner.run()
    except (BenchError, OSError) as exc:
        print(f"bench run: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if out is not sys.stdout:
            out.close()
    print(summary.text(), file=sys.stderr)
    return EXIT_OK if summary.ok else EXIT_FAILURE


def compare(args: argparse.Namespace) -> int:
    from agentprom.benchmark import compare as C
    from agentprom.benchmark.records import RecordsError, read_records

    try:
        thresholds = dict(C.parse_threshold_flag(text) for text in args.threshold)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = C.load_settings(args.thresholds, thresholds, alpha=args.alpha, correction=args.correction,
                                   resamples=args.resamples)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    sides = []
    for path in (args.baseline, args.candidate):
        try:
            records = read_records(path)
        except RecordsError as exc:
            print(exc, file=sys.stderr)
            return EXIT_USAGE
        names = sorted({str(r["benchmark_name"]) for r in records})
        if args.benchmark is not None:
            records = [r for r in records if r["benchmark_name"] == args.benchmark]
            names = [args.benchmark] if records else []
        elif len(names) > 1:
            print(f"{path} mixes benchmarks ({', '.join(names)}): choose one with --benchmark", file=sys.stderr)
            return EXIT_USAGE
        if not records:
            print(f"{path} has no records" + (f" of benchmark {args.benchmark!r}" if args.benchmark else ""),
                  file=sys.stderr)
            return EXIT_USAGE
        sides.append((records, {"path": path, "sessions": len(records), "benchmarks": names}))
    (base, base_info), (cand, cand_info) = sides
    results = C.compare(base, cand, settings)
    document = C.report(results, settings, base_info, cand_info)
    if args.format == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(C.render_table(document, results))
    return EXIT_FAILURE if document["regressions"] else EXIT_OK
