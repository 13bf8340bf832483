"""Real PostgreSQL and Redis servers for the tests (the project uses no mocks).

``PostgresServer`` and ``RedisServer`` start the real server binaries on a free TCP port of
127.0.0.1, with every file (data, configuration, log, unix socket) in a private directory, and
manage them as child processes of the test run: ``stop()`` / ``start()`` (same port, same data),
``kill()``, ``close()``. The pytest fixtures at the end are imported by tests/conftest.py.

The binaries come from Debian's ``postgresql`` and ``redis-server`` packages, which
scripts/test.sh installs when they are missing; without them the fixtures fail (never skip).

PostgreSQL refuses to run as root. When the tests run as root, the cluster is owned and run by an
unprivileged system user, ``agentprom-pg`` (created with ``useradd --system`` if missing); its
directory is then outside pytest's temporary directory when that one is private to root.

Cleanup: every server still running when the interpreter exits is stopped and its directory
removed (atexit), including after failed tests; the fixtures close theirs in their finalizers.
"""

from __future__ import annotations

import atexit
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from psycopg import sql
from psycopg.conninfo import make_conninfo

PG_USER = "agentprom"
PG_PASSWORD = "secret-pw"
PG_DATABASE = "agentprom"
PG_SUPERUSER = "postgres"  # bootstrap superuser, reachable only through the private unix socket
PG_SYSTEM_USER = "agentprom-pg"  # the unprivileged account that runs PostgreSQL when the tests run as root
PG_ROOT = Path("/usr/lib/postgresql")  # Debian: /usr/lib/postgresql/<major>/bin
INSTALL_HINT = ("scripts/test.sh installs them (Debian packages postgresql and redis-server; "
                "it needs root for apt-get)")

# Fast, test-only settings (never for real data: no crash safety).
PG_TEST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "50",
    "password_encryption": "scram-sha-256",
    "lc_messages": "C",
    "logging_collector": "off",
}
PG_HBA = f"""\
# written by tests/servers.py
local   all   {PG_SUPERUSER}   trust
local   all   all              scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
"""
_UNIX_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; libpq and PostgreSQL refuse longer


class ServerError(RuntimeError):
    """A test server did not start, or stopped badly; the message ends with its log tail."""


class ServerBinaryMissing(ServerError):
    """The server's binaries are not installed."""


# --------------------------------------------------------------------------------------------
# binaries, ports, users, directories


def postgres_bindir(root: Path = PG_ROOT, path: str | None = None) -> Path:
    """The newest ``root/<version>/bin`` holding ``postgres`` and ``initdb``, else the PATH's."""
    versions = []
    for bindir in root.glob("*/bin"):
        if all(os.access(bindir / name, os.X_OK) for name in ("postgres", "initdb")):
            key = tuple(int(part) if part.isdigit() else -1 for part in bindir.parent.name.split("."))
            versions.append((key, bindir))
    if versions:
        return max(versions)[1]
    postgres = shutil.which("postgres", path=path)
    initdb = shutil.which("initdb", path=path)
    if postgres and initdb:
        return Path(os.path.realpath(postgres)).parent
    raise ServerBinaryMissing(
        f"PostgreSQL server binaries (postgres, initdb) not found in {root}/*/bin or on the PATH: {INSTALL_HINT}")


