"""``agentprom db upgrade|status`` and ``agentprom report --postgres``: the PostgreSQL store by hand.

The DSN comes from ``--dsn``, else ``AGENTPROM_POSTGRES_DSN``, else the
``storage.postgres`` section of ``--config`` (with its ``password_env`` or
``password_file``). Errors name the database without its password.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parser(sub: Any) -> None:
    db = sub.add_parser(
        "db", help="create, upgrade or inspect the PostgreSQL store's tables",
        description="The PostgreSQL store's schema (docs/stores.md). upgrade: apply the migrations not yet "
        "applied, in order, each in one transaction (the sidecar does this at start unless "
        "storage.postgres.migrate_on_start is false). status: the versions applied and the latest known.",
    )
    db.add_argument("action", choices=["upgrade", "status"])
    _dsn_arguments(db)
    db.add_argument("--to", type=int, metavar="VERSION", help="upgrade: stop at this version (default: the latest)")


def _dsn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", metavar="DSN",
                        help="libpq connection string or postgresql:// URI [env AGENTPROM_POSTGRES_DSN]; "
                        "default: storage.postgres of --config")
    parser.add_argument("--config", metavar="PATH", help="the sidecar's YAML config file (its storage.postgres)")


def postgres_config(args: argparse.Namespace):
    """The PostgresConfig the arguments name; raises SystemExit-worthy ValueError when none."""
    from pydantic import ValidationError

    from agentprom.config.loader import load_config
    from agentprom.config.storage_schema import PostgresConfig

    dsn = args.dsn or os.environ.get("AGENTPROM_POSTGRES_DSN")
    base = load_config(args.config, env={}).storage.postgres.model_dump() if args.config else {}
    if base.get("dsn") and not dsn:
        return PostgresConfig(**base)
    if dsn:
        try:
            return PostgresConfig(**{**base, "dsn": dsn})
        except ValidationError:  # its text would quote the DSN, password and all
            raise ValueError("--dsn / AGENTPROM_POSTGRES_DSN: not a libpq connection string or postgresql:// URI "
                             "(the value is not shown: it may hold a password)") from None
    raise ValueError("no database: give --dsn, set AGENTPROM_POSTGRES_DSN, or --config with storage.postgres.dsn")


async def _connect(config):
    from agentprom.stores.postgres import PostgresStore

    conn = await PostgresStore(config, "cli").connect()  # its errors never quote the password
    await conn.set_autocommit(True)
    return conn


async def _db(args: argparse.Namespace, config) -> int:
    from agentprom.stores import migrations
    from agentprom.stores.secrets import redacted

    conn = await _connect(config)
    async with conn:
        if args.action == "status":
            applied = await migrations.applied_versions(conn)
            print(f"{redacted(config.dsn)}: schema versions applied: {applied or 'none'}; latest known: "
                  f"{migrations.LATEST}")
            return EXIT_OK if applied and applied[-1] == migrations.LATEST else EXIT_FAILURE
        done = await migrations.upgrade(conn, args.to)
        for m in done:
            print(f"applied {m.version}: {m.name}")
        print(f"{redacted(config.dsn)}: schema at version {(await migrations.applied_versions(conn))[-1]}"
              + ("" if done else " (nothing to do)"))
    return EXIT_OK


def _run(work, args: argparse.Namespace) -> tuple[int, Any]:
    """Run ``work(args, config)``: (EXIT_OK, its result), or an exit code and None after saying why."""
    import psycopg

    from agentprom.config.loader import ConfigError
    from agentprom.stores.secrets import SecretError

    try:
        config = postgres_config(args)
        return EXIT_OK, asyncio.run(work(args, config))
    except (ValueError, ConfigError, SecretError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE, None
    except psycopg.OperationalError as exc:
        print(f"cannot connect to PostgreSQL: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILURE, None
    except psycopg.Error as exc:  # e.g. tables not there yet (agentprom db upgrade)
        print(f"PostgreSQL refused the query: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILURE, None


def db_main(args: argparse.Namespace) -> int:
    code, status = _run(_db, args)
    return code if status is None else status


async def _report(args: argparse.Namespace, config) -> dict[str, Any]:
    from agentprom.report import build_report
    from agentprom.sinks.jsonl import ReadStats
    from agentprom.stores.postgres import PostgresStore
    from agentprom.stores.secrets import redacted

    store = PostgresStore(config, "report")
    stats = ReadStats()
    records = []
    try:
        async for record in store.all_records():
            stats.lines += 1
            stats.records += 1
            records.append(record)
    finally:
        await store.close()
    report = build_report(records, stats, args.bucket_seconds)
    report["source"]["database"] = redacted(config.dsn)
    report["source"]["shapes"] = {"snake_case": stats.records} if stats.records else {}
    return report


def report_main(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """The report from the database (``--postgres``), or an exit code and None."""
    args.dsn, args.config = args.postgres, None
    return _run(_report, args)
