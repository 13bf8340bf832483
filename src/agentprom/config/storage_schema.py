"""The configuration schema of the optional stores: PostgreSQL tables and Redis Streams fed from the journal.

Part of the schema (config/schema.py imports ``StorageConfig`` into ``Config``). Defaults live here.
A store is configured by its address (``dsn`` / ``url``, or the environment variables the loader maps
onto them: ``AGENTPROM_POSTGRES_DSN``, ``AGENTPROM_REDIS_URL``); its password may instead come from an
environment variable or a file, so the address can sit in a ConfigMap and the secret in a Secret.
Addresses are never echoed in errors or logs with their password (stores/secrets.py).
"""

from __future__ import annotations

import os
import re

from pydantic import Field, field_validator, model_validator

from agentprom.config.base import _Model

_STREAM = re.compile(r"^[A-Za-z0-9_.:\-{}]{1,200}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Secret(_Model):
    """Where a store's password may come from besides its address."""

    password_env: str = Field(
        "", description="Name of an environment variable holding the password (used instead of one in the address).",
    )
    password_file: str = Field(
        "", description="A file holding the password (its first line; e.g. a mounted Kubernetes Secret).",
    )

    @field_validator("password_env")
    @classmethod
    def _check_env(cls, value: str) -> str:
        if value and not _ENV_NAME.match(value):
            raise ValueError("must be an environment variable name (letters, digits, underscores)")
        return value

    @field_validator("password_file")
    @classmethod
    def _check_file(cls, value: str) -> str:
        if value and not os.access(value, os.R_OK):
            raise ValueError(f"{value!r} is not a readable file")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "_Secret":
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self


class PostgresConfig(_Secret):
    """PostgreSQL tables of sessions, phases, tool and LLM calls (docs/stores.md)."""

    dsn: str = Field(
        "", description="libpq connection string or postgresql:// URI; empty = no PostgreSQL store. The "
        "environment variable AGENTPROM_POSTGRES_DSN overrides it.",
    )
    batch_records: int = Field(500, ge=1, le=100_000, description="Journal records upserted per transaction.")
    connect_timeout_seconds: float = Field(5.0, gt=0, le=300, description="Connecting gives up after this long.")
    query_timeout_seconds: float = Field(
        2.0, gt=0, le=300,
        description="Runtime API reads from the database give up after this long (the answer then says so).",
    )
    migrate_on_start: bool = Field(
        True, description="Create or upgrade the tables at start (`agentprom db upgrade` does it by hand).",
    )

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: str) -> str:
        if value:
            from psycopg.conninfo import conninfo_to_dict  # only when a DSN is given

            try:
                conninfo_to_dict(value)
            except Exception:  # the driver's message may quote the password: never shown
                raise ValueError("not a libpq connection string or postgresql:// URI (the value is not shown: it "
                                 "may hold a password)") from None
        return value


class RedisConfig(_Secret):
    """Redis Streams of runtime events and agent events (docs/stores.md)."""

    url: str = Field("", description="redis:// or rediss:// URL; empty = no Redis store. The environment variable "
                     "AGENTPROM_REDIS_URL overrides it.")
    runtime_events_stream: str = Field("runtime_events", description="Stream of every runtime event.")
    agent_events_stream: str = Field("agent_events", description="Stream of completed agent invocations and LLM calls.")
    maxlen: int = Field(
        100_000, ge=1, description="Each stream is trimmed to about this many entries (XADD MAXLEN ~).",
    )
    batch_records: int = Field(500, ge=1, le=100_000, description="Journal records shipped per pipeline.")
    connect_timeout_seconds: float = Field(5.0, gt=0, le=300, description="Connecting gives up after this long.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (the value is not shown: it may hold "
                             "a password)")
        return value

    @field_validator("runtime_events_stream", "agent_events_stream")
    @classmethod
    def _check_stream(cls, value: str) -> str:
        if not _STREAM.match(value):
            raise ValueError("must be 1-200 letters, digits or _ . : - { }")
        return value

    @model_validator(mode="after")
    def _distinct_streams(self) -> "RedisConfig":
        if self.runtime_events_stream == self.agent_events_stream:
            raise ValueError("runtime_events_stream and agent_events_stream must differ")
        return self


class StorageConfig(_Model):
    """Optional stores fed from the JSONL journal, beside the pipeline (stores/)."""

    source: str = Field(
        "", max_length=200,
        description="This sidecar's name in the stores (rows and events carry it; its journal position is kept "
        "under it); empty = the host name (the pod name on Kubernetes).",
    )
    retry_max_seconds: float = Field(
        30.0, ge=0.1, le=3600, description="A store that fails is retried after 0.1 s, doubling up to this.",
    )
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)

    @property
    def configured(self) -> bool:
        return bool(self.postgres.dsn or self.redis.url)
