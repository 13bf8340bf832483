"""The PostgreSQL store: journal records upserted into the runtime tables, with the journal position.

``ship`` writes a batch of records and the position after them in one
transaction, so the tables hold every record exactly once however often a
batch is retried: a failed transaction leaves both the rows and the position
as they were, and a batch written again (after a crash between the commit and
the shipper learning of it) upserts the same rows by the ids of their records.
The transaction first locks the journal's position row and checks that it is
where the batch starts (``PositionConflict`` otherwise: another process ships
the same journal). A record the database refuses (a value it cannot hold) must
not stop the journal: the batch is written again record by record, each in a
savepoint, and the refused ones are skipped, logged and counted. Text never
carries NUL (PostgreSQL refuses it) and integers are clamped to 64 bits.

Reads for the runtime API and ``agentprom report`` (``session_records``,
``list_sessions``, ``all_records``) give journal records back (every row keeps
the record it came from), so the callers rebuild sessions exactly as from a
journal. psycopg 3's asyncio connections; one for shipping and one for reads,
so a read never waits behind a long batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from agentprom.config.storage_schema import PostgresConfig
from agentprom.sessions import records as R
from agentprom.sessions.model import LLM_CALL, PHASE, SESSION, TOOL_CALL
from agentprom.sessions.timestamps import iso
from agentprom.stores import migrations, spec
from agentprom.stores.cursor import Position, PositionConflict
from agentprom.stores.secrets import password, redacted, scrub

log = logging.getLogger(__name__)


#: the errors a record's own values cause (class 22 data exceptions, class 23 integrity violations)
RECORD_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)
_BIGINT = 2**63 - 1


def _ts(epoch: float | None) -> datetime | None:
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, timezone.utc)
    except (OverflowError, OSError, ValueError):  # beyond what a datetime holds: no time rather than no row
        return None


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, int) and not isinstance(value, bool) and not -_BIGINT <= value <= _BIGINT:
        return _BIGINT if value > 0 else -_BIGINT
    return value


def _dumps(record: Any) -> str:
    text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    return text.replace("\\u0000", "\\ufffd").replace("\x00", "\ufffd")  # jsonb refuses NUL, escaped or not


def failure_reason(exc: BaseException) -> str:
    """The ``reason`` label of a failed database operation."""
    if isinstance(exc, PositionConflict):
        return "conflict"
    sqlstate = getattr(exc, "sqlstate", None) or ""
    text = str(exc).lower()
    if sqlstate.startswith("28") or "password authentication failed" in text or "authentication" in text:
        return "auth"
    if isinstance(exc, (TimeoutError, psycopg.errors.QueryCanceled)) or "timeout" in text:
        return "timeout"
    if isinstance(exc, psycopg.OperationalError) or isinstance(exc, OSError):
        return "unavailable"
    if isinstance(exc, psycopg.Error):
        return "rejected"
    return "internal"


def _upsert(table: str, key: str, columns: Sequence[str]) -> sql.Composed:
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    values = sql.SQL(", ").join(sql.Placeholder(c) for c in columns)
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in columns if c != key)
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
        sql.Identifier(table), cols, values, sql.Identifier(key), updates)


_TIMES = ("start_time", "end_time", "start_timestamp", "end_timestamp")
#: tool calls and LLM calls read back per session for the runtime API (the newest)
MAX_CALL_RECORDS = 10_000
#: sessions read from the database for one page of GET /runtime/sessions (offset + limit, at most)
MAX_LIST_ROWS = 10_000


def _row(row: dict[str, Any], record: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {key: (_ts(value) if key in _TIMES else _clean(value)) for key, value in row.items()}
    if record is not None:
        out["record"] = Jsonb(record, dumps=_dumps)
    return out


_TOOL_COLUMNS = (*spec.tool_call({"invocation_id": "", "session_id": "", "kind": TOOL_CALL}).keys(), "record")
_LLM_COLUMNS = (*spec.llm_call({"invocation_id": "", "session_id": "", "kind": LLM_CALL}).keys(), "record")
_PHASE_COLUMNS = (*spec.phase({"invocation_id": "", "session_id": "", "kind": PHASE}).keys(), "record")
_METRICS_COLUMNS = tuple(spec.session_metrics({"invocation_id": "", "session_id": "", "kind": SESSION}).keys())
_SESSION_COLUMNS = (*spec.session({"invocation_id": "", "session_id": "", "kind": SESSION}).keys(), "source", "record")

_INSERT_TOOL = _upsert("tool_calls", "record_id", _TOOL_COLUMNS)
_INSERT_LLM = _upsert("llm_calls", "llm_call_id", _LLM_COLUMNS)
_INSERT_PHASE = _upsert("runtime_phases", "record_id", _PHASE_COLUMNS)
_INSERT_METRICS = _upsert("runtime_metrics", "session_id", _METRICS_COLUMNS)
#: an ended session: its record decides every column
_END_SESSION = sql.SQL("{} , updated_at = now()").format(_upsert("runtime_sessions", "session_id", _SESSION_COLUMNS))
#: any other record names its session: the row exists from the first one on, still active
_SEEN_SESSION = sql.SQL("""
INSERT INTO runtime_sessions AS s (session_id, agent_id, model_name, provider, start_timestamp, status, source,
                                   start_record)
