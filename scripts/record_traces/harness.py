"""Shared by the trace recorders: a fake OpenAI-compatible model server and an OTLP/JSON span writer.

A recorder (one script per framework in this folder) runs a real agent framework
with its real instrumentation against ``FakeOpenAI`` (in-process, loopback, no
network, no key), collects the finished spans with the OpenTelemetry SDK's
in-memory exporter and writes them with ``write_fixture`` as one OTLP/JSON
``ExportTraceServiceRequest`` (OTLP specification, "JSON Protobuf Encoding":
hex ids, integer enums). The fixtures live in ``tests/golden/frameworks/`` and
are replayed by the tests; CI never installs the frameworks.

Each recorder names, in its docstring, the packages and versions it ran with
and the command; run it in a virtual environment of its own, e.g.::

    python3 -m venv /tmp/rec && /tmp/rec/bin/pip install <packages> opentelemetry-sdk \
        opentelemetry-exporter-otlp-proto-common
    /tmp/rec/bin/python scripts/record_traces/<recorder>.py
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "golden" / "frameworks"

#: token usage every fake completion reports (so expected token counts are easy to derive by hand)
PROMPT_TOKENS = 50
COMPLETION_TOKENS = 10


@dataclass
class Reply:
    """One answer of the fake model: text, tool calls, or an HTTP error."""

    text: str | None = None
    #: (tool name, JSON arguments) pairs
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    #: answer with this HTTP status and an OpenAI-style error body instead
    error_status: int | None = None


def tool_then_answer(request: dict[str, Any], arguments: str = "{}") -> Reply:
    """The usual agent loop: call the first offered tool once, then answer."""
    messages = request.get("messages") or []
    tools = request.get("tools") or []
    if tools and not any(m.get("role") == "tool" for m in messages):
        return Reply(tool_calls=[(tools[0]["function"]["name"], arguments)])
    return Reply(text="All done.")


class Scripted:
    """Replies in a fixed order (the last one repeats)."""

    def __init__(self, replies: Iterable[Reply]) -> None:
        self.replies = list(replies)
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class FakeOpenAI:
    """An OpenAI-compatible ``/v1/chat/completions`` on loopback (streaming and not).

    ``policy`` maps each request body to a ``Reply``; ``requests`` keeps every body received.
    The response model is the requested one with a date suffix, as OpenAI answers."""

    def __init__(self, policy: Callable[[dict[str, Any]], Reply] = tool_then_answer) -> None:
        self.policy = policy
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._counter = 0

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(request)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                reply = fake.policy(request)
                if reply.error_status is not None:
                    self._send(reply.error_status, {"error": {"message": "the fake model failed on purpose",
                                                              "type": "server_error", "code": None}})
                elif request.get("stream"):
                    self._stream(fake.completion(request, reply), request)
                else:
                    self._send(200, fake.completion(request, reply))

            def _send(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, completion: dict[str, Any], request: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in stream_chunks(completion, bool((request.get("stream_options") or {})
                                                            .get("include_usage"))):
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def completion(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        self._counter += 1
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{self._counter}_{i}", "type": "function", "function": {"name": name, "arguments": args}}
                for i, (name, args) in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-{self._counter}", "object": "chat.completion", "created": int(time.time()),
            "model": str(request.get("model", "gpt-4o-mini")) + "-2024-07-18",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                      "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
        }


def stream_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A completion as ``chat.completion.chunk`` objects: role, content or tool calls, finish, usage."""
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"]}
    choice = completion["choices"][0]
    message = choice["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": message["content"]}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
    chunks = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


# -- spans -------------------------------------------------------------------------------------------


