"""End to end with the real servers: the sidecar, Prometheus 2.42 loaded with the shipped rules, and
Alertmanager 0.25 with a webhook receiver; spans come from the real OpenTelemetry SDK.

The shipped alerts wait 5-30 minutes (``for:``) before firing. This test loads a copy of
rules/*.rules.yml in which every ``for:`` is rewritten to ``0s``, and nothing else: expressions,
thresholds and annotations are the shipped ones. Prometheus scrapes and evaluates every second.
Every wait polls with a deadline (the whole test stays under two minutes); every process is
stopped at the end, also when the test fails.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from opentelemetry.trace import Status, StatusCode

from agentprom.dimension_rules import render_rules
from tests.conftest import tool
from tests.otel import tracer
from tests.promql_check import RULE_FILES, iter_rules, substitute_macros

pytestmark = pytest.mark.slow

DASHBOARDS = sorted((Path(__file__).resolve().parent.parent / "dashboards").glob("*.json"))
#: Debian's Alertmanager relocated to find its templates in ./alertmanager/ of this directory
#: (scripts/tools.d/11-alertmanager-templates.sh): it runs there, with absolute paths for the rest
ALERTMANAGER_HOME = Path(__file__).resolve().parent.parent / ".tools" / "alertmanager"
DIMENSION = {"label": "tenant", "attributes": ["app.tenant"], "default": "nobody",
             "metrics": ["agent_llm_cost_usd_total", "agent_tokens_total", "agent_tool_calls_total"],
             "budgets": {"acme": {"cost_usd_per_hour": 20}}}
AGENT = "e2e-agent"
TOOL = "flaky_search"
#: the whole test must finish well inside two minutes
BUDGET_SECONDS = 100
_LISTENING = re.compile(r'msg="Listening on" address=(\S+)')


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = 30,
                 on_fail: Callable[[], str] = str) -> Any:
        """Poll ``probe`` until it returns something truthy; fail after ``timeout`` or the overall deadline."""
        end = min(self.end, time.monotonic() + timeout)
        last_error = None
        while True:
            try:
                value = probe()
                if value:
                    return value
            except (OSError, ValueError, KeyError) as exc:  # server not up yet, or not the answer yet
                last_error = exc
            if time.monotonic() >= end:
                pytest.fail(f"timed out waiting for {what} (last error: {last_error})\n{on_fail()}")
            time.sleep(0.2)


class Server:
    """A real server process with its log in a file; stopped (then killed) on ``stop()``."""

    def __init__(self, name: str, args: list[str], workdir: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd or workdir)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} log (last {lines} lines) ---\n" + "\n".join(text)

    def address(self, deadline: Deadline) -> str:
        """The host:port the server bound (it was started on port 0 and logs the real one)."""

        def bound() -> str | None:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}")
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            return match[1] if match else None

        return deadline.wait_for(f"{self.name} to listen", bound, on_fail=self.log_tail)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


class Webhook:
    """Alertmanager's webhook receiver: records every notification it is sent."""

    def __init__(self) -> None:
        self.notifications: list[dict] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    def alerts(self) -> list[dict]:
        return [alert for notification in list(self.notifications) for alert in notification["alerts"]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers():
    started: list[Server | Webhook] = []
    yield started
    for server in reversed(started):
        server.stop()


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _query(prometheus: str, expr: str) -> list[dict]:
    answer = _get_json(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def _value(prometheus: str, expr: str) -> float | None:
    """The value of a query that should return one series (None while it returns none)."""
    result = _query(prometheus, expr)
    if not result:
        return None
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def _present(prometheus: str, expr: str) -> list[float] | None:
    """``[value]`` once the query returns a series: a list, so that a value of 0 counts as present."""
    value = _value(prometheus, expr)
    return None if value is None else [value]


def _copy_rules_without_for(target: Path) -> int:
    """Copy the shipped rule files, with every alert's ``for:`` set to 0s; return how many changed."""
    target.mkdir()
    changed = 0
    for path in RULE_FILES:
        text, n = re.subn(r"^(\s+)for: \S+$", r"\1for: 0s", path.read_text(), flags=re.M)
        changed += n
        (target / path.name).write_text(text)
    return changed


def _emit_burst(endpoint: str, failures: int) -> None:
    """Failing and succeeding tool calls, plus LLM calls with tokens, cost and a rate limit."""
    with tracer(endpoint, "grpc", service=AGENT) as t:
        for i in range(failures + 2):
            with t.start_as_current_span(
                f"execute_tool {TOOL}",
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": AGENT},
            ) as span:
                if i >= 2:
                    span.set_attribute("error.type", "TimeoutError")
                    span.set_status(Status(StatusCode.ERROR, "tool timed out"))
        for i in range(4):
            with t.start_as_current_span(
                "chat gpt-4o",
                attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.agent.name": AGENT,
                    "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200,
                    "gen_ai.usage.cost": 0.01,
                },
            ) as span:
                if i == 0:
                    span.set_attribute("error.type", "openai.RateLimitError")
                    span.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))


