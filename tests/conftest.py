"""Shared test fixtures: a real sidecar on ephemeral ports, the real external tools, and real PostgreSQL and
Redis servers (tests/servers.py)."""

from __future__ import annotations

import os

# Before grpc is imported: gRPC's fork handlers, run in a child forked while the in-process sidecars'
# gRPC threads are busy, can crash that child before it execs (seen: PostgreSQL started as its
# unprivileged user, a fork rather than a vfork, died of SIGSEGV after "epoll_wait error: Bad file
# descriptor"). Nothing here forks to keep using gRPC in the child.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import asyncio
import shutil
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentprom.app import App
from agentprom.clock import Clock
from agentprom.config.loader import validate
from agentprom.receiver import decode as _decode
from tests.servers import (  # noqa: F401 - real PostgreSQL and Redis fixtures, for every test module
    fresh_postgres,
    fresh_redis,
    make_postgres_server,
    make_redis_server,
    pg_database,
    postgres_server,
    redis_server,
)

ROOT = Path(__file__).resolve().parent.parent

# CI runs the property tests on a fixed seed (a failure there must be reproducible and must not
# depend on luck); local runs explore new examples each time.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")
TOOLS_BIN = ROOT / ".tools" / "root" / "usr" / "bin"


def tool(name: str) -> str:
    """Path of a real external tool fetched by scripts/fetch-tools.sh; fails (not skips) without it."""
    for candidate in (TOOLS_BIN / name, ROOT / ".tools" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found: run scripts/fetch-tools.sh (the README test command does)")


def workers_config(workers: int) -> dict[str, Any]:
    """``server`` settings for a decode worker count: with more than one, every trace export goes
    through the workers (``worker_min_bytes: 0``), so a test's small requests exercise them too."""
    return {"workers": workers, "worker_min_bytes": 0} if workers > 1 else {"workers": 1}


@pytest.fixture
def workers(request: pytest.FixtureRequest) -> int:
    """``server.workers`` for the sidecars a test starts: 1 (the machine-independent default of the
    tests) unless a module parametrizes it, as the receiver, overload and shutdown tests do with
    ``pytestmark = pytest.mark.parametrize("workers", [1, 2], indirect=True)``."""
    return getattr(request, "param", 1)


class Sidecar:
    """A real ``App`` running on its own event loop in a background thread."""

    def __init__(self, config: dict[str, Any] | None = None, clock: Clock | None = None, workers: int = 1) -> None:
        document = {
            "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0",
                       **workers_config(workers)},
        }
        for section, values in (config or {}).items():
            if isinstance(values, dict):
                document.setdefault(section, {}).update(values)
            else:  # a list section (dimensions)
                document[section] = values
        self.config = validate(document)
        self.loop = asyncio.new_event_loop()
        self.app = App(self.config, clock)
        self._thread = threading.Thread(target=self.loop.run_forever, name="sidecar-loop", daemon=True)

    def start(self) -> "Sidecar":
        self._thread.start()
        self.call(self.app.start())
        return self

    def stop(self) -> None:
        try:
            self.call(self.app.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    def call(self, coro_or_fn: Any, timeout: float = 30) -> Any:
        """Run a coroutine, or a plain function, on the sidecar's loop and return its result."""
        if asyncio.iscoroutine(coro_or_fn):
            return asyncio.run_coroutine_threadsafe(coro_or_fn, self.loop).result(timeout)

        async def wrapper() -> Any:
            return coro_or_fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    @property
    def grpc_address(self) -> str:
        return self.app.addresses["otlp_grpc"]

    @property
    def http_url(self) -> str:
        return "http://" + self.app.addresses["otlp_http"]

    @property
    def metrics_url(self) -> str:
        return "http://" + self.app.addresses["metrics"]

    def settle(self) -> None:
        """Wait until every accepted span has been translated (the queue is drained)."""
        self.call(self.app.pipeline.drained())

    def scrape(self, openmetrics: bool = False) -> str:
        self.settle()
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
        request = urllib.request.Request(self.metrics_url + "/metrics", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter/gauge series (0 if absent), read on the loop."""
        self.settle()
        family = self.app.store[name]
        key = tuple(labels[label] for label in family.spec.labels)
        return self.call(lambda: self.app.store.value(name, key))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.http_url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


@pytest.fixture
def make_sidecar(workers: int) -> Iterator[Callable[..., Sidecar]]:
    started: list[Sidecar] = []

    def factory(config: dict[str, Any] | None = None, clock: Clock | None = None) -> Sidecar:
        sidecar = Sidecar(config, clock, workers).start()
        started.append(sidecar)
        return sidecar

    yield factory
    for sidecar in started:
        sidecar.stop()


@pytest.fixture
def sidecar(make_sidecar) -> Sidecar:
    return make_sidecar()


#: the protobuf trace decoders this run can test: the Python path always, the compiled one when built
TRACE_DECODERS = ["python"] + (["compiled"] if _decode.COMPILED else [])


@pytest.fixture(scope="module", params=TRACE_DECODERS)
def trace_decoder(request):
    """Run a test module's tests with each trace decoder as its ``decode_traces`` (module-scoped, so
    hypothesis tests can use it: ``pytestmark = pytest.mark.usefixtures("trace_decoder")``)."""
    chosen = _decode.decode_traces_python if request.param == "python" else _decode.decode_traces
    module = request.module
    saved = module.decode_traces
    module.decode_traces = chosen
    yield chosen
    module.decode_traces = saved


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests talk to loopback only; a proxy in the environment must not intercept them.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("OTEL_SDK_DISABLED", "false")
