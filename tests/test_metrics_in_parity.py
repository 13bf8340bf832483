"""Parity with the reference: the same instruments recorded by the real OTel SDK into
opentelemetry-exporter-prometheus and, over OTLP, into the sidecar must expose the same
names, labels and values, apart from the differences listed in docs/metrics-in.md."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.otel_metrics import otlp_meter_provider

#: reference name -> ours. The only one: a gauge of unit "1" gets "_ratio" (specification and
#: Collector); the reference maps "1" to no suffix (docs/metrics-in.md, "Differences").
NAME_DIFFERENCES = {"cpu_utilization": "cpu_utilization_ratio"}


class Instruments:
    """One set of instruments on one MeterProvider, driven in rounds."""

    def __init__(self, provider: MeterProvider) -> None:
        self.state = {"cpu": 0.0, "faults": 0}
        meter = provider.get_meter("parity", "1.0")
        self.requests = meter.create_counter("agent.requests", unit="{request}", description="Requests handled.")
        self.sent = meter.create_counter("bytes.sent", unit="By")
        self.depth = meter.create_up_down_counter("queue.depth", unit="{item}", description="Items queued.")
        self.duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s",
                                               description="GenAI operation duration.")
        self.tokens = meter.create_histogram("tokens.per.call", explicit_bucket_boundaries_advisory=[10, 100, 1000])
        self.temperature = meter.create_gauge("room.temperature", unit="Cel")
        meter.create_observable_gauge("cpu.utilization", [self._cpu], unit="1")
        meter.create_observable_counter("page.faults", [self._faults])

    def _cpu(self, options):
        yield Observation(self.state["cpu"], {"core": "0"})

    def _faults(self, options):
        yield Observation(self.state["faults"])

    def round(self, n: int) -> None:
        self.requests.add(3 + n, {"route": "/chat", "http.response.status_code": 200})
        if n != 1:  # a label set that skips a round (a delta gap)
            self.requests.add(1, {"route": "/tools", "retry": True})
        self.sent.add(1024 * (n + 1))
        self.depth.add(5 if n % 2 == 0 else -3, {"queue": "main"})
        for value in (0.25, 1.5, 12.0)[: n + 1]:
            self.duration.record(value, {"gen_ai.operation.name": "chat", "gen_ai.system": "openai"})
        self.tokens.record(50 * (n + 1), {"gen_ai.token.type": "input"})
        self.temperature.set(20.5 + n, {"room": "lab"})
        self.state["cpu"] = 0.25 * (n + 1)
        self.state["faults"] += 7


def samples(text: str, keep) -> dict[tuple[str, frozenset], float]:
    """(sample name, non-empty labels) -> value; empty labels are absent in Prometheus."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset(
                (k, repr(float(v)) if k in ("le", "quantile") else v)  # "10" and "10.0" are one bound
                for k, v in sample.labels.items() if v != ""
            )
            if keep(sample.name, dict(labels)):
                key = (sample.name, labels)
                assert key not in out, f"duplicate sample {key}"
                out[key] = sample.value
    return out


def _ours(name: str) -> str:
    for theirs, ours in NAME_DIFFERENCES.items():
        if name.startswith(theirs):
            return ours + name[len(theirs):]
    return name


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_parity_with_reference_exporter(sidecar, protocol, temporality):
    resource = Resource.create({"service.name": "parity-agent", "service.instance.id": "i-1"})
    registry = CollectorRegistry()
    reference = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)], resource=resource)
    endpoint = sidecar.grpc_address if protocol == "grpc" else sidecar.http_url
    with otlp_meter_provider(endpoint, protocol, resource, temporality) as provider:
        theirs_instruments, ours_instruments = Instruments(reference), Instruments(provider)
        for n in range(3):
            theirs_instruments.round(n)
            ours_instruments.round(n)
            assert provider.force_flush()
    expected_text = generate_latest(registry).decode()
    reference.shutdown()

    theirs = samples(expected_text, lambda name, labels: True)
    theirs = {(_ours(name), labels): value for (name, labels), value in theirs.items()}
    ours = samples(sidecar.scrape(),
                   lambda name, labels: labels.get("otel_scope_name") == "parity" or name == "target_info")
    assert len(theirs) >= 32  # every instrument is there, with its buckets
    assert ours == theirs
    assert sidecar.value("agentprom_metric_points_dropped_total", reason="out_of_order") == 0
