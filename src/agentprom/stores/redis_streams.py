"""The Redis store: runtime events and agent events appended to two streams, with the journal position.

``runtime_events`` carries every runtime event in the specification's event
format (``session_started`` ... ``session_completed``; stores/spec.py), and
``agent_events`` the completed agent invocations and LLM calls. Each entry is
a flat map of strings: ``event_id`` (stable: the same record always makes the
same id), ``event_type``, ``session_id``, ``timestamp`` and the event's
fields (numbers and booleans as JSON). ``XADD ... MAXLEN ~ maxlen`` caps each
stream.

A batch's entries and the journal position after them go in one
``MULTI``/``EXEC`` transaction, so an outage or a restart resumes from the
journal where the last transaction ended. The position key is ``WATCH``ed and
checked first: when another process moved it, the transaction is not run
(``PositionConflict``). Delivery is at least once: a crash
between ``EXEC`` and its reply sends that batch again, with the same event
ids. A session that came from spans has no ``session_started`` record: its
event is made on the session's first record, remembered (bounded) so it is
sent once per process; after a restart it may come again, with the same id.
redis-py's asyncio client.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentprom.config.storage_schema import RedisConfig
from agentprom.stores import spec
from agentprom.stores.cursor import Position, PositionConflict
from agentprom.stores.secrets import password, redacted, scrub

#: sessions whose ``session_started`` this process has sent (oldest forgotten first)
MAX_STARTED = 100_000


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, (PositionConflict, redis.exceptions.WatchError)):
        return "conflict"
    if isinstance(exc, redis.exceptions.AuthenticationError) or "auth" in str(exc).lower():
        return "auth"
    if isinstance(exc, (redis.exceptions.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, (redis.exceptions.ConnectionError, OSError)):
        return "unavailable"
    if isinstance(exc, redis.exceptions.RedisError):
        return "rejected"
    return "internal"


def _flat(event: dict[str, Any]) -> dict[str, str]:
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in event.items()}


class RedisStore:
    name = "redis"

    def __init__(self, config: RedisConfig, source: str, journal_id: str = "") -> None:
        self.config = config
        self.source = source
        self.address = redacted(config.url)
        self.position_key = f"agentprom:journal_position:{journal_id}"
        self._client: aioredis.Redis | None = None
        self._started: OrderedDict[str, None] = OrderedDict()

    async def open(self) -> None:
        if self._client is not None:
            return
        secret = password(self.config)
        # no retries inside the client: the shipper retries with its own backoff, and counts each failure
        extra: dict[str, Any] = {"socket_connect_timeout": self.config.connect_timeout_seconds,
                                 "socket_timeout": max(5.0, self.config.connect_timeout_seconds),
                                 "retry": Retry(NoBackoff(), 0)}
        client = aioredis.Redis.from_url(self.config.url, **extra)
        if secret is not None:  # from_url lets the URL's own password win over a keyword: this one wins
            client.connection_pool.connection_kwargs["password"] = secret
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            raise type(exc)(scrub(str(exc), secret, self.config.url)) from None
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    drop_connection = close

    async def position(self) -> Position:
        assert self._client is not None
        return _position(await self._client.hgetall(self.position_key))

    def events(self, records: list[dict[str, Any]], started: set[str]) -> list[tuple[str, dict[str, Any]]]:
        """(stream, event) for every entry a batch makes, in order; ``started`` collects the sessions
        whose ``session_started`` the batch sends (remembered once it is stored)."""
        out: list[tuple[str, dict[str, Any]]] = []
        runtime, agents = self.config.runtime_events_stream, self.config.agent_events_stream
        sent = self._started
        for record in records:
            session_id = record["session_id"]
            own_start = record["kind"] == spec.EVENT and record.get("event_type") == "session_started"
            if session_id not in sent and session_id not in started:
                started.add(session_id)
                if not own_start:
                    out.append((runtime, spec.session_started(record)))
            elif own_start:
                continue  # already sent for this session
            out.extend((runtime, event) for event in spec.runtime_events(record))
            out.extend((agents, event) for event in spec.agent_events(record))
        return out

    async def ship(self, records: list[dict[str, Any]], start: Position, end: Position) -> int:
        """Append the batch's events and move the position from ``start`` to ``end``, in one
        transaction; return 0 (Redis refuses no record)."""
        assert self._client is not None
        maxlen = self.config.maxlen
        started: set[str] = set()
        position = end
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(self.position_key)
            if _position(await pipe.hgetall(self.position_key)) != start:
                raise PositionConflict("the journal's position in Redis moved: another process ships this journal")
            pipe.multi()
            for stream, event in self.events(records, started):
                event["source"] = self.source
                pipe.xadd(stream, _flat(event), maxlen=maxlen, approximate=True)
            pipe.hset(self.position_key, mapping={"inode": position.inode, "head": position.head.hex(),
                                                  "offset": position.offset})
            await pipe.execute()
        for session_id in started:
            self._started[session_id] = None
            if len(self._started) > MAX_STARTED:
                self._started.popitem(last=False)
        return 0


def _position(saved: dict[bytes, bytes]) -> Position:
    if not saved:
        return Position()
    return Position(int(saved[b"inode"]), bytes.fromhex(saved[b"head"].decode()), int(saved[b"offset"]))
