"""A small client for the sidecar's session API (``/runtime/...``, docs/sessions.md), for the harness.

Standard library only (urllib): the harness runs wherever ``agentprom`` is
installed. Waiting polls with a deadline; the clock and the sleep are
injectable.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentprom.clock import Clock, SystemClock

#: between two looks at a session that has not ended yet
POLL_SECONDS = 0.05


class SidecarError(Exception):
    """The sidecar could not be reached, or answered something the harness cannot use."""


def normalize_url(url: str) -> str:
    """``http(s)://host:port`` without a trailing slash; ValueError for anything else."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{url!r} is not an http:// or https:// URL (the sidecar's OTLP/HTTP address, "
                         "e.g. http://127.0.0.1:4318)")
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"


@dataclass(frozen=True)
class Fetched:
    """A session as the sidecar reports it once it has ended, or why there is none."""

    metrics: dict[str, Any] | None
    detail: dict[str, Any] | None
    reason: str | None = None


class SidecarClient:
    def __init__(self, base_url: str, timeout: float = 10.0, clock: Clock | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base = normalize_url(base_url)
        self.timeout = timeout
        self.clock = clock or SystemClock()
        self.sleep = sleep

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise SidecarError(f"cannot reach the sidecar at {self.base}: {reason}") from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None  # not JSON: the callers say what they expected

    def check(self) -> None:
        """Fail clearly unless the sidecar answers on its session API."""
        try:
            status, body = self._request("GET", "/runtime/sessions?limit=1")
        except SidecarError as error:
            raise SidecarError(f"{error}. Is `agentprom serve` running, and is --sidecar its OTLP/HTTP "
                               "address (default http://127.0.0.1:4318)?") from None
        if status == 404:
            raise SidecarError(f"{self.base} does not serve the session API (/runtime/sessions answered 404): "
                               "is sessions.enabled false in the sidecar's configuration?")
        if status != 200 or not isinstance(body, dict) or "sessions" not in body:
            raise SidecarError(f"{self.base}/runtime/sessions answered {status} without a session list: "
                               "is --sidecar agentprom's OTLP/HTTP address?")

    def sessions(self) -> list[dict[str, Any]]:
        """Every session the sidecar holds (``GET /runtime/sessions``, page by page)."""
        found: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            status, body = self._request("GET", f"/runtime/sessions?limit=1000&offset={offset}")
            if status != 200 or not isinstance(body, dict):
                raise SidecarError(f"GET /runtime/sessions answered {status}")
            found += body.get("sessions", [])
            offset = body.get("next_offset")
        return found

    def _session(self, session_id: str, suffix: str = "") -> dict[str, Any] | None:
        path = f"/runtime/session/{urllib.parse.quote(session_id, safe='')}{suffix}"
        status, body = self._request("GET", path)
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise SidecarError(f"GET {path} answered {status}")
        return body

    def metrics(self, session_id: str) -> dict[str, Any] | None:
        """``GET /runtime/session/{id}/metrics``; None when the sidecar does not know the session."""
        return self._session(session_id, "/metrics")

    def detail(self, session_id: str) -> dict[str, Any] | None:
        """``GET /runtime/session/{id}``: counters the metrics view does not carry (retries, tokens)."""
        return self._session(session_id)

    def end(self, session_id: str, status: str) -> dict[str, Any] | None:
        """``POST /runtime/session/end``; None for an unknown session. An ended session stays as it is."""
        code, body = self._request("POST", "/runtime/session/end", {"session_id": session_id, "status": status})
        if code == 404:
            return None
        if code != 200 or not isinstance(body, dict):
            raise SidecarError(f"POST /runtime/session/end answered {code}: {body}")
        return body.get("session")

    def wait_ended(self, session_id: str, timeout: float, end_as: str | None = None) -> Fetched:
        """Poll until the session has ended in the sidecar, for at most ``timeout`` seconds.

        ``end_as``: when the session is still open, or not known yet, end it right away with this
        status instead of waiting (the harness knows the agent is done: its process has exited). A
        session can be unknown while its spans wait in the sidecar for their run's root span (a
        hung run's never comes): the end signal settles them into the session first.
        """
        deadline = self.clock.monotonic() + timeout
        while True:
            metrics = self.metrics(session_id)
            if end_as is not None and (metrics is None or metrics.get("status") == "active"):
                self.end(session_id, end_as)
                metrics = self.metrics(session_id)
            if metrics is not None and metrics.get("status") != "active":
                return Fetched(metrics, self.detail(session_id))
            if self.clock.monotonic() >= deadline:
                if metrics is None:
                    return Fetched(None, None, f"session {session_id} never appeared in the sidecar "
                                               f"within {timeout:g}s")
                return Fetched(metrics, self.detail(session_id),
                               f"session {session_id} was still active in the sidecar after {timeout:g}s")
            self.sleep(POLL_SECONDS)
