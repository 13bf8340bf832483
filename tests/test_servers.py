"""tests/servers.py starts real PostgreSQL and Redis servers, and they fail well.

Everything here talks to the real servers (psycopg, redis-py); nothing is skipped: without the
binaries the fixtures fail, pointing at scripts/test.sh, which installs them.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from tests import servers
from tests.conftest import ROOT
from tests.servers import (PG_PASSWORD, PG_SYSTEM_USER, PG_USER, PostgresServer, RedisServer, ServerError,
                           no_retry)


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def process_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def listening(port: int) -> socket.socket:
    """Listen on 127.0.0.1:port (the caller closes it). SO_REUSEADDR, as the servers bind: a
    stopped server's port may still have connections in TIME_WAIT, yet no two sockets can
    listen on it."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    return holder


# --------------------------------------------------------------------------------------------
# PostgreSQL


def test_postgres_password_login_runs_a_query(postgres_server):
    assert postgres_server.dsn == f"postgresql://agentprom:secret-pw@127.0.0.1:{postgres_server.port}/agentprom"
    assert postgres_server.dsn_without_password == f"postgresql://agentprom@127.0.0.1:{postgres_server.port}/agentprom"
    with psycopg.connect(postgres_server.dsn) as conn:
        user, database, total, address = conn.execute(
            "SELECT current_user, current_database(), 40 + 2, inet_server_addr()::text").fetchone()
        super_, createdb = conn.execute(
            "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
    assert (user, database, total, address) == ("agentprom", "agentprom", 42, "127.0.0.1/32")
    assert (super_, createdb) == (False, True)


def test_postgres_uses_scram_over_tcp(postgres_server):
    with psycopg.connect(postgres_server.admin_dsn) as admin:
        stored = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (PG_USER,)).fetchone()[0]
        rules = admin.execute("SELECT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL").fetchall()
    assert stored.startswith("SCRAM-SHA-256$")
    assert ("host", "scram-sha-256") in rules
    assert {method for kind, method in rules if kind == "host"} == {"scram-sha-256"}


def test_postgres_refuses_a_wrong_or_missing_password(postgres_server, monkeypatch, tmp_path):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres_server.dsn_for("agentprom", password="wrong-pw"), connect_timeout=10)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(postgres_server.dsn_without_password, connect_timeout=10)
    psycopg.connect(postgres_server.dsn_without_password, password=PG_PASSWORD).close()


def test_postgres_runs_as_an_unprivileged_user(postgres_server):
    uid = process_uid(postgres_server.pid)
    expected = pwd.getpwnam(PG_SYSTEM_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert uid == expected != 0
    assert postgres_server.data_dir.stat().st_uid == uid
    with psycopg.connect(postgres_server.dsn) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert process_uid(backend) == uid


def test_pg_database_is_new_empty_and_owned_by_agentprom(pg_database, postgres_server):
    name = pg_database.rsplit("/", 1)[1]
    assert name.startswith("test_") and pg_database == postgres_server.dsn_for(name)
    with psycopg.connect(pg_database) as conn:
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
                             ).fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        conn.execute("CREATE TABLE spans (id int PRIMARY KEY)")
        conn.execute("INSERT INTO spans VALUES (1)")
    assert (owner, tables) == (PG_USER, 0)


def test_drop_database_ends_its_sessions(postgres_server):
    dsn = postgres_server.create_database("test_dropped_while_connected")
    left_open = psycopg.connect(dsn)
    try:
        postgres_server.drop_database("test_dropped_while_connected")
        with pytest.raises(psycopg.OperationalError):
            left_open.execute("SELECT 1")
    finally:
        left_open.close()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(dsn)


def test_postgres_stop_start_keeps_data_on_the_same_port(fresh_postgres):
    port = fresh_postgres.port
    with psycopg.connect(fresh_postgres.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('before stop')")
    survivor = psycopg.connect(fresh_postgres.dsn)
    try:
        fresh_postgres.stop()
        assert fresh_postgres.pid is None
        with pytest.raises(psycopg.OperationalError):  # the open session was ended by the shutdown
            survivor.execute("SELECT 1")
        assert survivor.closed
    finally:
        survivor.close()
    with pytest.raises(psycopg.OperationalError, match="refused"):
        psycopg.connect(fresh_postgres.dsn, connect_timeout=5)

    fresh_postgres.start()
    assert fresh_postgres.port == port
    with psycopg.connect(fresh_postgres.dsn) as conn:  # a client reconnects to the same DSN
        assert conn.execute("SELECT v FROM kept").fetchall() == [("before stop",)]


def test_postgres_kill_is_immediate_and_start_recovers(fresh_postgres):
    with psycopg.connect(fresh_postgres.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS v")
    pid = fresh_postgres.pid
    fresh_postgres.kill()
    assert not alive(pid) and fresh_postgres.pid is None
    assert "immediate shutdown request" in fresh_postgres.log_tail()
    fresh_postgres.start()
    assert "automatic recovery in progress" in fresh_postgres.log_tail()
    with psycopg.connect(fresh_postgres.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_restart_on_a_taken_port_fails_with_the_log(fresh_postgres):
    port = fresh_postgres.port
    fresh_postgres.stop()
    holder = listening(port)
    try:
        with pytest.raises(ServerError, match="(?s)not running.*Address already in use"):
            fresh_postgres.start()
    finally:
        holder.close()
    assert fresh_postgres.port == port
    fresh_postgres.start()
    assert fresh_postgres.port == port


def test_postgres_that_cannot_start_reports_its_log(tmp_path):
    with pytest.raises(ServerError, match='invalid value for parameter "shared_buffers"') as failed:
        PostgresServer(tmp_path, settings={"shared_buffers": "plenty"})
    assert "PostgreSQL on port" in str(failed.value)
    assert not (tmp_path / "postgres").exists()  # closed: nothing left behind


# --------------------------------------------------------------------------------------------
# Redis


def test_redis_ping_xadd_xlen(redis_server, request):
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_server.url, decode_responses=True, retry=no_retry())
    stream = f"stream:{request.node.name}"
    try:
        assert client.ping() is True
        ids = [client.xadd(stream, {"span": str(i), "agent": "planner"}) for i in range(3)]
        assert client.xlen(stream) == 3
        assert [(i, fields) for i, fields in client.xrange(stream)] == [
            (ids[i], {"span": str(i), "agent": "planner"}) for i in range(3)]
    finally:
        client.delete(stream)
        client.close()


def test_redis_with_a_password_refuses_other_clients(make_redis_server):
    server = make_redis_server(password="secret-pw")
    assert server.url == f"redis://:secret-pw@127.0.0.1:{server.port}/0"
    assert redis.Redis.from_url(server.url, retry=no_retry()).ping() is True
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port, retry=no_retry()).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port, password="wrong", retry=no_retry()).ping()


