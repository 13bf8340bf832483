"""The PostgreSQL schema as versioned migrations, applied in order and recorded (`agentprom db upgrade`).

Each migration runs once, in one transaction with its row in
``agentprom_schema_migrations``; PostgreSQL's DDL is transactional, so a
migration is applied whole or not at all. Replicas that start together take a
transaction-scoped advisory lock first, so only one of them applies anything.
Never edit a released migration: add the next one.

Tables and columns carry the runtime specification's names (stores/spec.py).
Every row also keeps the journal record it came from (``record``), so the
runtime API and ``agentprom report`` rebuild sessions from the database exactly
as from a journal.
"""

from __future__ import annotations

from dataclasses import dataclass

#: any constant; pg_advisory_xact_lock takes a bigint
LOCK_KEY = 0x61676E7470726F6D  # "agntprom"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runtime tables", """
CREATE TABLE runtime_sessions (
    session_id text PRIMARY KEY,
    agent_id text,
    model_name text,
    provider text,
    start_timestamp timestamptz,
    end_timestamp timestamptz,
    status text NOT NULL DEFAULT 'active',
    source text NOT NULL,
    start_record jsonb,
    record jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE runtime_metrics (
    session_id text PRIMARY KEY,
    duration_ms double precision,
    total_tool_calls bigint,
    total_phases bigint,
    total_errors bigint,
    total_recoveries bigint,
    completion_status text,
    tool_calls_per_minute double precision,
    mean_tool_latency double precision,
    recovery_rate double precision,
    completion_success_rate double precision,
    context_tokens_used bigint,
    context_tokens_available bigint,
    context_utilization_percent double precision,
    memory_reads bigint,
    memory_writes bigint,
    checkpoint_count bigint,
    context_resets bigint,
    total_llm_calls bigint,
    input_tokens bigint,
    output_tokens bigint,
    cached_tokens bigint,
    cost_usd double precision,
    continuity_score double precision
);
CREATE TABLE runtime_phases (
    record_id text PRIMARY KEY,
    phase_id text NOT NULL,
    session_id text NOT NULL,
    phase_name text,
    start_time timestamptz,
    end_time timestamptz,
    duration_ms double precision,
    tool_calls bigint,
    llm_calls bigint,
    errors bigint,
    recoveries bigint,
    status text,
    record jsonb NOT NULL
);
CREATE TABLE tool_calls (
    record_id text PRIMARY KEY,
    tool_call_id text NOT NULL,
    session_id text NOT NULL,
    phase_id text,
    tool_name text NOT NULL,
    agent_id text,
    start_time timestamptz,
    end_time timestamptz,
    duration_ms double precision,
    success boolean NOT NULL,
    error_type text,
    retry_count bigint NOT NULL,
    input_size_bytes bigint,
    output_size_bytes bigint,
    trace_id text,
    span_id text,
    record jsonb NOT NULL
);
CREATE TABLE llm_calls (
    llm_call_id text PRIMARY KEY,
    session_id text NOT NULL,
    phase_id text,
    agent_id text,
    model_name text,
    provider text,
    start_time timestamptz,
    end_time timestamptz,
    duration_ms double precision,
    success boolean NOT NULL,
    error_type text,
    retry_count bigint NOT NULL,
    input_tokens bigint,
    output_tokens bigint,
    cached_tokens bigint,
    total_tokens bigint,
    cost_usd double precision,
    trace_id text,
    span_id text,
    record jsonb NOT NULL
);
CREATE TABLE agentprom_journal_positions (
    journal_id text PRIMARY KEY,
    source text NOT NULL,
    inode bigint NOT NULL,
    head bytea NOT NULL,
    byte_offset bigint NOT NULL,
    records_shipped bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""),
    Migration(2, "lookup indexes", """
CREATE INDEX runtime_sessions_agent_status ON runtime_sessions (agent_id, status);
CREATE INDEX runtime_sessions_start ON runtime_sessions (start_timestamp DESC, session_id);
CREATE INDEX runtime_phases_session ON runtime_phases (session_id);
CREATE INDEX tool_calls_session ON tool_calls (session_id);
CREATE INDEX llm_calls_session ON llm_calls (session_id);
"""),
)

LATEST = MIGRATIONS[-1].version

_TABLE = """
CREATE TABLE IF NOT EXISTS agentprom_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def applied_versions(conn) -> list[int]:
    """The versions applied so far (empty for a database never upgraded)."""
    cur = await conn.execute("SELECT to_regclass('agentprom_schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return []
    cur = await conn.execute("SELECT version FROM agentprom_schema_migrations ORDER BY version")
    return [version for (version,) in await cur.fetchall()]


async def upgrade(conn, target: int | None = None) -> list[Migration]:
    """Apply the migrations not yet applied, up to ``target`` (default: all); return those applied.
    ``conn`` is a psycopg AsyncConnection (in autocommit or not: this opens its own transaction)."""
    target = LATEST if target is None else target
    if not 0 <= target <= LATEST:
        raise ValueError(f"no schema version {target}: versions are 1 to {LATEST}")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        await conn.execute(_TABLE)
        done = set(await applied_versions(conn))
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done or migration.version > target:
                continue
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO agentprom_schema_migrations (version, name) VALUES (%s, %s)",
                               (migration.version, migration.name))
            applied.append(migration)
    return applied