def in_memory_provider(service_name: str) -> tuple[Any, Any]:
    """A TracerProvider (set as the global one) whose finished spans collect in memory."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider, exporter


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> Any:
    """protobuf's JSON mapping writes bytes as base64; OTLP/JSON wants trace and span ids in hex."""
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in _ID_FIELDS and isinstance(v, str) else _hex_ids(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


def _machine_paths() -> list[tuple[str, str]]:
    """Folders of this machine that stack traces name, longest first, with the placeholder for each."""
    import sys
    import sysconfig

    paths = sysconfig.get_paths()
    pairs = [(paths.get("purelib"), "<site-packages>"), (paths.get("platlib"), "<site-packages>"),
             (paths.get("stdlib"), "<stdlib>"), (str(ROOT), "<repo>"), (sys.prefix, "<venv>"),
             (sys.base_prefix, "<python>"), (str(Path.home()), "<home>")]
    found = {p: placeholder for p, placeholder in pairs if p and len(p) > 1}
    return sorted(found.items(), key=lambda pair: -len(pair[0]))


def _scrub_paths(node: Any, pairs: list[tuple[str, str]]) -> Any:
    """Exception stack traces and status messages name the recording machine's folders (the
    virtualenv, the work tree): replace them with placeholders so that fixtures are the same
    wherever they are recorded and leak no machine's layout."""
    if isinstance(node, dict):
        return {k: _scrub_paths(v, pairs) for k, v in node.items()}
    if isinstance(node, list):
        return [_scrub_paths(item, pairs) for item in node]
    if isinstance(node, str):
        for path, placeholder in pairs:
            node = node.replace(path, placeholder)
    return node


def otlp_json(spans: Iterable[Any]) -> dict[str, Any]:
    """Finished SDK spans as an OTLP/JSON ``ExportTraceServiceRequest`` document (machine paths scrubbed)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    request = encode_spans(list(spans))
    return _scrub_paths(_hex_ids(MessageToDict(request, use_integers_for_enums=True)), _machine_paths())


#: what a folder of a machine looks like in text: any left after scrubbing fails the recording
_LEFTOVER = re.compile(r"(/tmp/|/work/|/home/|/root/|/usr/|/opt/)")


def scrub_fixture(folder: Path, names: tuple[str, ...] = ("trace.json", "recorded.json", "tree.txt")) -> None:
    """Rewrite the files of ``folder`` with placeholders for this machine's folders; stop the
    recording if any machine path is left (a fixture must not depend on, or reveal, where it was
    recorded)."""
    for name in names:
        path = folder / name
        if not path.exists():
            continue
        text = path.read_text()
        for local, placeholder in _machine_paths():
            text = text.replace(local, placeholder)
        left = _LEFTOVER.search(text)
        if left:
            start = max(0, left.start() - 60)
            raise SystemExit(f"{path}: machine-specific path left: ...{text[start:left.end() + 60]}...")
        path.write_text(text)


def write_fixture(name: str, spans: Iterable[Any], about: dict[str, Any]) -> Path:
    """Write ``tests/golden/frameworks/NAME/``: ``trace.json``, ``recorded.json`` (what ran, with
    versions) and ``tree.txt`` (the tree as text), scrubbed of this machine's paths."""
    spans = list(spans)
    folder = FIXTURES / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trace.json").write_text(json.dumps(otlp_json(spans), indent=1, sort_keys=True) + "\n")
    (folder / "recorded.json").write_text(json.dumps(about, indent=1, sort_keys=True) + "\n")
    (folder / "tree.txt").write_text(tree(spans) + "\n")
    scrub_fixture(folder)
    print(f"wrote {len(spans)} spans to {folder / 'trace.json'}")
    return folder


def versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def tree(spans: Iterable[Any]) -> str:
    """The span tree as indented text (name, kind-ish attributes), for the fixture's README."""
    spans = list(spans)
    by_parent: dict[Any, list[Any]] = {}
    ids = {s.context.span_id for s in spans}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)
    keys = ("gen_ai.operation.name", "openinference.span.kind", "traceloop.span.kind", "gen_ai.agent.name",
            "agent.name", "gen_ai.tool.name", "tool.name", "traceloop.entity.name", "gen_ai.request.model",
            "llm.model_name")
    lines: list[str] = []

    def walk(parent: Any, depth: int) -> None:
        for s in sorted(by_parent.get(parent, []), key=lambda s: s.start_time):
            attrs = {k: s.attributes[k] for k in keys if k in s.attributes}
            status = " ERROR" if s.status.status_code.name == "ERROR" else ""
            lines.append(f"{'  ' * depth}- {s.name}{status} {json.dumps(attrs, sort_keys=True)}")
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


# --- the streaming fixtures (openlit_openai_streaming, openinference_openai_streaming) ---

@dataclass
class Truncated(Reply):
    """A reply the fake model ends with ``finish_reason`` ``length`` (cut at max tokens)."""

    finish_reason: str = "length"


class LengthFake(FakeOpenAI):
    """``FakeOpenAI`` whose completion (streamed or not) takes a ``Truncated`` reply's finish reason."""

    def completion(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        document = super().completion(request, reply)
        if isinstance(reply, Truncated):
            document["choices"][0]["finish_reason"] = reply.finish_reason
        return document


def run_streaming_agent(client: Any, agent_attributes: dict[str, str], agent: str = "stream_agent",
                        model: str = "gpt-4o-mini") -> list[str]:
    """The streaming fixtures' scenario: a hand-made ``invoke_agent`` span (``agent_attributes`` say
    what it is in the instrumentation's convention) around three chat calls: (a) streamed with usage,
    (b) not streamed, (c) streamed and cut short (serve it with ``LengthFake`` and a ``Truncated``
    reply). Returns what each call answered."""
    from opentelemetry import trace

    tracer = trace.get_tracer(f"{agent}.recorder", "0.1.0")
    answers = []
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes=agent_attributes):
        messages = [{"role": "user", "content": "Say hello."}]
        # (a) streamed, usage in the last chunk, stream read to the end
        stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                                stream_options={"include_usage": True})
        parts = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
        answers.append(f"(a) {''.join(parts)!r}")
        # (b) not streamed
        response = client.chat.completions.create(model=model, messages=messages)
        answers.append(f"(b) {response.choices[0].message.content!r} {response.choices[0].finish_reason}")
        # (c) streamed, the server cuts it short (finish_reason length)
        stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                                stream_options={"include_usage": True})
        finish = [chunk.choices[0].finish_reason for chunk in stream if chunk.choices]
        answers.append(f"(c) finish reasons in the chunks: {finish}")
    return answers
