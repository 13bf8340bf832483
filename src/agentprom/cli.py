"""The ``agentprom`` command line: ``serve``, ``check-config``, ``docs``, ``generate``, ``report``, ``bench``, ``demo``, ``db``.

Exit codes: 0 success, 1 runtime failure (e.g. a port in use), 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from agentprom import __version__
from agentprom.config.loader import CONFIG_ENV, ENV_OVERRIDES, ConfigError, load_config

log = logging.getLogger("agentprom")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _env_help(dotted: str) -> str:
    for name, (path, _flag) in ENV_OVERRIDES.items():
        if path == dotted:
            return f" [env {name}]"
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentprom",
        description="OpenTelemetry-to-Prometheus sidecar for AI agents: receives OTLP spans and "
        "exposes agent, LLM, token and tool metrics on /metrics.",
    )
    parser.add_argument("--version", action="version", version=f"agentprom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the sidecar",
        description="Run the sidecar. Precedence: flags > AGENTPROM_* environment > config file > defaults.",
    )
    serve.add_argument("--config", metavar="PATH", help=f"YAML config file [env {CONFIG_ENV}]")
    serve.add_argument("--otlp-grpc", metavar="HOST:PORT",
                       help="OTLP/gRPC listen address (default 127.0.0.1:4317; port 0 = any free port)"
                       + _env_help("server.otlp_grpc"))
    serve.add_argument("--otlp-http", metavar="HOST:PORT",
                       help="OTLP/HTTP listen address (default 127.0.0.1:4318)" + _env_help("server.otlp_http"))
    serve.add_argument("--metrics", metavar="HOST:PORT",
                       help="/metrics listen address (default 0.0.0.0:9464)" + _env_help("server.metrics"))
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                       help="log level (default info)" + _env_help("log.level"))

    check = sub.add_parser(
        "check-config",
        help="validate a config file and print every problem",
        description="Validate a config file. Exits 0 when valid; otherwise prints every problem "
        "with its YAML path, the bad value and the rule, and exits 2.",
    )
    check.add_argument("path", help="YAML config file")

    report = sub.add_parser(
        "report",
        help="aggregate a JSONL invocation log",
        description="Aggregate a JSONL invocation log (a file, or the log directory with its rotated "
        "files): totals, invocations/retries/tokens/cost by agent and by phase, success rate, "
        "average duration, escalations, and parallelism over time. Reads snake_case (the sidecar's) "
        "and camelCase (invocationId, durationMs, exitCode, ...) records and says which it saw. "
        "Malformed lines (such as a line torn by a crash) are skipped and counted.",
    )
    report.add_argument("path", nargs="?", help="invocations.jsonl, or the directory holding it")
    report.add_argument("--postgres", metavar="DSN",
                        help="aggregate the PostgreSQL store's records instead of a file (every sidecar that "
                        "ships to it; docs/stores.md)")
    report.add_argument("--format", choices=["json", "table"], default="table", help="output format (default table)")
    report.add_argument("--bucket-seconds", type=float, default=None, metavar="S",
                        help="width of the parallelism buckets (default: the table picks a round width from the "
                        "log's span that keeps about 20 buckets, a screenful, and folds runs of empty buckets "
                        "into one line; --format json keeps the full series in 60 s buckets, widened to keep "
                        "at most 1000)")

    docs = sub.add_parser("docs", help="print generated documentation", description="Print generated docs.")
    docs.add_argument("what", choices=["metrics"], help="metrics: the metric catalog (docs/metrics.md)")
    docs.add_argument("--write", metavar="PATH", help="write to PATH instead of standard output")
    docs.add_argument("--config", metavar="PATH",
                      help="document the catalog as this configuration exposes it (its extra dimensions' labels)")

    generate = sub.add_parser(
        "generate", help="write the rules of a configuration's extra dimensions",
        description="Write what the configuration's extra dimensions (dimensions:) need beside the shipped "
        "files. rules: a Prometheus rule file with a budget series and an alert per budgeted value "
        "(dimensions[].budgets); load it beside rules/*.yml. The Helm chart renders the same rules from "
        "config.dimensions itself; the shipped 'Spend by dimension' dashboard needs nothing generated.",
    )
    generate.add_argument("what", choices=["rules"])
    generate.add_argument("--config", metavar="PATH", required=True, help="the sidecar's YAML config file")
    generate.add_argument("--write", metavar="PATH", help="the file to write (default: standard output)")

    from agentprom.benchmark.cli import add_parser as add_bench_parser

    add_bench_parser(sub)
    from agentprom.demo.cli import add_parser as add_demo_parser

    add_demo_parser(sub)
    from agentprom.stores.cli import add_parser as add_db_parser

    add_db_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "check-config":
        return check_config(args.path)
    if args.command == "docs":
        return docs(args)
    if args.command == "report":
        return report(args)
    if args.command == "generate":
        return generate(args)
    if args.command == "bench":
        from agentprom.benchmark.cli import main as bench_main

        return bench_main(args)
    if args.command == "db":
        from agentprom.stores.cli import db_main

        return db_main(args)
    if args.command == "demo":
        from agentprom.demo.cli import main as demo_main

        return demo_main(args)
    parser.print_help()
    return EXIT_USAGE


def check_config(path: str) -> int:
    try:
        load_config(path, env={})
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    print(f"{path}: configuration is valid")
    return EXIT_OK


def report(args: argparse.Namespace) -> int:
    import json

    from agentprom.report import DEFAULT_BUCKET_SECONDS, render_table, report_path

    if args.bucket_seconds is not None and not args.bucket_seconds > 0:
        print("--bucket-seconds must be greater than 0", file=sys.stderr)
        return EXIT_USAGE
    width = args.bucket_seconds
    if width is None and args.format == "json":
        width = DEFAULT_BUCKET_SECONDS
    if (args.path is None) == (args.postgres is None):
        print("give a log path or --postgres DSN (one of them)", file=sys.stderr)
        return EXIT_USAGE
    if args.postgres is not None:
        from agentprom.stores.cli import report_main

        args.bucket_seconds = width
        code, result = report_main(args)
        if result is None:
            return code
    else:
        try:
            result = report_path(args.path, width)
        except OSError as exc:
            print(f"cannot read {args.path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.format == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(render_table(result))
    return EXIT_OK


def docs(args: argparse.Namespace) -> int:
    from agentprom.dimensions import with_dimensions
    from agentprom.metrics.catalog import CATALOG, render_markdown

    dimensions = ()
    if args.config:
        try:
            dimensions = load_config(args.config, env={}).dimensions
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return EXIT_USAGE
    text = render_markdown(with_dimensions(CATALOG, dimensions), dimensions)
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def generate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, env={})
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    from agentprom.dimension_rules import render_rules

    text = render_rules(config.dimensions)
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def serve(args: argparse.Namespace) -> int:
    from agentprom.logs import setup_logging

    path = args.config or os.environ.get(CONFIG_ENV) or None
    flags = {
        "server.otlp_grpc": args.otlp_grpc,
        "server.otlp_http": args.otlp_http,
        "server.metrics": args.metrics,
        "log.level": args.log_level,
    }
    try:
        config = load_config(path, flags=flags)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    setup_logging(config.log.level, config.log.format)
    from agentprom import conventions  # the classification in use (conventions/classify.py)
    from agentprom.context import batch as context_batch  # the trace context's batch path (context/batch.py)
    from agentprom.receiver import decode  # the trace decoder in use (receiver/decode.py)
    from agentprom.sessions import span_sessions  # the session tracker's span loop (sessions/span_sessions.py)

    log.info("agentprom %s starting (config: %s; trace decoder: %s; classification: %s; trace context: %s; "
             "sessions: %s)", __version__, path or "built-in defaults",
             *("compiled" if part.COMPILED else "Python" for part in (decode, conventions, context_batch, span_sessions)))
    raise_open_files_limit()
    try:
        asyncio.run(_run(config, lambda: load_config(path, flags=flags)))
    except OSError as exc:
        message = exc.strerror if exc.strerror and exc.errno else str(exc)
        if exc.errno == errno.EADDRINUSE or "address already in use" in message.lower():
            message += ("; another process listens there: stop it, or choose another address with "
                        "--otlp-grpc, --otlp-http, --metrics (or AGENTPROM_OTLP_GRPC, AGENTPROM_OTLP_HTTP, "
                        "AGENTPROM_METRICS; port 0 picks a free one)")
        log.error("cannot start: %s", message)
        return EXIT_FAILURE
    return EXIT_OK


#: soft open-files limit taken when the hard limit is "unlimited" (Linux's default fs.nr_open)
_NOFILE_UNLIMITED = 1024 * 1024


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (every connection costs a descriptor);
    return (soft limit before, soft limit now). Without ``resource`` (not POSIX) nothing changes."""
    try:
        import resource
    except ImportError:
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NOFILE_UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files limit stays %d (cannot raise it to %d: %s)", soft, target, exc)
            return soft, soft
        log.info("open files limit raised from %d to %d (the hard limit)", soft, target)
        return soft, target
    log.info("open files limit: %d", soft)
    return soft, soft


