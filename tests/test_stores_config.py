"""The storage: configuration, passwords from the environment or a file, and addresses without passwords."""

from __future__ import annotations

import pytest

from agentprom.config.loader import ConfigError, load_config, validate
from agentprom.config.storage_schema import PostgresConfig
from agentprom.stores.secrets import SecretError, password, redacted, scrub


def test_a_store_switches_the_journal_on_in_its_default_directory():
    config = validate({"storage": {"postgres": {"dsn": "postgresql://db/agentprom"}}})
    assert config.journal.enabled and config.journal.directory == "agentprom-data"
    assert not validate({}).journal.enabled
    moved = validate({"storage": {"redis": {"url": "redis://r"}}, "jsonl": {"directory": "/data"}})
    assert moved.journal.enabled and moved.journal.directory == "/data"


def test_a_store_without_its_journal_is_a_clear_error():
    with pytest.raises(ConfigError) as info:
        validate({"storage": {"redis": {"url": "redis://r"}}, "jsonl": {"enabled": False}})
    assert "fed from the JSONL journal" in str(info.value)


def test_the_environment_names_the_stores_and_errors_never_echo_an_address(tmp_path):
    config = load_config(None, env={"AGENTPROM_POSTGRES_DSN": "postgresql://u:pw@db/x",
                                    "AGENTPROM_REDIS_URL": "redis://:pw@r:6379/0"})
    assert config.storage.postgres.dsn == "postgresql://u:pw@db/x" and config.storage.redis.url.startswith("redis")
    path = tmp_path / "agentprom.yaml"
    path.write_text("storage:\n  postgres:\n    dsn: 5\n    password_env: 'not a name'\n"
                    "  redis:\n    url: ['redis://:hunter2@r']\n    runtime_events_stream: agent_events\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = {p.path: p for p in info.value.problems}
    assert {"storage.postgres.dsn", "storage.postgres.password_env", "storage.redis.url"} <= set(problems)
    assert problems["storage.redis.url"].value is None and "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="must differ"):
        validate({"storage": {"redis": {"url": "redis://r", "runtime_events_stream": "agent_events"}}})


def test_passwords_come_from_the_environment_or_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\nignored\n")
    assert password(PostgresConfig(dsn="host=db", password_file=str(secret))) == "s3cret"
    monkeypatch.setenv("PG_PW", "from-env")
    assert password(PostgresConfig(dsn="host=db", password_env="PG_PW")) == "from-env"
    assert password(PostgresConfig(dsn="host=db")) is None
    monkeypatch.delenv("PG_PW")
    with pytest.raises(SecretError, match="PG_PW"):
        password(PostgresConfig(dsn="host=db", password_env="PG_PW"))
    with pytest.raises(ConfigError, match="not both"):
        validate({"storage": {"postgres": {"dsn": "host=db", "password_env": "A", "password_file": str(secret)}}})
    with pytest.raises(ConfigError, match="not a readable file"):
        validate({"storage": {"postgres": {"dsn": "host=db", "password_file": str(tmp_path / "missing")}}})


@pytest.mark.parametrize("address, shown", [
    ("postgresql://agentprom:secret@db:5432/x?sslmode=require", "postgresql://agentprom:***@db:5432/x?sslmode=require"),
    ("postgresql://db/x?password=secret&user=u", "postgresql://db/x?password=***&user=u"),
    ("host=db password=secret user=u", "host=db password=*** user=u"),
    ("host=db password='se cret' user=u", "host=db password=*** user=u"),
    ("redis://:secret@r:6379/0", "redis://:***@r:6379/0"),
    ("redis://r:6379/0", "redis://r:6379/0"),
])
def test_addresses_are_shown_without_their_password(address, shown):
    assert redacted(address) == shown
    assert scrub(f"failed for {address}", "secret") == f"failed for {address.replace('secret', '***')}"


def test_a_dsn_that_does_not_parse_is_refused_without_showing_it():
    for dsn in ("postgresql://u:s3%ZZcret@h/x", "password=s3cr3t word"):
        with pytest.raises(ConfigError) as info:
            validate({"storage": {"postgres": {"dsn": dsn}}})
        assert "not a libpq connection string" in str(info.value) and "s3" not in str(info.value)


def test_the_journal_keeps_rotated_files_for_the_stores():
    with pytest.raises(ConfigError, match="keep at least 1"):
        validate({"storage": {"redis": {"url": "redis://r"}}, "jsonl": {"keep_files": 0}})