def redis_server_binary(path: str | None = None) -> str:
    found = shutil.which("redis-server", path=path)
    if not found:
        raise ServerBinaryMissing(f"redis-server not found on the PATH: {INSTALL_HINT}")
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now (the kernel's pick for port 0); it may be taken
    before the server binds it, so the first start retries once on another port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunAs:
    """The unprivileged account a server runs as (only when the tests run as root)."""

    def __init__(self, name: str) -> None:
        entry = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, entry.pw_uid, entry.pw_gid

    def popen_args(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown_tree(self, top: Path) -> None:
        os.chown(top, self.uid, self.gid)
        for directory, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.chown(os.path.join(directory, name), self.uid, self.gid, follow_symlinks=False)


_user_lock = threading.Lock()


def postgres_run_as(name: str = PG_SYSTEM_USER) -> RunAs | None:
    """None when not root; else the unprivileged system user, created if missing."""
    if os.geteuid() != 0:
        return None
    with _user_lock:
        try:
            return RunAs(name)
        except KeyError:
            pass
        useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
        if not useradd:
            raise ServerError(f"running as root, PostgreSQL needs an unprivileged user {name!r}, "
                              "and useradd is not installed to create it")
        nologin = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
        done = subprocess.run([useradd, "--system", "--user-group", "--no-create-home",
                               "--home-dir", "/nonexistent", "--shell", nologin, name],
                              capture_output=True, text=True)
        try:
            return RunAs(name)  # also when a concurrent run created it first
        except KeyError:
            raise ServerError(f"useradd {name} failed ({done.returncode}): {done.stderr.strip()}") from None


def _reachable_by_others(path: Path) -> bool:
    """Every directory from / down to path can be traversed by any user."""
    path = path.resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in (path, *path.parents))


def private_server_dir(tmp_dir: Path, name: str, run_as: RunAs | None) -> Path:
    """A new 0700 directory for one server (owned by run_as if given): tmp_dir/name when the
    server's user can reach it and unix socket paths fit, else a new directory in the system
    temporary directory (then linked from tmp_dir/name)."""
    tmp_dir = Path(tmp_dir).resolve()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    inside = tmp_dir / name
    fits = len(str(inside / ".s.PGSQL.65535")) <= _UNIX_SOCKET_PATH_MAX
    if fits and (run_as is None or _reachable_by_others(tmp_dir)) and not os.path.lexists(inside):
        inside.mkdir(mode=0o700)
        directory = inside
    else:
        system_tmp = Path(tempfile.gettempdir())
        if run_as is not None and not _reachable_by_others(system_tmp):
            system_tmp = Path("/tmp")
        directory = Path(tempfile.mkdtemp(prefix=f"agentprom-{name}-", dir=system_tmp))
        if not os.path.lexists(inside):
            inside.symlink_to(directory)  # for whoever looks at the test's tmp_path
    if run_as is not None:
        os.chown(directory, run_as.uid, run_as.gid)
    os.chmod(directory, 0o700)
    return directory


def _server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and not k.startswith("LC_")}
    env.update(LC_ALL="C", LANG="C", **extra)
    return env


# --------------------------------------------------------------------------------------------
# process management shared by both servers

_live: set["_ManagedServer"] = set()
_live_lock = threading.Lock()