def _dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) of every dashboard query, with Grafana's macros and variables filled in."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = re.sub(r"\$\{?[a-z]+\}?", ".*", substitute_macros(target["expr"]))
                out.append((f"{path.name}: {panel['title']}", expr))
    return out


def test_rules_and_alerts_with_real_prometheus_and_alertmanager(make_sidecar, servers, tmp_path):
    alertmanager_binary = ALERTMANAGER_HOME / "prometheus-alertmanager"
    if not (alertmanager_binary.exists() and (ALERTMANAGER_HOME / "alertmanager" / "default.tmpl").exists()):
        pytest.fail(f"{ALERTMANAGER_HOME} is incomplete: run scripts/fetch-tools.sh (the README test command does)")
    deadline = Deadline(BUDGET_SECONDS)
    # an extra dimension with a budget: the Spend by dimension dashboard and the generated rules run too
    sidecar = make_sidecar({"dimensions": [DIMENSION]})
    webhook = Webhook()
    servers.append(webhook)

    # --- Alertmanager: notify at once, one group per alert name -------------------------------
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "webhook", "group_by": ["alertname"],
                  "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "webhook", "webhook_configs": [{"url": webhook.url, "send_resolved": False}]}],
    }))
    alertmanager = Server("alertmanager", [
        str(alertmanager_binary), f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'alertmanager-data'}", "--web.listen-address=127.0.0.1:0",
        "--cluster.listen-address=",
    ], tmp_path, cwd=ALERTMANAGER_HOME)
    servers.append(alertmanager)
    alertmanager_address = alertmanager.address(deadline)

    # --- Prometheus: scrape the sidecar every second, evaluate the shipped rules every second ----
    assert _copy_rules_without_for(tmp_path / "rules") == sum(1 for rule in iter_rules() if "alert" in rule)
    dimension_rules = render_rules(sidecar.config.dimensions)
    (tmp_path / "rules" / "agentprom-dimensions.rules.yml").write_text(dimension_rules)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules" / "*.rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_address]}]}]},
        "scrape_configs": [{"job_name": "agentprom",
                            "static_configs": [{"targets": [sidecar.app.addresses["metrics"]]}]}],
    }))
    prometheus_server = Server("prometheus", [
        tool("prometheus"), "--config.file=prometheus.yml", "--storage.tsdb.path=prometheus-data",
        "--web.listen-address=127.0.0.1:0", "--enable-feature=exemplar-storage",
        "--rules.alert.resend-delay=1s",
    ], tmp_path)
    servers.append(prometheus_server)
    prometheus = "http://" + prometheus_server.address(deadline)
    logs = lambda: prometheus_server.log_tail() + "\n" + alertmanager.log_tail()  # noqa: E731

    deadline.wait_for("the first scrape of the sidecar",
                      lambda: _value(prometheus, 'up{job="agentprom"}') == 1, on_fail=logs)

    # --- a burst of failing tool calls, in two parts so that rate() sees the counters grow ------
    errors = f'agent_tool_calls_total{{agent="{AGENT}", tool="{TOOL}", status="error"}}'
    _emit_burst(sidecar.grpc_address, failures=30)
    deadline.wait_for("Prometheus to scrape the first burst", lambda: _value(prometheus, errors) == 30, on_fail=logs)
    _emit_burst(sidecar.grpc_address, failures=30)
    deadline.wait_for("Prometheus to scrape the second burst", lambda: _value(prometheus, errors) == 60, on_fail=logs)

    # --- the recording rules have values ---------------------------------------------------------
    tool_sel = f'{{agent="{AGENT}", tool="{TOOL}"}}'
    llm_sel = f'{{agent="{AGENT}", provider="openai", model="gpt-4o"}}'
    expected = {
        f"agent_tool:agent_tool_calls_error:ratio_rate5m{tool_sel}": lambda v: 0.8 < v <= 1,  # 30 of 32 failed
        f"agent_tool:agent_tool_calls_ok:ratio_rate5m{tool_sel}": lambda v: 0 < v < 0.2,
        f"agent_tool:agent_tool_calls:per_minute_rate5m{tool_sel}": lambda v: v >= 1,
        f"agent_tool:agent_tool_duration_seconds:mean_rate5m{tool_sel}": lambda v: 0 < v < 1,
        f"agent_tool:agent_tool_duration_seconds:p95_rate5m{tool_sel}": lambda v: 0 < v < 1,
        f"agent_model:agent_llm_calls:per_minute_rate5m{llm_sel}": lambda v: v > 0,
        f"agent_model:agent_llm_calls_error:ratio_rate5m{llm_sel}": lambda v: 0.2 < v < 0.3,  # 1 of 4
        f'agent:agent_llm_rate_limit_errors:ratio_rate5m{{agent="{AGENT}"}}': lambda v: 0.2 < v < 0.3,
        f'agent_model_type:agent_tokens:per_minute_rate5m{{agent="{AGENT}", type="input"}}': lambda v: v > 0,
        f"agent_model:agent_llm_cost_usd:per_minute_rate5m{llm_sel}": lambda v: v > 0,
        "agentprom:threshold:tool_error_ratio": lambda v: v == 0.1,
    }
    for expr, check in expected.items():
        (value,) = deadline.wait_for(f"a value for {expr}", lambda: _present(prometheus, expr), on_fail=logs)
        assert math.isfinite(value) and check(value), f"{expr} = {value}"

    # --- the high-tool-error-rate alert goes through Alertmanager to the webhook ----------------
    def tool_alert() -> dict | None:
        for alert in webhook.alerts():
            if alert["labels"].get("alertname") == "AgentToolErrorRateHigh":
                return alert
        return None

    alert = deadline.wait_for("AgentToolErrorRateHigh at the webhook", tool_alert, on_fail=logs)
    assert alert["status"] == "firing"
    assert alert["labels"] == {"alertname": "AgentToolErrorRateHigh", "severity": "warning",
                               "agent": AGENT, "tool": TOOL}
    assert alert["annotations"]["runbook"] == "docs/runbooks.md#agenttoolerrorratehigh"
    assert re.fullmatch(
        rf"\d+(\.\d+)?% of the calls agent {AGENT} made to tool {TOOL} failed over the last 5 minutes "
        r"\(threshold 10%\)\.", alert["annotations"]["description"]), alert["annotations"]["description"]

    # --- every shipped rule loaded and evaluates without error on the real Prometheus ----------
    groups = _get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    generated = sum(len(group["rules"]) for group in yaml.safe_load(dimension_rules)["groups"])
    assert generated == 2 and len(loaded) == sum(1 for _ in iter_rules()) + generated
    broken = {rule["name"]: rule.get("lastError") for rule in loaded if rule["health"] != "ok"}
    assert not broken, broken

    # --- exemplars reach Prometheus: the tool latency panel's links to traces have data ----------
    now = time.time()
    exemplars = _get_json(f"{prometheus}/api/v1/query_exemplars?" + urllib.parse.urlencode({
        "query": f"agent_tool_duration_seconds_bucket{tool_sel}", "start": now - 300, "end": now + 60,
    }))["data"]
    trace_ids = {e["labels"].get("trace_id") for series in exemplars for e in series["exemplars"]}
    assert trace_ids and all(re.fullmatch(r"[0-9a-f]{32}", t or "") for t in trace_ids), exemplars

    # --- every dashboard query runs on the real Prometheus (parsing alone misses matching errors) --
    failed = {}
    for where, expr in _dashboard_queries():
        try:
            _query(prometheus, expr)
        except urllib.error.HTTPError as exc:
            failed[where] = json.loads(exc.read()).get("error")
    assert not failed, failed

    # --- the dimension: its label on the cost series (the spans carry no tenant: the default), the
    # configured dimension listed for the dashboard, and its budget series recorded ------------------
    spend = f"sum by (tenant) (rate(agent_llm_cost_usd_total{{{DIMENSION['label']}!=\"\"}}[5m]))"
    (row,) = deadline.wait_for("cost by tenant", lambda: _query(prometheus, spend) or None, on_fail=logs)
    assert row["metric"] == {"tenant": "nobody"} and float(row["value"][1]) > 0
    assert [r["metric"]["dimension"] for r in _query(prometheus, "agentprom_dimension_info")] == ["tenant"]
    assert _value(prometheus, 'agentprom:budget:cost_usd_per_hour_by_tenant{tenant="acme"}') == 20