VALUES (%(session_id)s, %(agent_id)s, %(model_name)s, %(provider)s, %(start)s, 'active', %(source)s, %(start_record)s)
ON CONFLICT (session_id) DO UPDATE SET
    start_timestamp = LEAST(s.start_timestamp, EXCLUDED.start_timestamp),
    agent_id = COALESCE(s.agent_id, EXCLUDED.agent_id),
    model_name = COALESCE(s.model_name, EXCLUDED.model_name),
    provider = COALESCE(s.provider, EXCLUDED.provider),
    start_record = COALESCE(EXCLUDED.start_record, s.start_record),
    updated_at = now()
""")
_CLAIM_POSITION = """
SELECT inode, head, byte_offset FROM agentprom_journal_positions WHERE journal_id = %s FOR UPDATE
"""
_SAVE_POSITION = """
INSERT INTO agentprom_journal_positions (journal_id, source, inode, head, byte_offset, records_shipped)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (journal_id) DO UPDATE SET source = EXCLUDED.source, inode = EXCLUDED.inode, head = EXCLUDED.head,
    byte_offset = EXCLUDED.byte_offset,
    records_shipped = agentprom_journal_positions.records_shipped + EXCLUDED.records_shipped, updated_at = now()
"""


#: libpq keepalives: a server that vanishes without a word (a partition) is noticed within about a minute
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 15, "keepalives_interval": 5, "keepalives_count": 3,
               "tcp_user_timeout": 45_000}


def conninfo(config: PostgresConfig, statement_timeout: float | None = None) -> tuple[str, dict[str, Any]]:
    """The DSN and the connection keywords (the password when it comes from elsewhere; a server-side
    ``statement_timeout`` when given)."""
    extra: dict[str, Any] = {"connect_timeout": max(1, round(config.connect_timeout_seconds)),
                             "application_name": "agentprom", **_KEEPALIVES}
    if statement_timeout is not None:
        extra["options"] = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
    secret = password(config)
    if secret is not None:
        extra["password"] = secret
    return config.dsn, extra


def secrets_of(dsn: str, extra: dict[str, Any]) -> list[str]:
    """Every form of a password a driver's message could quote: given apart, in the DSN, percent-encoded."""
    found = [extra.get("password") or "", dsn]
    try:
        inline = conninfo_to_dict(dsn).get("password") or ""
    except Exception:  # the config checks the DSN parses; should it not, its whole text is scrubbed
        inline = ""
    found += [inline, quote(inline, safe="")]
    return [value for value in found if value]