class _ManagedServer:
    """A server process, a child of the test run, on a fixed port once first started."""

    kind = "server"

    def __init__(self, startup_timeout: float) -> None:
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.base: Path | None = None
        self.log_path: Path | None = None
        self._log_offset = 0
        self._closed = False
        self._owner_pid = os.getpid()
        with _live_lock:
            _live.add(self)

    # to be provided by the server classes
    def _spawn(self, stdout: Any) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def _probe(self) -> bool:
        raise NotImplementedError

    # ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running else None

    def start(self) -> "_ManagedServer":
        """Start the server and wait until it serves. The first start picks a free port (and
        retries once on another if it was taken meanwhile); later starts reuse that port."""
        if self._closed:
            raise ServerError(f"{self!r} is closed")
        if self.running:
            return self
        attempts = 2 if self.port is None else 1
        for attempt in range(attempts):
            if attempts == 2:
                self.port = free_port()
            self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                self.process = self._spawn(log)
            try:
                self.wait_ready(self.startup_timeout)
                return self
            except ServerError:
                self._terminate(signal.SIGKILL, 5)
                if attempt + 1 < attempts and "Address already in use" in self.log_tail():
                    continue
                raise
        raise AssertionError("unreachable")

    def _start_or_close(self) -> None:
        # A server that never came up is not the caller's to close: the error has its log tail.
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the server answers, up to timeout seconds; raise ServerError with the
        log's tail if it exits or does not come up in time."""
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            if not self.running:
                code = self.process.returncode if self.process else None
                raise ServerError(f"{self.kind} on port {self.port} is not running (exit code {code})"
                                  f"\n--- {self.log_path} ---\n{self.log_tail()}")
            if self._probe():
                return
            if time.monotonic() >= deadline:
                raise ServerError(f"{self.kind} on port {self.port} not ready after {timeout:g} s"
                                  f"\n--- {self.log_path} ---\n{self.log_tail()}")
            time.sleep(pause)  # polling a starting server, with a deadline
            pause = min(pause * 2, 0.1)

    def log_since_start(self) -> str:
        """What the server logged since its last start."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError as error:
            return f"(no log: {error})"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server logged since its last start."""
        return "\n".join(self.log_since_start().splitlines()[-lines:])

    def _terminate(self, sig: int, timeout: float) -> int | None:
        """Send sig, wait for the exit (SIGKILL after timeout); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def kill(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        if self._closed:
            return
        try:
            if self.running:
                self.stop()
        finally:
            self._terminate(signal.SIGKILL, 5)
            self._closed = True
            with _live_lock:
                _live.discard(self)
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "_ManagedServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else ("closed" if self._closed else "stopped")
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {state} in {self.base}>"


@atexit.register
def _close_all_servers() -> None:
    with _live_lock:
        servers = [s for s in _live if s._owner_pid == os.getpid()]
    for server in servers:
        try:
            server.close()
        except Exception:  # noqa: BLE001 - best effort at exit; close() kills as a last resort
            pass
    for template in list(_pg_templates.values()):
        shutil.rmtree(template.parent, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# PostgreSQL

# One initdb per (binaries, owner) and test process: later clusters are copies of it.
_pg_templates: dict[tuple[Path, int | None], Path] = {}
_pg_template_lock = threading.Lock()


def _run_pg_tool(args: list[str], run_as: RunAs | None, cwd: Path, stdin: str | None = None) -> None:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=cwd, env=_server_env(),
                          timeout=120, **(run_as.popen_args() if run_as else {}))
    if done.returncode != 0:
        raise ServerError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _pg_template(bindir: Path, run_as: RunAs | None) -> Path:
    """A cluster made by initdb, with the agentprom role and database and pg_hba.conf."""
    key = (bindir, run_as.uid if run_as else None)
    with _pg_template_lock:
        if key in _pg_templates:
            return _pg_templates[key]
        top = Path(tempfile.mkdtemp(prefix="agentprom-pg-template-"))
        if run_as is not None and not _reachable_by_others(top.parent):
            shutil.rmtree(top)
            top = Path(tempfile.mkdtemp(prefix="agentprom-pg-template-", dir="/tmp"))
        data = _pg_templates[key] = top / "data"  # removed at exit, even if initdb fails
        if run_as is not None:
            os.chown(top, run_as.uid, run_as.gid)
        os.chmod(top, 0o700)
        _run_pg_tool([str(bindir / "initdb"), "--pgdata", str(data), "--username", PG_SUPERUSER,
                      "--encoding", "UTF8", "--locale", "C", "--no-sync", "--auth", "trust",
                      "--wal-segsize", "1"], run_as, top)  # 1 MB WAL files: less to copy per cluster
        # Single-user mode: no server, no port, a fraction of a second.
        _run_pg_tool([str(bindir / "postgres"), "--single", "-D", str(data), "-c", "fsync=off",
                      "-c", "password_encryption=scram-sha-256", "postgres"], run_as, top,
                     stdin=(f"CREATE ROLE {PG_USER} LOGIN CREATEDB PASSWORD '{PG_PASSWORD}';\n"
                            f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER};\n"))
        (data / "pg_hba.conf").write_text(PG_HBA)
        if run_as is not None:
            os.chown(data / "pg_hba.conf", run_as.uid, run_as.gid)
        return data


class PostgresServer(_ManagedServer):
    """A PostgreSQL cluster of its own on 127.0.0.1:port, password (SCRAM) authentication.

    ``dsn`` logs in as ``agentprom`` / ``secret-pw`` to database ``agentprom`` (a role with
    CREATEDB, not a superuser); ``admin_dsn`` is the superuser over the private unix socket.
    ``stop()`` is a fast shutdown, ``kill()`` an immediate one (no checkpoint: the next start
    does crash recovery), ``start()`` restarts on the same port with the same data.
    ``settings`` adds or overrides server settings (postgres -c name=value).
    """

    kind = "PostgreSQL"

    def __init__(self, tmp_dir: Path | str, *, settings: dict[str, str] | None = None,
                 start: bool = True, startup_timeout: float = 30) -> None:
        super().__init__(startup_timeout)
        self.bindir = postgres_bindir()
        self.run_as = postgres_run_as()
        self.settings = {**PG_TEST_SETTINGS, **(settings or {})}
        self.base = private_server_dir(Path(tmp_dir), "postgres", self.run_as)
        self.data_dir = self.base / "data"
        self.socket_dir = self.base
        self.log_path = self.base / "postgres.log"
        template = _pg_template(self.bindir, self.run_as)
        shutil.copytree(template, self.data_dir, symlinks=True)
        if self.run_as is not None:
            self.run_as.chown_tree(self.data_dir)
        if start:
            self._start_or_close()

    def _spawn(self, stdout: Any) -> subprocess.Popen[bytes]:
        settings = {**self.settings, "listen_addresses": "127.0.0.1", "port": str(self.port),
                    "unix_socket_directories": str(self.socket_dir)}
        args = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT,
                                cwd=self.base, env=_server_env(), start_new_session=True,
                                **(self.run_as.popen_args() if self.run_as else {}))

    def _probe(self) -> bool:
        # pg_ctl -w's test: postmaster.pid names this process and says "ready"; then a real login.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(self.process.pid) or lines[7].strip() != "ready":
            return False
        try:
            psycopg.connect(self.dsn, connect_timeout=5).close()
        except psycopg.OperationalError:
            return False
        return True

    # connection strings --------------------------------------------------------------------
    def dsn_for(self, database: str, *, password: str | None = PG_PASSWORD, user: str = PG_USER) -> str:
        credentials = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    @property
    def dsn(self) -> str:
        return self.dsn_for(PG_DATABASE)

    @property
    def dsn_without_password(self) -> str:
        return self.dsn_for(PG_DATABASE, password=None)

    @property
    def admin_dsn(self) -> str:
        """The bootstrap superuser over the private unix socket (trust; for test set-up only)."""
        return make_conninfo(host=str(self.socket_dir), port=self.port,
                             user=PG_SUPERUSER, dbname="postgres")

    # lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Fast shutdown (SIGINT): sessions are ended, a checkpoint written; the port is free after."""
        code = self._terminate(signal.SIGINT, 30)
        if code not in (None, 0):
            raise ServerError(f"PostgreSQL exited with code {code} on fast shutdown\n{self.log_tail()}")

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT, pg_ctl -m immediate): no checkpoint, like a crash of the
        server; every server process ends (SIGKILL alone would leave the backends running)."""
        self._terminate(signal.SIGQUIT, 30)

    # databases ---------------------------------------------------------------------------
    def create_database(self, name: str) -> str:
        """A new empty database owned by agentprom; its DSN."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name),
                                                                       sql.Identifier(PG_USER)))
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the sessions still connected to it."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------------------------
# Redis