def test_persistent_redis_keeps_a_stream_over_stop_start(make_redis_server):
    server = make_redis_server(persistent=True)
    port = server.port
    client = redis.Redis.from_url(server.url, retry=no_retry())
    entries = [client.xadd("events", {"n": str(n)}) for n in range(5)]
    before = client.xrange("events")
    server.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    server.start()
    assert server.port == port
    client = redis.Redis.from_url(server.url, retry=no_retry())
    assert client.xlen("events") == 5
    assert client.xrange("events") == before and [e for e, _ in before] == entries


def test_default_redis_forgets_over_stop_start(fresh_redis):
    client = redis.Redis.from_url(fresh_redis.url, retry=no_retry())
    client.xadd("events", {"n": "1"})
    port = fresh_redis.port
    fresh_redis.stop()
    fresh_redis.start()
    assert fresh_redis.port == port
    assert redis.Redis.from_url(fresh_redis.url, retry=no_retry()).exists("events") == 0


def test_redis_kill_and_restart(fresh_redis):
    pid = fresh_redis.pid
    fresh_redis.kill()
    assert not alive(pid) and fresh_redis.process.returncode == -9
    fresh_redis.start()
    assert redis.Redis.from_url(fresh_redis.url, retry=no_retry()).ping() is True


def test_first_start_retries_once_on_another_port_when_the_free_port_was_taken(tmp_path, monkeypatch):
    holder = listening(0)
    taken = holder.getsockname()[1]
    picks = iter([taken])
    real_free_port = servers.free_port
    monkeypatch.setattr(servers, "free_port", lambda: next(picks, None) or real_free_port())
    try:
        with RedisServer(tmp_path) as server:
            assert server.port not in (None, taken)
            assert redis.Redis.from_url(server.url, retry=no_retry()).ping() is True
            assert "Address already in use" in server.log_path.read_text()
    finally:
        holder.close()


def test_redis_restart_on_a_taken_port_fails_and_later_succeeds(fresh_redis):
    port = fresh_redis.port
    fresh_redis.stop()
    holder = listening(port)
    try:
        with pytest.raises(ServerError, match="(?s)Redis on port .*Address already in use"):
            fresh_redis.start()
    finally:
        holder.close()
    fresh_redis.start()
    assert fresh_redis.port == port


def test_wait_ready_times_out_with_the_log_tail(make_redis_server):
    server = make_redis_server(password="secret-pw")
    server.password = "not-the-servers"  # the readiness probe can no longer log in: never ready
    with pytest.raises(ServerError, match=r"(?s)Redis on port \d+ not ready after 0.3 s.*Ready to accept"):
        server.wait_ready(timeout=0.3)


def test_redis_that_cannot_start_reports_its_log(tmp_path):
    with pytest.raises(ServerError, match="(?s)not running.*appendfsync"):
        RedisServer(tmp_path, appendfsync="sometimes")


# --------------------------------------------------------------------------------------------
# binaries and cleanup


def test_missing_binaries_fail_pointing_at_the_install_script(tmp_path):
    with pytest.raises(servers.ServerBinaryMissing, match="scripts/test.sh installs them"):
        servers.postgres_bindir(root=tmp_path, path=str(tmp_path))
    with pytest.raises(servers.ServerBinaryMissing, match="scripts/test.sh installs them"):
        servers.redis_server_binary(path=str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="redis-server not found"):
        servers._server_or_fail(lambda: servers.redis_server_binary(path=str(tmp_path)))


def test_the_newest_postgres_version_is_used(tmp_path):
    for version, tools in (("9.6", ("postgres", "initdb")), ("15", ("postgres", "initdb")),
                           ("16", ("postgres", "initdb")), ("17", ("postgres",))):  # 17: no initdb
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        for name in tools:
            (bindir / name).write_text("#!/bin/sh\nexit 1\n")
            (bindir / name).chmod(0o755)
    assert servers.postgres_bindir(root=tmp_path) == tmp_path / "16" / "bin"


def test_servers_left_running_are_stopped_at_exit(tmp_path):
    program = (
        "import sys\n"
        "from tests.servers import PostgresServer, RedisServer\n"
        "pg, r = PostgresServer(sys.argv[1]), RedisServer(sys.argv[1], persistent=True)\n"
        "print(pg.pid, pg.base, r.pid, r.base, flush=True)\n"
        "raise RuntimeError('the test run failed')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 1 and "the test run failed" in done.stderr, done.stderr
    pg_pid, pg_base, redis_pid, redis_base = done.stdout.split()
    assert not alive(int(pg_pid)) and not alive(int(redis_pid))
    assert not Path(pg_base).exists() and not Path(redis_base).exists()