class PostgresStore:
    name = "postgres"

    def __init__(self, config: PostgresConfig, source: str, journal_id: str = "") -> None:
        """``source``: the sidecar's name on its rows; ``journal_id``: the journal whose position it keeps."""
        self.config = config
        self.source = source
        self.journal_id = journal_id
        self.address = redacted(config.dsn)
        self._ship: psycopg.AsyncConnection | None = None
        self._read: psycopg.AsyncConnection | None = None

    async def connect(self, statement_timeout: float | None = None) -> psycopg.AsyncConnection:
        dsn, extra = conninfo(self.config, statement_timeout)
        try:
            return await psycopg.AsyncConnection.connect(dsn, **extra)
        except psycopg.Error as exc:
            raise type(exc)(scrub(str(exc), *secrets_of(dsn, extra))) from None

    async def open(self) -> None:
        """Connect for shipping; create or upgrade the tables when configured to."""
        if self._ship is None or self._ship.closed:
            self._ship = await self.connect()
            if self.config.migrate_on_start:
                applied = await migrations.upgrade(self._ship)
                if applied:
                    log.info("PostgreSQL %s: applied schema migrations %s", self.address,
                             ", ".join(f"{m.version} ({m.name})" for m in applied))

    async def close(self) -> None:
        for conn in (self._ship, self._read):
            if conn is not None and not conn.closed:
                await conn.close()
        self._ship = self._read = None

    async def drop_connection(self) -> None:
        """Forget the shipping connection after a failure (the next ``open`` connects again)."""
        conn, self._ship = self._ship, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except Exception:  # a broken connection may fail to close: it is gone either way
                pass

    async def position(self) -> Position:
        assert self._ship is not None
        async with self._ship.transaction():
            cur = await self._ship.execute(
                "SELECT inode, head, byte_offset FROM agentprom_journal_positions WHERE journal_id = %s",
                (self.journal_id,))
            row = await cur.fetchone()
        return Position(row[0], bytes(row[1]), row[2]) if row else Position()

    async def ship(self, records: list[dict[str, Any]], start: Position, end: Position) -> int:
        """Upsert the records and move the position from ``start`` to ``end``, in one transaction;
        return how many records the database refused (skipped)."""
        conn = self._ship
        assert conn is not None
        rejected = 0
        async with conn.transaction():
            cur = await conn.execute(_CLAIM_POSITION, (self.journal_id,))
            row = await cur.fetchone()
            held = Position(row[0], bytes(row[1]), row[2]) if row else Position()
            if held != start:
                raise PositionConflict("the journal's position in PostgreSQL moved: another process ships this "
                                       "journal (or one of the same journal id)")
            try:
                async with conn.transaction():  # a savepoint: a refused value undoes only this
                    await self._write(records)
            except RECORD_ERRORS:
                rejected = await self._write_one_by_one(records)
            await conn.execute(_SAVE_POSITION, (self.journal_id, self.source, end.inode, end.head, end.offset,
                                                len(records) - rejected))
        return rejected

    async def _write_one_by_one(self, records: list[dict[str, Any]]) -> int:
        """Write each record in a savepoint of its own; skip (log) the ones refused; return how many."""
        conn = self._ship
        assert conn is not None
        rejected = 0
        for record in records:
            try:
                async with conn.transaction():
                    await self._write([record])
            except RECORD_ERRORS as exc:
                rejected += 1
                log.warning("PostgreSQL refused journal record %s (%s %s): %s; skipped",
                            record.get("invocation_id"), record.get("kind"), record.get("session_id"),
                            (exc.diag.message_primary or type(exc).__name__)[:200])
        return rejected

    async def _write(self, records: list[dict[str, Any]]) -> None:
        conn = self._ship
        assert conn is not None
        tools, llms, phases, metrics, ended, seen = [], [], [], [], [], {}
        for record in records:
            kind = record["kind"]
            if kind == TOOL_CALL:
                tools.append(_row(spec.tool_call(record), record))
            elif kind == LLM_CALL:
                llms.append(_row(spec.llm_call(record), record))
            elif kind == PHASE:
                phases.append(_row(spec.phase(record), record))
            elif kind == SESSION:
                ended.append({**_row(spec.session(record), record), "source": self.source})
                metrics.append(_row(spec.session_metrics(record)))
            if kind != SESSION:
                self._seen(seen, record)
        async with conn.cursor() as cur:
            if seen:
                await cur.executemany(_SEEN_SESSION, list(seen.values()))
            for statement, rows in ((_INSERT_TOOL, tools), (_INSERT_LLM, llms), (_INSERT_PHASE, phases),
                                    (_END_SESSION, ended), (_INSERT_METRICS, metrics)):
                if rows:
                    await cur.executemany(statement, rows)

    def _seen(self, seen: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
        """Fold a record into the ``runtime_sessions`` row its session gets while it runs."""
        session_id = _clean(record["session_id"])
        start = _ts(R.time_of(record))
        started = record["kind"] == spec.EVENT and record.get("event_type") == "session_started"
        row = seen.get(session_id)
        if row is None:
            seen[session_id] = {"session_id": session_id, "agent_id": _clean(R.text(record, "agent")),
                                "model_name": _clean(R.text(record, "model")) if started else None,
                                "provider": _clean(R.text(record, "provider")) if started else None,
                                "start": start, "source": self.source,
                                "start_record": Jsonb(record, dumps=_dumps) if started else None}
            return
        if start is not None and (row["start"] is None or start < row["start"]):
            row["start"] = start
        if started:
            row.update(model_name=_clean(R.text(record, "model")), provider=_clean(R.text(record, "provider")),
                       start_record=Jsonb(record, dumps=_dumps))
        row["agent_id"] = row["agent_id"] or _clean(R.text(record, "agent"))

    # -- reads (runtime API, report) -------------------------------------------------------

    async def _reader(self) -> psycopg.AsyncConnection:
        if self._read is None or self._read.closed:
            # the server ends a read that outlives the API's patience itself (a cancel from here may wait)
            self._read = await self.connect(statement_timeout=self.config.query_timeout_seconds)
            await self._read.set_autocommit(True)
        return self._read

    async def _query(self, query: Any, params: Any = None) -> list[tuple]:
        try:
            conn = await self._reader()
            cur = await conn.execute(query, params)
            return await cur.fetchall()
        except Exception:
            conn, self._read = self._read, None
            if conn is not None and not conn.closed:
                await conn.close()
            raise

    async def session_records(self, session_id: str, max_calls: int = MAX_CALL_RECORDS) -> list[dict[str, Any]]:
        """The records of one session, in an order that rebuilds it (start, calls, phases, end): its
        latest ``max_calls`` tool calls and as many LLM calls (an ended session's counts come whole
        from its session record), every phase."""
        rows = await self._query("""
            SELECT 0, start_record FROM runtime_sessions WHERE session_id = %(id)s AND start_record IS NOT NULL
            UNION ALL (SELECT 1, record FROM tool_calls WHERE session_id = %(id)s
                       ORDER BY start_time DESC NULLS LAST LIMIT %(calls)s)
            UNION ALL (SELECT 1, record FROM llm_calls WHERE session_id = %(id)s
                       ORDER BY start_time DESC NULLS LAST LIMIT %(calls)s)
            UNION ALL SELECT 2, record FROM runtime_phases WHERE session_id = %(id)s
            UNION ALL SELECT 3, record FROM runtime_sessions WHERE session_id = %(id)s AND record IS NOT NULL
            """, {"id": session_id, "calls": max_calls})
        rows.sort(key=lambda row: (row[0], row[1].get("timestamp") or ""))
        return [record for _order, record in rows]

    async def list_sessions(self, agent: str | None, status: str | None, exclude: Sequence[str],
                            limit: int) -> tuple[list[dict[str, Any]], int, int, int]:
        """Sessions not in ``exclude`` (newest first, at most ``limit``) as summaries, and over all of
        them that match: how many, how many ended, how many completed."""
        where = sql.SQL("NOT (s.session_id = ANY(%(exclude)s))")
        params: dict[str, Any] = {"exclude": list(exclude), "limit": min(limit, MAX_LIST_ROWS)}
        if agent is not None:
            where = sql.SQL("{} AND s.agent_id = %(agent)s").format(where)
            params["agent"] = agent
        if status is not None:
            where = sql.SQL("{} AND s.status = %(status)s").format(where)
            params["status"] = status
        counts = await self._query(sql.SQL("""
            SELECT count(*), count(*) FILTER (WHERE s.status <> 'active'),
                   count(*) FILTER (WHERE s.status = 'completed')
            FROM runtime_sessions s WHERE {}""").format(where), params)
        rows = await self._query(sql.SQL("""
            SELECT s.session_id, s.agent_id, s.model_name, s.provider, s.start_timestamp, s.end_timestamp, s.status,
                   m.total_tool_calls, m.total_phases, m.total_errors, m.total_recoveries, m.continuity_score,
                   (SELECT count(*) FROM tool_calls t WHERE t.session_id = s.session_id),
                   (SELECT count(*) FILTER (WHERE NOT t.success) FROM tool_calls t WHERE t.session_id = s.session_id)
                   + (SELECT count(*) FILTER (WHERE NOT l.success) FROM llm_calls l WHERE l.session_id = s.session_id),
                   (SELECT count(*) FROM runtime_phases p WHERE p.session_id = s.session_id), s.source
            FROM runtime_sessions s LEFT JOIN runtime_metrics m ON m.session_id = s.session_id
            WHERE {} ORDER BY s.start_timestamp DESC NULLS LAST, s.session_id LIMIT %(limit)s""").format(where), params)
        total, ended, completed = counts[0]
        return [_summary(row) for row in rows], total, ended, completed

    async def all_records(self, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
        """Every record in the tables (for ``agentprom report --postgres``)."""
        for table, key in (("tool_calls", "record_id"), ("llm_calls", "llm_call_id"),
                           ("runtime_phases", "record_id"), ("runtime_sessions", "session_id")):
            last = ""
            while True:
                rows = await self._query(sql.SQL("SELECT {key}, record FROM {table} WHERE {key} > %s AND record IS NOT "
                                                 "NULL ORDER BY {key} LIMIT %s").format(
                    key=sql.Identifier(key), table=sql.Identifier(table)), (last, batch))
                for _key, record in rows:
                    yield record
                if len(rows) < batch:
                    break
                last = rows[-1][0]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value.timestamp())


def _summary(row: tuple) -> dict[str, Any]:
    """A session in a list, as the runtime API shows a session it holds (sessions/api.py)."""
    (session_id, agent, model, provider, start, end, status, tool_calls, phases, errors, recoveries, score,
     live_tools, live_errors, live_phases, source) = row
    tool_calls = live_tools if tool_calls is None else tool_calls
    errors = live_errors if errors is None else errors
    phases = live_phases if phases is None else phases
    duration = (end - start).total_seconds() if start and end else None
    return {
        "session_id": session_id, "agent": agent, "status": status, "start": _iso(start), "end": _iso(end),
        "duration_seconds": None if duration is None else round(duration, 3),
        "tool_calls": tool_calls, "phases": phases, "errors": errors, "continuity_score": score,
        "agent_id": agent, "model_name": model, "provider": provider, "start_timestamp": _iso(start),
        "end_timestamp": _iso(end), "completion_status": status,
        "duration_ms": None if duration is None else round(duration * 1000.0, 3),
        "total_tool_calls": tool_calls, "total_phases": phases, "total_errors": errors,
        "total_recoveries": recoveries, "stored_by": source,
    }