def no_retry() -> Retry:
    """For redis-py's ``retry=``: no retry (redis-py retries failed commands 3 times by default)."""
    return Retry(NoBackoff(), 0)


def _redis_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RedisServer(_ManagedServer):
    """redis-server on 127.0.0.1:port. Not persistent by default (``save ""``, no AOF): a
    stop/start empties it. ``persistent=True`` turns the append-only file on, so data survives
    ``stop()``/``start()`` (and ``kill()`` up to the last ``appendfsync`` interval).
    ``password`` sets requirepass (``url`` then carries it)."""

    kind = "Redis"

    def __init__(self, tmp_dir: Path | str, *, persistent: bool = False, password: str | None = None,
                 appendfsync: str = "everysec", start: bool = True, startup_timeout: float = 30) -> None:
        super().__init__(startup_timeout)
        self.binary = redis_server_binary()
        self.persistent = persistent
        self.password = password
        self.appendfsync = appendfsync
        self.base = private_server_dir(Path(tmp_dir), "redis", None)
        self.config_path = self.base / "redis.conf"
        self.log_path = self.base / "redis.log"
        if start:
            self._start_or_close()

    def _config(self) -> str:
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            "protected-mode yes",
            "daemonize no",
            "supervised no",
            'logfile ""',
            f"dir {_redis_quote(str(self.base))}",
            'save ""',
            f"appendonly {'yes' if self.persistent else 'no'}",
            f"appendfsync {self.appendfsync}",
        ]
        if self.password is not None:
            lines.append(f"requirepass {_redis_quote(self.password)}")
        return "\n".join(lines) + "\n"

    def _spawn(self, stdout: Any) -> subprocess.Popen[bytes]:
        self.config_path.write_text(self._config())
        return subprocess.Popen([self.binary, str(self.config_path)], stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.STDOUT, cwd=self.base, env=_server_env(),
                                start_new_session=True)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client of this server, without redis-py's default retries (with backoff
        of seconds) unless kwargs ask for them: a server that is down fails at once."""
        kwargs.setdefault("retry", no_retry())
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kwargs)

    def _probe(self) -> bool:
        # Its own log first: until this process says it listens, whatever answers on the port is not it.
        if "Ready to accept connections" not in self.log_since_start():
            return False
        client = self.client(socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.BusyLoadingError):
            return False
        finally:
            client.close()

    @property
    def url(self) -> str:
        credentials = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """SIGTERM: Redis shuts down cleanly (the append-only file flushed when persistent; no
        RDB snapshot, since ``save ""``)."""
        code = self._terminate(signal.SIGTERM, 30)
        if code not in (None, 0):
            raise ServerError(f"redis-server exited with code {code} on SIGTERM\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown at all."""
        self._terminate(signal.SIGKILL, 10)


