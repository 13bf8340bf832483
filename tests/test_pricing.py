"""Cost from the price table (pricing.py): exact USD for known usage, dated model names, cache and
reasoning rates, the unpriced counter, config overrides, SIGHUP reloads, malformed tables refused.

Every expected cost is computed by hand in a comment from the rates the test itself sets (USD per
million tokens), never read back from the code under test."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from agentprom.cli import reload_pricing
from agentprom.clock import ManualClock
from agentprom.config.loader import ConfigError, load_config, validate
from agentprom.conventions.classify import Classified
from agentprom.metrics.series_store import SeriesStore
from agentprom.model import Kind
from agentprom.pricing import (
    DEFAULT_TABLE, ModelPrice, PriceTable, Pricing, PricingError, Rates, build_table, default_table_path,
    read_table, undated,
)
from agentprom.translator import Translator
from tests.runtime_api import get_json, post_json
from tests.test_cli import _env, listening_addresses

ROOT = Path(__file__).resolve().parent.parent

# A table of the test's own, with round rates (USD per million tokens)
TABLE = {
    "as_of": "2025-01-01",
    "source": ["https://example.com/pricing"],
    "models": [
        {"provider": "openai", "model": "gpt-4o-mini", "input": 0.15, "output": 0.60},
        {"provider": "openai", "model": "o9", "input": 2.0, "output": 8.0, "cache_read": 0.5, "cache_write": 2.5,
         "reasoning": 4.0},
        {"provider": "anthropic", "model": "claude-sonnet-4", "input": 3.0, "output": 15.0, "cache_read": 0.3,
         "cache_write": 3.75},
        {"provider": "anthropic", "model": "claude-3-5-sonnet", "input": 3.0, "output": 15.0},
        {"provider": "google", "model": "gemini-2.5-pro", "input": 1.25, "output": 10.0},
    ],
}


def write_table(path: Path, document=TABLE) -> Path:
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


@pytest.fixture
def table_file(tmp_path) -> Path:
    return write_table(tmp_path / "prices.yaml")


@pytest.fixture
def table(table_file) -> PriceTable:
    return build_table(str(table_file))


# --- arithmetic ------------------------------------------------------------------------------------


def test_exact_usd_for_known_usage(table):
    # 1000 input * 0.15 + 500 output * 0.60 = 150 + 300 = 450 USD per million -> 0.00045 USD
    assert table.cost("openai", "gpt-4o-mini", {"input": 1000, "output": 500}) == pytest.approx(0.00045, rel=1e-12)
    # 2_000_000 input * 1.25 + 100_000 output * 10 = 2.5e6 + 1e6 = 3.5e6 per million -> 3.5 USD
    assert table.cost("google", "gemini-2.5-pro", {"input": 2_000_000, "output": 100_000}) == pytest.approx(3.5)
    # no tokens cost nothing, but the model is priced
    assert table.cost("openai", "gpt-4o-mini", {}) == 0


def test_cache_read_and_write_are_priced_at_their_rates_as_parts_of_input(table):
    # o9: input 2, cache_read 0.5, cache_write 2.5, output 8, reasoning 4.
    # input 1000 of which 600 cache read and 100 cache write -> 300 plain input;
    # output 400 of which 100 reasoning -> 300 plain output.
    # 300*2 + 600*0.5 + 100*2.5 + 300*8 + 100*4 = 600 + 300 + 250 + 2400 + 400 = 3950 -> 0.00395 USD
    tokens = {"input": 1000, "cache_read": 600, "cache_write": 100, "output": 400, "reasoning": 100}
    assert table.cost("openai", "o9", tokens) == pytest.approx(0.00395, rel=1e-12)
    # cache reads are not also priced as input: 1000 input all read from the cache -> 1000*0.5 = 500 -> 0.0005
    assert table.cost("openai", "o9", {"input": 1000, "cache_read": 1000}) == pytest.approx(0.0005, rel=1e-12)


def test_missing_rates_fall_back_to_the_undiscounted_ones(table):
    # claude-3-5-sonnet lists no cache or reasoning rates: everything input at 3, output at 15
    # 1000 input (400 cached) * 3 + 200 output (50 reasoning) * 15 = 3000 + 3000 = 6000 -> 0.006
    tokens = {"input": 1000, "cache_read": 400, "output": 200, "reasoning": 50}
    assert table.cost("anthropic", "claude-3-5-sonnet", tokens) == pytest.approx(0.006, rel=1e-12)
    assert ModelPrice(provider="p", model="m", input=1, output=2).rates() == Rates(1, 2, 1, 1, 2)


def test_parts_beyond_the_whole_are_priced_as_reported(table):
    # an instrumentation reporting input without its cache parts (Anthropic's API does):
    # input 100, cache_read 400 -> plain input 0 (not negative); 400*0.3 = 120 -> 0.00012
    assert table.cost("anthropic", "claude-sonnet-4", {"input": 100, "cache_read": 400}) == pytest.approx(0.00012)


# --- model names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "base"), [
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
    ("gpt-4o-mini", None),
    ("gpt-4-0613", None),  # not a date
    ("2024-07-18", None),  # nothing before the date
    ("", None),
])
def test_undated(name, base):
    assert undated(name) == base


def test_dated_model_names_match_their_undated_entry(table):
    # 1000 input * 0.15 = 150 -> 0.00015
    assert table.cost("openai", "gpt-4o-mini-2024-07-18", {"input": 1000}) == pytest.approx(0.00015)
    # 1000 input * 3 = 3000 -> 0.003
    assert table.cost("anthropic", "claude-sonnet-4-20250514", {"input": 1000}) == pytest.approx(0.003)
    assert table.cost("anthropic", "claude-3-5-sonnet@20240620", {"input": 1000}) == pytest.approx(0.003)
    # case and the Google spellings of the conventions
    assert table.cost("OpenAI", "GPT-4o-mini", {"input": 1000}) == pytest.approx(0.00015)
    for provider in ("gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai", "google"):
        assert table.cost(provider, "gemini-2.5-pro", {"input": 1000}) == pytest.approx(0.00125), provider
    # no prefix matching: gpt-4o-mini-high is not gpt-4o-mini, and the provider must agree
    assert table.rates("openai", "gpt-4o-mini-high") is None
    assert table.rates("azure.ai.openai", "gpt-4o-mini") is None
    # no provider: the model alone, when one provider lists it
    assert table.cost("unknown", "claude-sonnet-4-20250514", {"input": 1000}) == pytest.approx(0.003)


def test_an_exact_dated_entry_wins_over_the_undated_one(tmp_path):
    document = {**TABLE, "models": [*TABLE["models"], {"provider": "openai", "model": "gpt-4o-mini-2024-07-18",
                                                       "input": 1.0, "output": 1.0}]}
    table = build_table(str(write_table(tmp_path / "t.yaml", document)))
    # 1000 input * 1.0 = 1000 -> 0.001 (the dated entry), not 1000*0.15
    assert table.cost("openai", "gpt-4o-mini-2024-07-18", {"input": 1000}) == pytest.approx(0.001)


def test_resolutions_are_remembered_up_to_the_bound(table_file):
    table = build_table(str(table_file), cache_size=2)
    for model in ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "nope", "nope", "gpt-4o-mini"):
        table.rates("openai", model)
    # two names remembered; "nope" resolved twice without being remembered
    assert table.uncached == 2
    assert table.cost("openai", "nope", {"input": 1}) is None


# --- the translator: cost decided once per call, unpriced calls counted ------------------------------


def _llm(provider="openai", model="gpt-4o-mini", cost=None, **tokens) -> Classified:
    c = Classified(Kind.LLM, "agent", True, "")
    c.operation, c.provider, c.model = "chat", provider, model
    c.tokens, c.cost = dict(tokens), cost
    return c


def _translator(table: PriceTable | None) -> tuple[Translator, SeriesStore]:
    store = SeriesStore(clock=ManualClock())
    translator = Translator(store)
    translator.pricing = Pricing(table, store)
    return translator, store


def test_the_translator_prices_calls_without_cost_and_counts_unpriced_ones(table):
    translator, store = _translator(table)
    translator.record(_llm(input=1000, output=500), 0.1)  # 0.00045 (above)
    translator.record(_llm(input=1000, output=500), 0.1, w=2)  # sampled: stands for 2 calls -> 0.0009
    translator.record(_llm(cost=0.5, input=1000), 0.1)  # the span's own cost wins over the table
    translator.record(_llm(model="mystery", input=10), 0.1)  # usage, no cost, no price
    translator.record(_llm(model="mystery", cost=0.25, input=10), 0.1)  # priced by the span: not unpriced
    translator.record(_llm(model="mystery"), 0.1)  # no usage: nothing to price
    translator.record(_llm(model="mystery", input=0, output=0), 0.1)  # zero usage: nothing to price
    uncounted = _llm(model="mystery", input=10)
    uncounted.counted = False  # an outer LLM call: counts nothing
    translator.record(uncounted, 0.1)
    cost = store.value("agent_llm_cost_usd_total", ("agent", "openai", "gpt-4o-mini"))
    # 0.00045 + 0.0009 + 0.5
    assert cost == pytest.approx(0.50135, rel=1e-12)
    assert store.value("agent_llm_cost_usd_total", ("agent", "openai", "mystery")) == 0.25
    assert store.value("agent_llm_unpriced_calls_total", ("openai", "mystery")) == 1
    assert store.value("agent_llm_unpriced_calls_total", ("openai", "gpt-4o-mini")) == 0


def test_with_pricing_off_every_call_with_usage_and_no_cost_is_unpriced():
    translator, store = _translator(None)
    translator.record(_llm(input=1000), 0.1)
    assert store.value("agent_llm_unpriced_calls_total", ("openai", "gpt-4o-mini")) == 1
    assert store.value("agent_llm_cost_usd_total", ("agent", "openai", "gpt-4o-mini")) == 0


def _span(**attrs) -> dict:
    return {"traceId": "0" * 31 + "1", "spanId": "0" * 15 + "1", "name": "chat", "kind": 3,
            "startTimeUnixNano": "1000000000", "endTimeUnixNano": "2000000000",
            "attributes": [{"key": k, "value": ({"intValue": str(v)} if isinstance(v, int) else {"stringValue": v})}
                           for k, v in attrs.items()]}


def _export(*spans: dict) -> bytes:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"spans": list(spans)}]}]}).encode()


def test_spans_and_runtime_events_are_priced_end_to_end(make_sidecar, table_file):
    sidecar = make_sidecar({"pricing": {"table": str(table_file)}})
    body = _export(_span(**{"gen_ai.operation.name": "chat", "gen_ai.agent.name": "a",
                            "gen_ai.provider.name": "anthropic", "gen_ai.response.model": "claude-sonnet-4-20250514",
                            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.cache_read.input_tokens": 800,
                            "gen_ai.usage.output_tokens": 100, "gen_ai.conversation.id": "conv-1"}))
    assert sidecar.post("/v1/traces", body, {"Content-Type": "application/json"})[0] == 200
    # 200 plain input * 3 + 800 cache read * 0.3 + 100 output * 15 = 600 + 240 + 1500 = 2340 -> 0.00234
    assert sidecar.value("agent_llm_cost_usd_total", agent="a", provider="anthropic",
                         model="claude-sonnet-4-20250514") == pytest.approx(0.00234, rel=1e-12)
    # the session the span belongs to adds the same cost
    status, session = get_json(sidecar, "/runtime/session/conv-1")
    assert status == 200 and session["cost"] == pytest.approx(0.00234, rel=1e-9)
    event = {"event_type": "llm_call", "session_id": "s1", "agent": "e", "provider": "openai",
             "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 500}
    assert post_json(sidecar, "/runtime/event", event)[0] == 200
    # 1000*0.15 + 500*0.6 = 450 -> 0.00045
    assert sidecar.value("agent_llm_cost_usd_total", agent="e", provider="openai",
                         model="gpt-4o-mini") == pytest.approx(0.00045, rel=1e-12)
    assert post_json(sidecar, "/runtime/event", {**event, "model": "mystery"})[0] == 200
    assert sidecar.value("agent_llm_unpriced_calls_total", provider="openai", model="mystery") == 1


# --- the shipped table and the config -------------------------------------------------------------------


def test_the_shipped_table_validates_and_says_when_and_where_from():
    path = default_table_path()
    assert path.name == DEFAULT_TABLE
    shipped = read_table(path)
    assert shipped.as_of.year >= 2025
    assert all(url.startswith("https://") for url in shipped.source)
    assert "CHECK THEM AGAINST THE SOURCE" in path.read_text()
    providers = {entry.provider for entry in shipped.models}
    assert {"openai", "anthropic", "google"} <= providers
    table = build_table()
    for provider, model in (("openai", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-sonnet-4-20250514"),
                            ("gcp.gemini", "gemini-2.5-flash")):
        assert table.rates(provider, model) is not None, (provider, model)


def test_config_models_add_and_override_entries(tmp_path):
    config = validate({"pricing": {"models": [
        {"provider": "openai", "model": "gpt-4o-mini", "input": 1.0, "output": 2.0},  # overrides the default
        {"provider": "acme", "model": "rocket-1", "input": 10.0, "output": 20.0, "cache_read": 1.0},  # added
    ]}})
    pricing = Pricing.from_config(config)
    # 1000*1 + 1000*2 = 3000 -> 0.003 (not the shipped gpt-4o-mini price)
    assert pricing.cost("openai", "gpt-4o-mini-2024-07-18", {"input": 1000, "output": 1000}) == pytest.approx(0.003)
    # 1000 input of which 500 cached: 500*10 + 500*1 = 5500 -> 0.0055
    assert pricing.cost("acme", "rocket-1", {"input": 1000, "cache_read": 500}) == pytest.approx(0.0055)
    # the rest of the shipped table stays
    assert pricing.cost("anthropic", "claude-sonnet-4", {"input": 1}) is not None
    assert Pricing.from_config(validate({"pricing": {"enabled": False}})).cost("openai", "gpt-4o", {"input": 1}) is None


def test_config_table_replaces_the_default(table_file):
    pricing = Pricing.from_config(validate({"pricing": {"table": str(table_file)}}))
    assert pricing.cost("openai", "o9", {"input": 1_000_000}) == pytest.approx(2.0)
    assert pricing.cost("anthropic", "claude-opus-4", {"input": 1}) is None  # only in the shipped table


@pytest.mark.parametrize(("models", "path", "fragment"), [
    ([{"provider": "openai", "model": "m", "input": -1, "output": 1}], "pricing.models.0.input", "greater than"),
    ([{"provider": "openai", "model": "m", "input": ".nan", "output": 1}], "pricing.models.0.input", "finite"),
    ([{"provider": "openai", "model": "m", "input": 1, "output": 1e9}], "pricing.models.0.output", "less than"),
    ([{"provider": "openai", "model": "m", "input": 1}], "pricing.models.0.output", "Field required"),
    ([{"provider": "openai", "model": "m", "input": 1, "output": 1, "cache_reed": 1}],
     "pricing.models.0.cache_reed", "did you mean cache_read"),
    ([{"provider": " ", "model": "m", "input": 1, "output": 1}], "pricing.models.0.provider", "blank"),
    ([{"provider": "openai", "model": "m", "input": 1, "output": 1},
      {"provider": "OpenAI", "model": "M", "input": 2, "output": 2}], "pricing.models", "repeats entry 0"),
])
def test_bad_config_entries_are_reported_with_their_location(tmp_path, models, path, fragment):
    file = tmp_path / "agentprom.yaml"
    file.write_text(yaml.safe_dump({"pricing": {"models": models}}).replace("'.nan'", ".nan"))
    with pytest.raises(ConfigError) as info:
        load_config(file, env={})
    problems = {p.path: p for p in info.value.problems}
    assert path in problems, str(info.value)
    assert fragment in problems[path].message


@pytest.mark.parametrize(("text", "fragments"), [
    ("as_of: 2025-01-01\nsource: [x]\nmodels:\n  - {provider: openai, model: m, input: -1, output: x}\n",
     ["models.0.input", "models.0.output", "2 problem(s)"]),
    ("models: [\n", ["not valid YAML: line"]),
    ("source: [x]\nmodels:\n  - {provider: openai, model: m, input: 1, output: 1}\n", ["as_of", "Field required"]),
    ("as_of: 2025-01-01\nsource: [x]\nmodels: []\n", ["models lists no prices"]),
    ("- a\n", ["top level must be a mapping"]),
])
def test_a_malformed_table_is_refused_with_a_clear_error(tmp_path, text, fragments):
    path = write_table(tmp_path / "bad.yaml", text)
    with pytest.raises(PricingError) as info:
        build_table(str(path))
    message = str(info.value)
    assert f"invalid price table in {path}" in message
    for fragment in fragments:
        assert fragment in message
    # check-config reports it under pricing.table, and serve would not start with it
    config = tmp_path / "agentprom.yaml"
    config.write_text(yaml.safe_dump({"pricing": {"table": str(path)}}))
    with pytest.raises(ConfigError) as info:
        load_config(config, env={})
    assert info.value.problems[0].path == "pricing"
    assert str(path) in str(info.value)


# --- reloads (what SIGHUP calls) --------------------------------------------------------------------


def test_reload_picks_up_a_changed_table_and_keeps_the_old_one_when_malformed(tmp_path, caplog):
    path = write_table(tmp_path / "prices.yaml")
    store = SeriesStore(clock=ManualClock())
    pricing = Pricing.from_config(validate({"pricing": {"table": str(path)}}), store)
    # 1e6 * 0.15 = 0.15 USD
    assert pricing.cost("openai", "gpt-4o-mini", {"input": 1_000_000}) == pytest.approx(0.15)
    models = [dict(m) for m in TABLE["models"]]
    models[0]["input"] = 0.30
    write_table(path, {**TABLE, "models": models})
    assert pricing.reload() is True
    assert pricing.cost("openai", "gpt-4o-mini", {"input": 1_000_000}) == pytest.approx(0.30)

    write_table(path, "as_of: 2025-01-01\nsource: [x]\nmodels:\n  - {provider: openai, model: m, input: -1}\n")
    with caplog.at_level(logging.ERROR, logger="agentprom.pricing"):
        assert pricing.reload() is False
    assert pricing.cost("openai", "gpt-4o-mini", {"input": 1_000_000}) == pytest.approx(0.30)  # the old table
    (record,) = [r for r in caplog.records if r.name == "agentprom.pricing"]
    assert "previous one stays in effect" in record.getMessage()
    assert "models.0.input" in record.getMessage() and str(path) in record.getMessage()
    path.unlink()
    assert pricing.reload() is False
    assert "cannot read file" in caplog.records[-1].getMessage()
    assert store.value("agentprom_pricing_reloads_total", ("ok",)) == 1
    assert store.value("agentprom_pricing_reloads_total", ("error",)) == 2


def test_the_sighup_handler_rereads_the_config_and_keeps_the_old_table_on_a_bad_one(make_sidecar, tmp_path):
    sidecar = make_sidecar()
    app = sidecar.app
    shipped = app.pricing.cost("openai", "gpt-4o-mini", {"input": 1_000_000})
    config = tmp_path / "agentprom.yaml"
    config.write_text(yaml.safe_dump({"pricing": {"models": [
        {"provider": "openai", "model": "gpt-4o-mini", "input": 7.0, "output": 7.0}]}}))
    assert sidecar.call(lambda: reload_pricing(app, lambda: load_config(config, env={}))) is True
    assert app.pricing.cost("openai", "gpt-4o-mini", {"input": 1_000_000}) == pytest.approx(7.0)
    config.write_text("pricing:\n  models:\n    - {provider: openai, model: m, input: oops, output: 1}\n")
    assert sidecar.call(lambda: reload_pricing(app, lambda: load_config(config, env={}))) is False
    assert app.pricing.cost("openai", "gpt-4o-mini", {"input": 1_000_000}) == pytest.approx(7.0)
    assert sidecar.value("agentprom_pricing_reloads_total", result="error") == 1
    assert shipped != 7.0


# --- a real SIGHUP to a running `agentprom serve` ---------------------------------------------------------


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return response.read().decode()


def _sample(text: str, name: str, labels: str) -> float | None:
    match = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match[1]) if match else None


def _poll(address: str, name: str, labels: str, want: float, deadline: float) -> None:
    while time.monotonic() < deadline:
        if _sample(_scrape(address), name, labels) == want:
            return
        time.sleep(0.05)
    pytest.fail(f"{name}{{{labels}}} did not reach {want}")


def test_a_real_sighup_reloads_the_table_of_a_running_serve(tmp_path):
    table = write_table(tmp_path / "prices.yaml")
    config = tmp_path / "agentprom.yaml"
    config.write_text(yaml.safe_dump({"pricing": {"table": str(table)}, "server": {
        "otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0"}}))
    process = subprocess.Popen([sys.executable, "-m", "agentprom", "serve", "--config", str(config)],
                               stderr=subprocess.PIPE, text=True, env=_env())
    try:
        addresses = listening_addresses(process, 60)

        def send(span_id: str) -> None:
            span = _span(**{"gen_ai.operation.name": "chat", "gen_ai.agent.name": "a", "gen_ai.provider.name":
                            "openai", "gen_ai.response.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1_000_000})
            span["spanId"] = span_id
            request = urllib.request.Request(f"http://{addresses['otlp_http']}/v1/traces", data=_export(span),
                                             headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200

        labels = 'agent="a",provider="openai",model="gpt-4o-mini"'
        send("0" * 15 + "1")
        # 1e6 input * 0.15 = 0.15 USD
        _poll(addresses["metrics"], "agent_llm_cost_usd_total", labels, 0.15, time.monotonic() + 30)
        models = [dict(m) for m in TABLE["models"]]
        models[0]["input"] = 1.0
        write_table(table, {**TABLE, "models": models})
        process.send_signal(signal.SIGHUP)
        _poll(addresses["metrics"], "agentprom_pricing_reloads_total", 'result="ok"', 1, time.monotonic() + 30)
        send("0" * 15 + "2")
        # 0.15 + 1e6 * 1.0 = 1.15 USD
        _poll(addresses["metrics"], "agent_llm_cost_usd_total", labels, 1.15, time.monotonic() + 30)

        write_table(table, "as_of: 2025-01-01\nsource: [x]\nmodels: nonsense\n")
        process.send_signal(signal.SIGHUP)
        _poll(addresses["metrics"], "agentprom_pricing_reloads_total", 'result="error"', 1, time.monotonic() + 30)
        send("0" * 15 + "3")
        # the old table stays: 1.15 + 1.0 = 2.15 USD
        _poll(addresses["metrics"], "agent_llm_cost_usd_total", labels, 2.15, time.monotonic() + 30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        log = process.stderr.read()
        assert "price table not reloaded, the previous one stays in effect" in log
        assert str(table) in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
