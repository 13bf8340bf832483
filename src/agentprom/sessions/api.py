"""The runtime HTTP API (``/runtime/...``): events in, sessions out, as JSON.

Served on the OTLP/HTTP address (loopback by default), for runtimes that do
not speak OpenTelemetry. docs/sessions.md has every route with examples.

* ``POST /runtime/event``: one event object or an array. All valid: 200.
  Any invalid: 400 with ``errors`` naming the event ``index`` and the
  ``field`` of each problem; the valid events of the request are applied
  anyway, and the body says how many (``accepted``).
* ``POST /runtime/session/start`` (201), ``POST /runtime/session/end`` (200;
  404 for an unknown session; ending an ended session returns it unchanged).
* ``GET /runtime/sessions?agent=&status=&limit=&offset=``, and per session
  ``GET /runtime/session/{id}``, ``.../metrics``, ``.../phases``,
  ``.../tool_calls``; 404 for an unknown session id.

With a PostgreSQL store (stores/fleet.py), the reads also answer for sessions
this process does not hold: a session unknown here is looked up in the
database (503 when the database cannot be read in time), and the list adds
the database's sessions to this process's own (``from_store`` counts them).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agentprom.bounds import AmountLimits
from agentprom.metrics.series_store import SeriesStore
from agentprom.receiver.otlp_json import json_error
from agentprom.server.bodies import read_limited
from agentprom.sessions import events as E
from agentprom.sessions.model import COMPLETED, END_STATUSES, Session
from agentprom.sessions.model import new_id as new_session_id
from agentprom.sessions.timestamps import parse_iso
from agentprom.sessions.tracker import SessionTracker
from agentprom.sessions.views import (
    session_detail,
    session_metrics,
    session_phases,
    session_summary,
    session_tool_calls,
)

if TYPE_CHECKING:
    from agentprom.stores.fleet import Fleet


class StoreUnavailable(Exception):
    """Raised by a fleet read that failed (stores/service.py raises it; defined here so the API needs no store)."""

STATUSES = ("active", *END_STATUSES)
#: field errors listed in a 400 answer; the rest are only counted (``errors_omitted``)
MAX_ERRORS_SHOWN = 20
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[E.FieldError] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []

    def response(self) -> web.Response:
        body = {"error": self.message, **error_list(self.errors)}
        return web.json_response(body, status=self.status)


def error_list(errors: list[E.FieldError]) -> dict[str, Any]:
    """The first ``MAX_ERRORS_SHOWN`` errors and how many more there were: an answer stays small
    however many problems a request has."""
    shown = {"errors": [e.as_dict() for e in errors[:MAX_ERRORS_SHOWN]]}
    if len(errors) > MAX_ERRORS_SHOWN:
        shown["errors_omitted"] = len(errors) - MAX_ERRORS_SHOWN
    return shown


Handler = Callable[[web.Request], Awaitable[web.Response]]


class RuntimeApi:
    def __init__(self, tracker: SessionTracker, store: SeriesStore, max_events: int,
                 limits: AmountLimits | None = None, max_request_bytes: int = 1024 * 1024,
                 apply: Callable[[E.RuntimeEvent], Session] | None = None,
                 end: Callable[[str, str, float | None], Session | None] | None = None,
                 fleet: Fleet | None = None) -> None:
        self.tracker = tracker
        #: the PostgreSQL store's sessions, for those this process does not hold (None: no store)
        self.fleet = fleet
        #: where a validated event enters: the translator (``Translator.event``), as spans do, so the
        #: calls events make are counted like spans' calls; the tracker alone when sessions stand alone
        self.apply = apply or tracker.apply
        #: where an end signal enters (``Translator.end_session``: the session's waiting spans first)
        self.end = end or tracker.end_session
        self.max_events = max_events
        #: field checks with the per-span amount bounds (bounds.py) on tokens and cost
        self.checks = E.bounded_checks(limits or AmountLimits.defaults())
        self.max_request_bytes = max_request_bytes
        self._events = store.families["agentprom_runtime_events_total"]

    def install(self, app: web.Application) -> None:
        app.router.add_post("/runtime/event", self.post_events)
        app.router.add_post("/runtime/session/start", self.post_start)
        app.router.add_post("/runtime/session/end", self.post_end)
        app.router.add_get("/runtime/sessions", self.get_sessions)
        tracker = self.tracker
        app.router.add_get("/runtime/session/{id}", self._session_view(lambda s: session_detail(s, tracker)))
        app.router.add_get("/runtime/session/{id}/metrics", self._session_view(lambda s: session_metrics(s, tracker)))
        app.router.add_get("/runtime/session/{id}/phases", self._session_view(session_phases))
        app.router.add_get("/runtime/session/{id}/tool_calls", self._session_view(session_tool_calls))

    # -- writes ---------------------------------------------------------------------

    async def _json_body(self, request: web.Request) -> Any:
        if request.content_type not in ("application/json", "application/octet-stream", ""):
            raise ApiError(415, "this Content-Type is not supported; use application/json")
        if request.headers.get("Content-Encoding", "identity").strip().lower() not in ("identity", ""):
            raise ApiError(415, "Content-Encoding is not supported on the runtime API; send plain JSON")
        raw = await read_limited(request, self.max_request_bytes)
        if raw is None:
            raise ApiError(413, f"request body exceeds {self.max_request_bytes} bytes (sessions.max_request_bytes)")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, "body is not valid JSON", [E.FieldError(None, "", json_error(exc))]) from None

    async def post_events(self, request: web.Request) -> web.Response:
        try:
            document = await self._json_body(request)
        except ApiError as error:
            return error.response()
        events, errors, total = E.parse_events(document, self.max_events, self.checks)
        for event in events:
            self.apply(event)
        rejected = total - len(events)
        if events:
            self._events.inc(("accepted",), len(events))
        if rejected:
            self._events.inc(("rejected",), rejected)
        body: dict[str, Any] = {"accepted": len(events), "rejected": rejected}
        if not errors:
            return web.json_response(body)
        body["message"] = (
            f"{rejected} of {total} event(s) rejected; "
            f"the {len(events)} valid event(s) of this request were applied"
        )
        body.update(error_list(errors))
        return web.json_response(body, status=400)

    async def _one_event(self, request: web.Request, event_type: str, new_id: bool) -> E.RuntimeEvent:
        document = await self._json_body(request)
        if not isinstance(document, dict):
            raise ApiError(400, "body must be a JSON object", [E.FieldError(None, "", "must be a JSON object")])
        if new_id and "session_id" not in document:
            document = {**document, "session_id": "sess_" + new_session_id()}
        errors: list[E.FieldError] = []
        if "event_type" in document:
            errors.append(E.FieldError(None, "event_type", "not a field of this request"))
            document = {key: value for key, value in document.items() if key != "event_type"}
        event = E.parse_event({**document, "event_type": event_type}, None, errors, self.checks)
        if errors or event is None:
            raise ApiError(400, "invalid request", errors)
        return event

    async def post_start(self, request: web.Request) -> web.Response:
        try:
            event = await self._one_event(request, E.SESSION_STARTED, new_id=True)
        except ApiError as error:
            return error.response()
        self._events.inc(("accepted",))
        s = self.apply(event)
        return web.json_response({"session": session_detail(s, self.tracker)}, status=201)

    async def post_end(self, request: web.Request) -> web.Response:
        try:
            event = await self._one_event(request, E.SESSION_COMPLETED, new_id=False)
        except ApiError as error:
            return error.response()
        status = event.status or ("failed" if event.success is False else "completed")
        s = self.end(event.session_id, status, event.timestamp)
        if s is None:
            return ApiError(404, "unknown session", [E.FieldError(None, "session_id", "no such session")]).response()
        self._events.inc(("accepted",))
        return web.json_response({"session": session_detail(s, self.tracker)})

    # -- reads ----------------------------------------------------------------------

    async def get_sessions(self, request: web.Request) -> web.Response:
        query = request.query
        errors = []
        agent = query.get("agent") or None
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            errors.append(E.FieldError(None, "status", "must be one of " + ", ".join(STATUSES)))
        limit = _query_int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors)
        offset = _query_int(query, "offset", 0, 0, 2**31, errors)
        unknown = set(query) - {"agent", "status", "limit", "offset"}
        errors += [E.FieldError(None, name, "unknown query parameter") for name in sorted(unknown)]
        if errors:
            return ApiError(400, "invalid query", errors).response()
        chosen = [
            s for s in self.tracker.all_sessions()
            if (agent is None or s.agent == agent) and (status is None or s.status == status)
        ]
        chosen.sort(key=lambda s: (-(s.start or 0.0), s.session_id))
        page = [session_summary(s) for s in chosen[:offset + limit]]
        total = len(chosen)
        ended = [s for s in chosen if s.status in END_STATUSES]
        n_ended, n_completed = len(ended), sum(s.status == COMPLETED for s in ended)
        body: dict[str, Any] = {}
        if self.fleet is not None:
            held = [s.session_id for s in self.tracker.all_sessions()]
            try:
                stored, more, more_ended, more_completed = await self.fleet.sessions(agent, status, held,
                                                                                     offset + limit)
            except StoreUnavailable as exc:
                body["store_error"] = str(exc)  # this process's own sessions still answer
            else:
                page = sorted(page + stored, key=_newest_first)
                total += more
                n_ended += more_ended
                n_completed += more_completed
                body["from_store"] = more
        page = page[offset:offset + limit]
        next_offset = offset + limit if offset + limit < total else None
        return web.json_response({
            "sessions": page,
            "total": total,
            "completion_success_rate": round(n_completed / n_ended, 4) if n_ended else None,
            "offset": offset,
            "limit": limit,
            "next_offset": next_offset,
            **body,
        })

    def _session_view(self, view: Callable[[Session], dict[str, Any]]) -> Handler:
        """A GET handler that shows one session through ``view``; 404 when the id is unknown."""

        async def handler(request: web.Request) -> web.Response:
            session_id = request.match_info["id"]
            s = self.tracker.get(session_id)
            if s is None and self.fleet is not None:
                try:
                    s = await self.fleet.session(session_id)
                except StoreUnavailable as exc:
                    return ApiError(503, f"session not held by this process, and {exc}").response()
            if s is None:
                return ApiError(404, "unknown session").response()
            return web.json_response(view(s))

        return handler


def _newest_first(summary: dict[str, Any]) -> tuple:
    """The list's order: newest start first (ISO 8601 in UTC sorts as time), then by id."""
    start = summary.get("start")
    return -(parse_iso(start) if start else 0.0), summary["session_id"]


def _query_int(query: Any, name: str, default: int, low: int, high: int, errors: list[E.FieldError]) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        errors.append(E.FieldError(None, name, f"must be an integer from {low} to {high}"))
        return default
    return value