# --------------------------------------------------------------------------------------------
# pytest fixtures (tests/conftest.py imports them)


def _server_or_fail(factory: Callable[[], _ManagedServer]) -> Any:
    try:
        return factory()
    except ServerBinaryMissing as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session; do not stop it (use fresh_postgres for that)."""
    server = _server_or_fail(lambda: PostgresServer(tmp_path_factory.mktemp("postgres-session")))
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the whole session, not persistent; do not stop it (use fresh_redis)."""
    server = _server_or_fail(lambda: RedisServer(tmp_path_factory.mktemp("redis-session")))
    yield server
    server.close()


def _closing_factory(cls: Callable[..., _ManagedServer], prefix: str, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """A factory of ``cls(tmp_path/<prefix><n>, **kwargs)``; every server it made is closed afterwards."""
    made: list[_ManagedServer] = []

    def factory(**kwargs: Any) -> Any:
        server = _server_or_fail(lambda: cls(tmp_path / f"{prefix}{len(made)}", **kwargs))
        made.append(server)
        return server

    yield factory
    for server in made:
        server.close()


@pytest.fixture
def make_postgres_server(tmp_path: Path) -> Iterator[Callable[..., PostgresServer]]:
    """Factory of PostgresServer(tmp_path/..., **kwargs), each closed after the test."""
    yield from _closing_factory(PostgresServer, "pg", tmp_path)


@pytest.fixture
def make_redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Factory of RedisServer(tmp_path/..., persistent=..., password=...), each closed after the test."""
    yield from _closing_factory(RedisServer, "redis", tmp_path)


@pytest.fixture
def fresh_postgres(make_postgres_server: Callable[..., PostgresServer]) -> PostgresServer:
    """A PostgreSQL of this test's own, free to stop, kill and restart."""
    return make_postgres_server()


@pytest.fixture
def fresh_redis(make_redis_server: Callable[..., RedisServer]) -> RedisServer:
    """A (non-persistent) Redis of this test's own, free to stop, kill and restart."""
    return make_redis_server()


# Database names come from a seeded generator: the same names in the same order on every run.
_database_names = random.Random(0x5EED)


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database on the session's PostgreSQL, owned by agentprom: its DSN (with the
    password). Dropped after the test, with any session still connected to it."""
    while True:
        name = f"test_{_database_names.getrandbits(48):012x}"
        try:
            dsn = postgres_server.create_database(name)
            break
        except psycopg.errors.DuplicateDatabase:
            continue
    yield dsn
    postgres_server.drop_database(name)