async def _run(config, reload_config=None) -> None:
    from agentprom.app import App

    app = App(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    if reload_config is not None and hasattr(signal, "SIGHUP"):
        loop.add_signal_handler(signal.SIGHUP, reload_pricing, app, reload_config)
    await app.start()
    tune_gc()
    try:
        await stop.wait()
    finally:
        await app.stop()


#: generation-0 allocations between young collections (CPython's default is 700)
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running ingest process.

    Everything built at start-up (modules, config, catalog, the App) lives as long as the
    process: ``gc.freeze()`` takes it out of every later collection. A higher generation-0
    threshold lets the objects of a decoded batch (spans, their attribute dicts) die before
    a young collection traces them, instead of being traced several times per batch and
    promoted. Measured with bench/ingest.py: about 10 % less CPU per span (README,
    Performance). Only ``serve`` calls it: tests and embedders keep CPython's defaults.
    """
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def reload_pricing(app, reload_config) -> bool:
    """SIGHUP: read the config file again and rebuild the price table from its ``pricing`` section
    (the table file re-read too); only pricing changes, the rest of the config stays as started.
    A config or table that does not validate is logged and counted, and the old table stays."""
    log.info("received SIGHUP: reloading the price table")
    try:
        settings = reload_config().pricing
    except ConfigError as exc:
        return app.pricing.refuse(str(exc))
    except Exception as exc:  # noqa: BLE001 - a signal handler must not take the sidecar down
        return app.pricing.refuse(f"{type(exc).__name__}: {exc}")
    return app.pricing.reload(settings)


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s", sig.name)
    stop.set()
