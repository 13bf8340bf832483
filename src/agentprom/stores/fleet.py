"""Answer the runtime API for sessions this process does not hold, from the PostgreSQL store.

Any replica of a gateway, or a sidecar restarted without its journal, sees the
whole fleet's sessions: a session's records are read back from the database
(every row keeps its journal record) and replayed into a scratch tracker, as
a journal is replayed at start (sessions/restore.py), so the answer has the
same shape and the same numbers as from the replica that saw the session.
The local tracker always wins for a session it holds. Reads are bounded: a
session's newest 10,000 tool calls and LLM calls, and the list reaches 10,000
sessions deep into the database (stores/postgres.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from agentprom.clock import Clock
from agentprom.config.schema import SessionsConfig
from agentprom.metrics.series_store import SeriesStore
from agentprom.sessions.model import Session
from agentprom.sessions.tracker import SessionTracker
from agentprom.stores.service import Stores


class Fleet:
    def __init__(self, stores: Stores, config: SessionsConfig, clock: Clock) -> None:
        assert stores.postgres is not None
        self.stores = stores
        self.postgres = stores.postgres
        self.config = config
        self.clock = clock

    def rebuild(self, records: list[dict[str, Any]]) -> Session | None:
        """The session the records make, replayed as a journal is at start (nothing counted)."""
        if not records:
            return None
        scratch = SessionTracker(SeriesStore(clock=self.clock), self.config, self.clock)
        for record in records:
            scratch.restore(record)
        s = scratch.get(records[0]["session_id"])
        if s is not None:
            s.restored = True  # not held by this process: read back
        return s

    async def session(self, session_id: str) -> Session | None:
        """The session from the database (None when it is not there); raises StoreUnavailable."""
        records = await self.stores.read(f"session {session_id!r}", self.postgres.session_records(session_id))
        if len(records) < 200:
            return self.rebuild(records)
        return await asyncio.to_thread(self.rebuild, records)  # a long session: replayed off the loop

    async def sessions(self, agent: str | None, status: str | None, exclude: list[str],
                       limit: int) -> tuple[list[dict[str, Any]], int, int, int]:
        """Summaries of the database's sessions not in ``exclude`` (newest first), and their counts:
        matching, ended, completed."""
        return await self.stores.read("the session list",
                                      self.postgres.list_sessions(agent, status, exclude, limit))
