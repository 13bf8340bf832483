"""The Helm chart (helm/agentprom), with the real helm binary and real schemas.

Every case of a values matrix is rendered with ``helm template``; every
built-in manifest is validated by kubernetes-validate in strict mode (unknown
fields are errors) for the oldest Kubernetes the chart supports and the newest
the installed kubernetes-validate knows; the Prometheus Operator resources are
validated against the CRD schemas published as pydantic models
(cloudcoil-models-prometheus-operator), made strict the same way; the rendered
agentprom configuration passes ``agentprom check-config``; and the pieces must
fit together (selectors, port names, the config checksum).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from agentprom.config.schema import parse_address
from tests.conftest import ROOT, tool

CHART = ROOT / "helm" / "agentprom"
PARENT_EXAMPLE = ROOT / "examples" / "helm-sidecar"
#: the chart's minimum (Chart.yaml kubeVersion) and the newest kubernetes-validate 1.37 knows
K8S_VERSIONS = ("1.29.0", "1.37.0")
OPERATOR_APIS = ("monitoring.coreos.com/v1/PodMonitor", "monitoring.coreos.com/v1/ServiceMonitor",
                 "monitoring.coreos.com/v1/PrometheusRule")
CONFIG_PATH = "/etc/agentprom/agentprom.yaml"


# --- running helm -------------------------------------------------------------

@pytest.fixture(scope="session")
def helm(tmp_path_factory) -> "Helm":
    return Helm(tool("helm"), tmp_path_factory.mktemp("helm-home"))


class Helm:
    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))},
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True, timeout=120)

    def template(self, values: dict[str, Any], chart: Path = CHART, api_versions: tuple[str, ...] = (),
                     release: str = "rel") -> subprocess.CompletedProcess:
        args = ["template", release, str(chart), "--namespace", "agents", "-f", "-"]
        for api in api_versions:
            args += ["--api-versions", api]
        return subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True,
                              input=yaml.safe_dump(values), timeout=120)


def render(helm: Helm, values: dict[str, Any], chart: Path = CHART, api_versions: tuple[str, ...] = ()) -> list[dict]:
    done = helm.template(values, chart, api_versions)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


# --- validation -----------------------------------------------------------------

def _strict(schema: Any) -> Any:
    """Forbid unknown fields everywhere, as ``kubernetes-validate --strict`` does for built-in kinds."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def operator_validator(kind: str) -> jsonschema.protocols.Validator:
    """A strict JSON Schema validator for a prometheus-operator CRD, from its published models."""
    from cloudcoil.models.prometheus_operator import v1

    schema = _strict(getattr(v1, kind).model_json_schema(by_alias=True, mode="validation"))
    return jsonschema.Draft202012Validator(schema)


def validate(doc: dict) -> None:
    """Validate one manifest: kubernetes-validate (strict) or the operator CRD schema."""
    api, kind = doc["apiVersion"], doc["kind"]
    if api.startswith("monitoring.coreos.com/"):
        assert api == "monitoring.coreos.com/v1"
        errors = sorted(operator_validator(kind).iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, f"{kind} {doc['metadata']['name']}: " + "; ".join(
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{kind} {doc['metadata']['name']} is invalid for Kubernetes {version}: {exc}") from None


def check_config(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "agentprom.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "agentprom", "check-config", str(path)],
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True)


# --- the rendered objects -----------------------------------------------------------

def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_templates(docs: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(metadata, spec) of every pod the manifests would create."""
    for doc in docs:
        if doc["kind"] == "Pod":
            yield doc["metadata"], doc["spec"]
        elif doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            yield doc["spec"]["template"]["metadata"], doc["spec"]["template"]["spec"]


def agentprom_container(spec: dict) -> dict:
    found = [c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == "agentprom"]
    assert len(found) == 1
    return found[0]


def rendered_config(docs: list[dict]) -> str:
    configmaps = [d for d in by_kind(docs, "ConfigMap") if "agentprom.yaml" in d.get("data", {})]
    assert len(configmaps) == 1
    return configmaps[0]["data"]["agentprom.yaml"]


# --- the values matrix ------------------------------------------------------------------

CASES: dict[str, dict[str, Any]] = {
    "sidecar-defaults": {},
    "sidecar-everything": {
        "sidecar": {"native": True, "scrapeAnnotations": True},
        "monitoring": {"podMonitor": {"enabled": True, "selector": {"matchLabels": {"app": "my-agent"}},
                                      "labels": {"release": "kube-prometheus-stack"}}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "dashboards": {"enabled": True, "namespace": "monitoring"},
        "log": {"level": "debug", "format": "text"},
        "config": {"store": {"max_series_per_metric": 5000, "label_allow": {"tool": "^[a-z_]+$"}}},
        "data": {"volume": {"persistentVolumeClaim": {"claimName": "agentprom-data"}}},
        "extraEnv": [{"name": "AGENTPROM_LOG_LEVEL", "value": "info"}],
        "sessions": {"jsonl": {"enabled": True}},
    },
    "gateway-defaults": {"mode": "gateway"},
    "gateway-autoscaled": {
        "mode": "gateway",
        "ports": {"otlpGrpc": 14317, "otlpHttp": 14318, "metrics": 19464},
        "gateway": {
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
            "podAnnotations": {"example.com/team": "agents"},
            "podLabels": {"team": "agents"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "observability", "effect": "NoSchedule"}],
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                           "whenUnsatisfiable": "ScheduleAnyway",
                                           "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "agentprom"}}}],
            "priorityClassName": "observability",
        },
        "imagePullSecrets": [{"name": "registry"}],
        "image": {"repository": "registry.example.com/agentprom", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
        "monitoring": {"serviceMonitor": {"enabled": True}},
        "prometheusRule": {"enabled": True},
        "dashboards": {"enabled": True},
        "sessions": {"jsonl": {"enabled": True, "directory": "sessions/log", "rotateBytes": 8388608,
                               "keepFiles": 0}},
        "config": {"jsonl": {"queue_records": 500}},
    },
    "gateway-replicas-loadbalancer": {
        "mode": "gateway",
        "fullnameOverride": "otlp-gateway",
        "gateway": {"replicas": 3, "service": {"type": "LoadBalancer", "annotations": {"example.com/lb": "internal"}},
                    "serviceAccount": {"create": False, "name": "existing"}},
        "otlpHost": "::",
    },
    "gateway-fleet": {
        "mode": "gateway",
        "gateway": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8}},
        "collectorTier": {"enabled": True, "replicas": 3, "resolver": "k8s"},
        "imagePullSecrets": [{"name": "registry"}],
    },
}


@pytest.fixture(scope="module")
def rendered(helm) -> dict[str, list[dict]]:
    return {name: render(helm, values, api_versions=OPERATOR_APIS if "everything" in name else ())
            for name, values in CASES.items()}


def test_lint_strict_in_both_modes(helm):
    for mode in ("sidecar", "gateway"):
        done = helm.run("lint", "--strict", str(CHART), "--set", f"mode={mode}")
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_every_manifest_is_valid(rendered, case):
    docs = rendered[case]
    assert docs
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_config_passes_check_config(rendered, case, tmp_path):
    done = check_config(rendered_config(rendered[case]), tmp_path)
    assert done.returncode == 0, done.stderr


def test_config_passthrough_is_checked_by_agentprom(helm, tmp_path):
    docs = render(helm, {"config": {"store": {"max_series_per_metric": -1}, "nonsense": {"x": 1}}})
    done = check_config(rendered_config(docs), tmp_path)
    assert done.returncode == 2
    assert "nonsense" in done.stderr and "store.max_series_per_metric" in done.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_pods_are_locked_down_and_probed(rendered, case):
    docs = rendered[case]
    pods = list(pod_templates(docs))
    if CASES[case].get("mode") == "gateway":
        # the Deployment and the helm test pod, and the collector tier's Deployment
        assert len(pods) == 2 + CASES[case].get("collectorTier", {}).get("enabled", False)
    for metadata, spec in pods:
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert security.get("runAsNonRoot") or spec["securityContext"]["runAsNonRoot"]
            assert container["resources"]["limits"]["memory"]
            for port in container.get("ports", []):
                assert len(port["name"]) <= 15, f"port name {port['name']} longer than 15 characters"
    for metadata, spec in pods:
        if any(c["name"] == "agentprom" for c in spec["containers"]):
            container = agentprom_container(spec)
            ports = {p["name"] for p in container["ports"]}
            assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
            assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert container[probe]["httpGet"]["port"] in ports
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert volumes[mounts["/etc/agentprom"]]["configMap"]["name"] == one_config_name(docs)
            assert "/var/lib/agentprom" in mounts and "/tmp" in mounts
            assert container["args"] == ["serve", "--config", CONFIG_PATH]
            checksum = metadata["annotations"]["checksum/agentprom-config"]
            assert checksum == hashlib.sha256(rendered_config(docs).rstrip("\n").encode()).hexdigest()


def one_config_name(docs: list[dict]) -> str:
    return [d for d in by_kind(docs, "ConfigMap") if "agentprom.yaml" in d.get("data", {})][0]["metadata"]["name"]


def test_sidecar_mode_renders_config_and_pod_monitor_only(rendered):
    docs = rendered["sidecar-defaults"]
    assert sorted(d["kind"] for d in docs) == ["ConfigMap"]  # no operator API in a bare helm template
    config = yaml.safe_load(rendered_config(docs))
    assert parse_address(config["server"]["otlp_grpc"]) == ("127.0.0.1", 4317)
    assert parse_address(config["server"]["otlp_http"]) == ("127.0.0.1", 4318)

    docs = rendered["sidecar-everything"]
    assert not by_kind(docs, "Deployment") and not by_kind(docs, "Service")
    monitor = one(docs, "PodMonitor")
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "ap-metrics" and endpoint["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "agentprom"} in endpoint["relabelings"]
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": "my-agent"}}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    config = yaml.safe_load(rendered_config(docs))
    assert config["store"]["max_series_per_metric"] == 5000 and config["log"] == {"level": "debug", "format": "text"}


@pytest.mark.parametrize("case", ["gateway-defaults", "gateway-autoscaled", "gateway-replicas-loadbalancer"])
def test_gateway_pieces_fit_together(rendered, case):
    docs = rendered[case]
    values = CASES[case]
    ports = {"otlpGrpc": 4317, "otlpHttp": 4318, "metrics": 9464, **values.get("ports", {})}
    deployment, service = one(docs, "Deployment"), one(docs, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container = agentprom_container(deployment["spec"]["template"]["spec"])
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {p["name"]: (p["port"], container_ports[p["targetPort"]]) for p in service["spec"]["ports"]} == {
        "otlp-grpc": (ports["otlpGrpc"],) * 2, "otlp-http": (ports["otlpHttp"],) * 2,
        "metrics": (ports["metrics"],) * 2}
    config = yaml.safe_load(rendered_config(docs))["server"]
    host = values.get("otlpHost", "0.0.0.0")
    assert parse_address(config["otlp_grpc"]) == (host, ports["otlpGrpc"])
    assert parse_address(config["otlp_http"]) == (host, ports["otlpHttp"])
    assert parse_address(config["metrics"]) == ("0.0.0.0", ports["metrics"])

    test_pod = one(docs, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["args"][-1] == (
        f"http://{service['metadata']['name']}:{ports['metrics']}/-/ready")

    autoscaled = values.get("gateway", {}).get("autoscaling", {}).get("enabled", False)
    replicas = values.get("gateway", {}).get("replicas", 1)
    assert ("replicas" in deployment["spec"]) is not autoscaled
    assert len(by_kind(docs, "HorizontalPodAutoscaler")) == autoscaled
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert len(pdbs) == (autoscaled or replicas > 1)
    for pdb in pdbs:
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for monitor in by_kind(docs, "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    created = [a["metadata"]["name"] for a in by_kind(docs, "ServiceAccount")]
    assert created == [account] or (not created and account == "existing")


def test_operator_resources_follow_the_cluster_when_auto(helm):
    for mode, kind in (("sidecar", "PodMonitor"), ("gateway", "ServiceMonitor")):
        assert not by_kind(render(helm, {"mode": mode}), kind)
        assert len(by_kind(render(helm, {"mode": mode}, api_versions=OPERATOR_APIS), kind)) == 1
        key = "podMonitor" if kind == "PodMonitor" else "serviceMonitor"
        off = {"mode": mode, "monitoring": {key: {"enabled": False}}}
        assert not by_kind(render(helm, off, api_versions=OPERATOR_APIS), kind)


# --- the operator values (auto / true / false) against README.md's table ----------------------

#: value path of each Prometheus Operator kind
OPERATOR_VALUES = {"PodMonitor": "monitoring.podMonitor.enabled",
                   "ServiceMonitor": "monitoring.serviceMonitor.enabled",
                   "PrometheusRule": "prometheusRule.enabled"}
RULE_FILES = len([p for p in (ROOT / "rules").iterdir() if p.suffix in (".yml", ".yaml")])


def readme_render_table() -> dict[str, tuple[set[str], dict[str, str]]]:
    """README.md's "what the chart renders" table: mode -> (kinds always rendered, {operator kind: value})."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("What the chart renders with the\ndefault values", 1)[1].split("\n\n", 2)[1]
    table = {}
    for row in section.splitlines()[2:]:
        mode, always, operator = (cell.strip() for cell in row.strip("|").split("|"))
        kinds = {item.strip().split()[0] for item in always.split(",")}
        values = dict(re.findall(r"(\w+) [^(,]*\(`([\w.]+)`\)", operator))
        table[mode.strip("`")] = (kinds, values)
    assert set(table) == {"sidecar", "gateway"}, table
    return table


def with_value(path: str, value: Any, base: dict[str, Any]) -> dict[str, Any]:
    values = copy.deepcopy(base)
    node = values
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return values


def kinds_of(docs: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for doc in docs:
        counts[doc["kind"]] = counts.get(doc["kind"], 0) + 1
    return counts


@pytest.mark.parametrize("mode", ["sidecar", "gateway"])
@pytest.mark.parametrize("operator_api", [False, True], ids=["bare-template", "operator-api"])
@pytest.mark.parametrize("kind", list(OPERATOR_VALUES))
@pytest.mark.parametrize("value", ["auto", True, False, None], ids=["auto", "true", "false", "default"])
def test_each_operator_value_in_each_mode_renders_what_readme_says(helm, mode, operator_api, kind, value):
    always, operator = readme_render_table()[mode]
    assert set(operator.values()) <= set(OPERATOR_VALUES.values())
    base = {"mode": mode}
    values = base if value is None else with_value(OPERATOR_VALUES[kind], value, base)
    docs = render(helm, values, api_versions=OPERATOR_APIS if operator_api else ())
    for doc in docs:
        validate(doc)
    expected = set(always)
    for other, path in operator.items():
        setting = value if (other == kind and value is not None) else "auto"
        if setting is True or (setting == "auto" and operator_api):
            expected.add(other)
    counts = kinds_of(docs)
    assert set(counts) == expected, (values, operator_api)
    assert counts.get("PrometheusRule", RULE_FILES) == RULE_FILES  # "per rule file"
    if kind not in operator:  # the other mode's monitor: no value renders it here
        assert kind not in counts


@pytest.mark.parametrize("mode, kind", [("sidecar", "PodMonitor"), ("gateway", "ServiceMonitor")])
def test_notes_say_what_was_rendered_and_why(helm, tmp_path, mode, kind):
    path = OPERATOR_VALUES[kind]
    bare = render_notes(helm, {"mode": mode}, tmp_path)
    assert (f"{kind}: not rendered, the cluster does not serve monitoring.coreos.com/v1/{kind} "
            f"({path}=auto; true forces it)") in bare
    assert "PrometheusRule: not rendered, the cluster does not serve" in bare
    assert ("sidecar.scrapeAnnotations=true" in bare) is (mode == "sidecar")
    served = render_notes(helm, {"mode": mode}, tmp_path, api_versions=OPERATOR_APIS)
    assert f"{kind}: rendered ({path}=auto)" in served and "PrometheusRule: rendered" in served
    forced = render_notes(helm, with_value(path, True, {"mode": mode}), tmp_path)
    assert f"{kind}: rendered ({path}=true)" in forced
    off = render_notes(helm, with_value(path, False, {"mode": mode}), tmp_path, api_versions=OPERATOR_APIS)
    assert f"{kind}: not rendered ({path}=false)" in off


def test_jsonl_log_lives_on_the_data_volume(rendered):
    """sessions.jsonl renders agentprom's jsonl section, with its directory on the writable data
    volume (the image's only writable path); off, there is no jsonl section at all."""
    assert "jsonl" not in yaml.safe_load(rendered_config(rendered["sidecar-defaults"]))
    assert yaml.safe_load(rendered_config(rendered["sidecar-defaults"]))["sessions"] == {"enabled": True}
    config = yaml.safe_load(rendered_config(rendered["sidecar-everything"]))
    assert config["jsonl"] == {"enabled": True, "directory": "/var/lib/agentprom/jsonl",
                               "rotate_bytes": 67108864, "keep_files": 4}
    config = yaml.safe_load(rendered_config(rendered["gateway-autoscaled"]))
    assert config["jsonl"] == {"enabled": True, "directory": "/var/lib/agentprom/sessions/log",
                               "rotate_bytes": 8388608, "keep_files": 0, "queue_records": 500}
    spec = one(rendered["gateway-autoscaled"], "Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in agentprom_container(spec)["volumeMounts"]}
    data = mounts["/var/lib/agentprom"]
    assert not data.get("readOnly") and agentprom_container(spec)["securityContext"]["readOnlyRootFilesystem"]
    assert Path(config["jsonl"]["directory"]).is_relative_to("/var/lib/agentprom")
    assert data["name"] in {v["name"] for v in spec["volumes"]}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'VOLUME ["/var/lib/agentprom"]' in dockerfile  # the image declares the same path


def test_values_schema_rejects_mistakes(helm):
    for values, message in (
        ({"mode": "gatway"}, "mode"),
        ({"gateway": {"replicaz": 2}}, "replicaz"),
        ({"ports": {"metrics": 70000}}, "metrics"),
        ({"monitoring": {"podMonitor": {"enabled": "yes"}}}, "enabled"),
        ({"sessions": {"jsnl": {"enabled": True}}}, "jsnl"),
        ({"sessions": {"jsonl": {"directory": "../etc"}}}, "directory"),
        ({"sessions": {"jsonl": {"directory": "/var/log"}}}, "directory"),
        ({"sessions": {"jsonl": {"rotateBytes": 100}}}, "rotateBytes"),
        ({"sessions": {"jsonl": {"keepFiles": "4"}}}, "keepFiles"),
        ({"sessions": {"enabled": False, "jsonl": {"enabled": True}}}, "needs sessions.enabled"),
    ):
        done = helm.template(values)
        assert done.returncode != 0 and message in done.stderr, (values, done.stderr)


# --- the collector tier (collectorTier): OTLP routed by trace id over the gateway replicas --------

COLLECTOR_CONFIG_KEY = "collector.yaml"


def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def collector_config(docs: list[dict]) -> dict:
    configmaps = [d for d in by_kind(docs, "ConfigMap") if COLLECTOR_CONFIG_KEY in d.get("data", {})]
    assert len(configmaps) == 1
    return yaml.safe_load(configmaps[0]["data"][COLLECTOR_CONFIG_KEY])


@pytest.mark.parametrize("resolver", ["dns", "k8s"])
def test_collector_tier_routes_each_trace_to_one_gateway_replica(helm, resolver):
    values = {"mode": "gateway", "gateway": {"replicas": 3}, "ports": {"otlpGrpc": 14317},
              "collectorTier": {"enabled": True, "resolver": resolver}}
    docs = render(helm, values, api_versions=OPERATOR_APIS)
    for doc in docs:
        validate(doc)
    gateway, collector = named(docs, "Deployment", "rel-agentprom"), named(docs, "Deployment", "rel-agentprom-collector")
    gateway_pod, collector_pod = gateway["spec"]["template"], collector["spec"]["template"]

    # The collector's configuration: the contrib loadbalancing exporter, by trace id, to the headless Service.
    config = collector_config(docs)
    headless = named(docs, "Service", "rel-agentprom-headless")
    exporter = config["exporters"]["loadbalancing"]
    assert exporter["routing_key"] == "traceID"
    assert exporter["protocol"]["otlp"]["tls"] == {"insecure": True}
    assert "endpoint" not in exporter["protocol"]["otlp"]  # the exporter fills it in per backend
    if resolver == "dns":
        assert exporter["resolver"] == {"dns": {"hostname": "rel-agentprom-headless.agents.svc.cluster.local",
                                                "port": "14317", "interval": "5s", "timeout": "1s"}}
    else:
        assert exporter["resolver"] == {"k8s": {"service": "rel-agentprom-headless.agents", "ports": [14317]}}
    metrics_exporter = config["exporters"]["loadbalancing/metrics"]
    assert metrics_exporter["routing_key"] == "resource" and metrics_exporter["resolver"] == exporter["resolver"]
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["loadbalancing"]
    assert pipelines["logs"]["exporters"] == ["loadbalancing"]  # evaluation records follow their trace
    assert pipelines["metrics"]["exporters"] == ["loadbalancing/metrics"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config[kind], f"{component} is used but not configured"
    assert set(config["service"]["extensions"]) == set(config["extensions"])

    # The headless Service: the gateway's pods, on their OTLP/gRPC port; no metrics port, so that
    # the ServiceMonitor (port metrics) scrapes each replica once, through the main Service.
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(headless["spec"]["selector"], gateway_pod["metadata"]["labels"])
    assert not selects(headless["spec"]["selector"], collector_pod["metadata"]["labels"])
    gateway_ports = {p["name"]: p["containerPort"] for p in agentprom_container(gateway_pod["spec"])["ports"]}
    (port,) = headless["spec"]["ports"]
    assert port["port"] == gateway_ports[port["targetPort"]] == 14317
    for monitor in by_kind(docs, "ServiceMonitor"):
        ports = {p["name"] for s in by_kind(docs, "Service")
                 if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"]) for p in s["spec"]["ports"]}
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        scraped = [s["metadata"]["name"] for s in by_kind(docs, "Service")
                   if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
                   and "metrics" in {p["name"] for p in s["spec"]["ports"]}]
        assert scraped == ["rel-agentprom"] and "metrics" in ports

    # Neither tier's selectors pick the other's pods (a shared name label would make the gateway
    # Service send OTLP to collectors, and the Deployments fight over pods).
    main_service = named(docs, "Service", "rel-agentprom")
    tier_service = named(docs, "Service", "rel-agentprom-collector")
    assert not selects(main_service["spec"]["selector"], collector_pod["metadata"]["labels"])
    assert not selects(gateway["spec"]["selector"]["matchLabels"], collector_pod["metadata"]["labels"])
    assert not selects(collector["spec"]["selector"]["matchLabels"], gateway_pod["metadata"]["labels"])
    assert selects(tier_service["spec"]["selector"], collector_pod["metadata"]["labels"])
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        assert not selects(pdb["spec"]["selector"]["matchLabels"], collector_pod["metadata"]["labels"])

    # The collector pod: pinned image, its config mounted and checksummed, probes on health_check,
    # the receivers and its own metrics on the ports the Service and the pod name.
    spec = collector_pod["spec"]
    (container,) = spec["containers"]
    repository, _, tag = container["image"].rpartition(":")
    assert repository == "otel/opentelemetry-collector-contrib" and re.fullmatch(r"\d+\.\d+\.\d+", tag)
    assert collector["spec"]["replicas"] == 2
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config_text = [d for d in by_kind(docs, "ConfigMap") if COLLECTOR_CONFIG_KEY in d.get("data", {})][0]["data"][COLLECTOR_CONFIG_KEY]
    assert collector_pod["metadata"]["annotations"]["checksum/collector-config"] == hashlib.sha256(
        config_text.rstrip("\n").encode()).hexdigest()
    (config_flag,) = container["args"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (volume,) = [name for name, v in volumes.items() if v.get("configMap", {}).get("name") == "rel-agentprom-collector"]
    assert config_flag == f"--config={mounts[volume]}/{COLLECTOR_CONFIG_KEY}"
    env = {e["name"] for e in container["env"]}
    for endpoint, port_name in ((config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"], "otlp-grpc"),
                                (config["receivers"]["otlp"]["protocols"]["http"]["endpoint"], "otlp-http"),
                                (config["extensions"]["health_check"]["endpoint"], "health")):
        host, _, port_number = endpoint.rpartition(":")
        assert host == "${env:MY_POD_IP}" and "MY_POD_IP" in env
        assert int(port_number) == ports[port_name]
    prometheus = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert prometheus["port"] == ports["metrics"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "health"
    assert {p["name"]: (p["port"], ports[p["targetPort"]]) for p in tier_service["spec"]["ports"]} == {
        "otlp-grpc": (14317, 4317), "otlp-http": (4318, 4318)}

    # The Kubernetes API: only the k8s resolver needs it, and then only to read endpoints.
    account = named(docs, "ServiceAccount", spec["serviceAccountName"])
    assert spec["automountServiceAccountToken"] is account["automountServiceAccountToken"] is (resolver == "k8s")
    if resolver == "dns":
        assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")
    else:
        role, binding = one(docs, "Role"), one(docs, "RoleBinding")
        assert {(g, r, tuple(rule["verbs"])) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]} == {
            ("discovery.k8s.io", "endpointslices", ("get", "list", "watch")), ("", "endpoints", ("get", "list", "watch"))}
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": spec["serviceAccountName"], "namespace": "agents"}]


def test_collector_tier_is_off_by_default_and_renders_nothing(helm):
    for values in ({"mode": "gateway"}, {"mode": "gateway", "collectorTier": {"enabled": False, "resolver": "k8s"}}):
        docs = render(helm, values, api_versions=OPERATOR_APIS)
        assert len(by_kind(docs, "Deployment")) == 1 and len(by_kind(docs, "Service")) == 1
        assert not [d for d in docs if "collector" in d["metadata"]["name"] or "headless" in d["metadata"]["name"]]
        assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")
    with open(CHART / "values.yaml") as values_file:
        assert yaml.safe_load(values_file)["collectorTier"]["enabled"] is False


def test_collector_tier_needs_gateway_mode(helm):
    done = helm.template({"collectorTier": {"enabled": True}})
    assert done.returncode != 0
    assert "collectorTier.enabled needs mode=gateway" in done.stderr


def test_collector_tier_config_is_merged_over_the_rendered_one(helm):
    docs = render(helm, {"mode": "gateway", "collectorTier": {"enabled": True, "config": {
        "processors": {"batch": {"send_batch_size": 2048}},
        "exporters": {"loadbalancing": {"protocol": {"otlp": {"timeout": "30s"}}}}}}})
    config = collector_config(docs)
    assert config["processors"]["batch"] == {"send_batch_size": 2048}
    assert config["exporters"]["loadbalancing"]["protocol"]["otlp"] == {"timeout": "30s", "tls": {"insecure": True}}
    assert config["exporters"]["loadbalancing"]["routing_key"] == "traceID"


def test_notes_point_agents_at_the_collector_tier(helm, tmp_path):
    text = render_notes(helm, {"mode": "gateway", "collectorTier": {"enabled": True}}, tmp_path)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://rel-agentprom-collector.agents.svc:4317" in text
    assert "routing_key traceID" in text and "rel-agentprom-headless" in text


# --- store credentials from a Secret (storage) ------------------------------------------------------

STORAGE_SECRET = {"existingSecret": "agentprom-stores",
                  "secretKeys": {"postgresDsn": "dsn", "postgresPassword": "pg-password",
                                 "redisUrl": "redis-url", "redisPassword": "redis-password"}}


def storage_schema_known() -> bool:
    from agentprom.config import schema

    return "storage" in schema.Config.model_fields


@pytest.mark.parametrize("mode", ["sidecar", "gateway"])
def test_storage_credentials_come_from_the_secret(helm, tmp_path, mode):
    values = {"mode": mode, "storage": STORAGE_SECRET, "extraEnv": [{"name": "TZ", "value": "UTC"}],
              "config": {"storage": {"source": "eu-1", "postgres": {"batch_records": 200},
                                     "redis": {"maxlen": 5000}}}}
    docs = render(helm, values)
    for doc in docs:
        validate(doc)
    if mode == "gateway":
        container = agentprom_container(one(docs, "Deployment")["spec"]["template"]["spec"])
    else:
        container = agentprom_container(notes_pod_template(render_notes(helm, values, tmp_path))["spec"])
    env = {e["name"]: e for e in container["env"]}
    expected = {"AGENTPROM_POSTGRES_DSN": "dsn", "AGENTPROM_POSTGRES_PASSWORD": "pg-password",
                "AGENTPROM_REDIS_URL": "redis-url", "AGENTPROM_REDIS_PASSWORD": "redis-password"}
    for name, key in expected.items():
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "agentprom-stores", "key": key}}
    assert env["TZ"] == {"name": "TZ", "value": "UTC"}  # extraEnv is kept
    text = rendered_config(docs)
    config = yaml.safe_load(text)
    assert config["storage"] == {"source": "eu-1",
                                 "postgres": {"password_env": "AGENTPROM_POSTGRES_PASSWORD", "batch_records": 200},
                                 "redis": {"password_env": "AGENTPROM_REDIS_PASSWORD", "maxlen": 5000}}
    assert "agentprom-stores" not in text and "dsn" not in text
    if storage_schema_known():  # agentprom's storage section (issue #13) checks the rendered one
        done = check_config(text, tmp_path)
        assert done.returncode == 0, done.stderr


def test_storage_secret_keys_are_optional_one_by_one(helm):
    docs = render(helm, {"mode": "gateway", "storage": {"existingSecret": "s", "secretKeys": {"redisUrl": "url"}}})
    env = agentprom_container(one(docs, "Deployment")["spec"]["template"]["spec"])["env"]
    assert env == [{"name": "AGENTPROM_REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "s", "key": "url"}}}]
    assert "storage" not in yaml.safe_load(rendered_config(docs))
    docs = render(helm, {"mode": "gateway"})
    assert "env" not in agentprom_container(one(docs, "Deployment")["spec"]["template"]["spec"])


def test_values_schema_knows_every_storage_key():
    """config.storage in values.schema.json (unknown keys rejected) lists agentprom's storage keys."""
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]["properties"]["storage"]
    keys = {"": set(schema["properties"])} | {name: set(schema["properties"][name]["properties"])
                                               for name in ("postgres", "redis")}
    assert keys == {"": {"source", "retry_max_seconds", "postgres", "redis"},
                    "postgres": {"dsn", "password_env", "password_file", "batch_records", "connect_timeout_seconds",
                                 "query_timeout_seconds", "migrate_on_start"},
                    "redis": {"url", "password_env", "password_file", "runtime_events_stream", "agent_events_stream",
                              "maxlen", "batch_records", "connect_timeout_seconds"}}
    if storage_schema_known():
        from agentprom.config.schema import Config

        model = Config.model_fields["storage"].annotation
        assert keys[""] == set(model.model_fields)
        for name in ("postgres", "redis"):
            assert keys[name] == set(model.model_fields[name].annotation.model_fields), name


def test_values_schema_and_checks_reject_fleet_mistakes(helm):
    for values, message in (
        ({"mode": "gateway", "collectorTier": {"enabled": True, "resolver": "static"}}, "resolver"),
        ({"mode": "gateway", "collectorTier": {"image": {"repository": "otel/opentelemetry-collector-contrib",
                                                         "tag": "latest"}}}, "tag"),
        ({"collectorTier": {"replica": 2}}, "replica"),
        ({"collectorTier": {"dns": {"interval": "five seconds"}}}, "interval"),
        ({"config": {"storage": {"postgres": {"dsnn": "x"}}}}, "dsnn"),
        ({"config": {"storage": {"redis": {"maxlen": 0}}}}, "maxlen"),
        ({"config": {"storage": {"postgres": {"password_env": "NOT-A-NAME"}}}}, "password_env"),
        ({"config": {"storage": {"retry_max_seconds": 0}}}, "retry_max_seconds"),
        ({"storage": {"secretKeys": {"postgresDSN": "dsn"}}}, "postgresDSN"),
        ({"storage": {"existingSecret": "s"}}, "no storage.secretKeys entry"),
        ({"storage": {"secretKeys": {"postgresDsn": "dsn"}}}, "storage.existingSecret (the Secret's name) is empty"),
        ({"storage": {"existingSecret": "s", "secretKeys": {"postgresPassword": "pw"}}}, "PostgreSQL has no address"),
        ({"storage": {"existingSecret": "s", "secretKeys": {"redisPassword": "pw"}}}, "Redis has no address"),
    ):
        done = helm.template(values)
        assert done.returncode != 0 and message in done.stderr, (values, done.stderr)
    # an address in config.storage is enough for a password from the Secret
    render(helm, {"storage": {"existingSecret": "s", "secretKeys": {"postgresPassword": "pw"}},
                  "config": {"storage": {"postgres": {"dsn": "host=db dbname=agentprom user=agentprom"}}}})


# --- rules/ and dashboards/: one copy, in the repository ----------------------------------

def repo_rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def check_rules_and_dashboards(docs: list[dict], rules_dir: Path, dashboards_dir: Path) -> None:
    rules = {d["metadata"]["annotations"]["agentprom.io/source"]: d for d in by_kind(docs, "PrometheusRule")}
    assert sorted(rules) == [f"rules/{p.name}" for p in repo_rule_files(rules_dir)]
    for path in repo_rule_files(rules_dir):
        assert rules[f"rules/{path.name}"]["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]
    boards = {d["metadata"]["annotations"]["agentprom.io/source"]: d for d in by_kind(docs, "ConfigMap")
              if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"}
    assert sorted(boards) == sorted(f"dashboards/{p.name}" for p in dashboards_dir.glob("*.json"))
    for path in dashboards_dir.glob("*.json"):
        data = boards[f"dashboards/{path.name}"]["data"]
        assert data == {path.name: path.read_text()}, f"{path.name} differs from the repository's file"
    for doc in list(rules.values()) + list(boards.values()):
        validate(doc)


def test_chart_reads_rules_and_dashboards_from_the_repository(helm):
    for name in ("rules", "dashboards"):
        link = CHART / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve(), f"{link} must link to ../../{name}"
    docs = render(helm, {"prometheusRule": {"enabled": True}, "dashboards": {"enabled": True}})
    check_rules_and_dashboards(docs, ROOT / "rules", ROOT / "dashboards")


@pytest.fixture
def chart_with_fixture_files(tmp_path) -> Path:
    """A copy of the chart whose rules/ and dashboards/ hold known files (the repository's may be empty)."""
    chart = tmp_path / "agentprom"
    shutil.copytree(CHART, chart, symlinks=True)
    for name in ("rules", "dashboards"):
        (chart / name).unlink()
        (chart / name).mkdir()
    (chart / "rules" / "agent_alerts.yml").write_text(yaml.safe_dump({"groups": [{
        "name": "agentprom-tools",
        "interval": "30s",
        "rules": [
            {"record": "agent:tool_calls:rate5m", "expr": "sum by (agent, tool) (rate(agent_tool_calls_total[5m]))"},
            {"alert": "AgentToolErrorRateHigh",
             "expr": 'sum(rate(agent_tool_calls_total{status="error"}[5m])) > 0.1',
             "for": "10m", "keep_firing_for": "5m",
             "labels": {"severity": "warning"},
             "annotations": {"summary": "Tool {{ $labels.tool }} fails",
                             "description": "{{ $value | humanizePercentage }} of calls fail",
                             "runbook": "docs/runbooks.md#tool-errors"}},
        ]}]}, sort_keys=False))
    (chart / "rules" / "sidecar.yaml").write_text("groups:\n  - name: sidecar\n    limit: 10\n    rules:\n"
                                                  "      - alert: AgentpromDown\n        expr: up{job=\"agentprom\"} == 0\n")
    (chart / "rules" / "notes.txt").write_text("not a rule file: ignored\n")
    (chart / "dashboards" / "overview.json").write_text(json.dumps(
        {"title": "Agent <overview> & costs", "uid": "agentprom-overview", "schemaVersion": 41,
         "panels": [{"type": "timeseries", "targets": [{"expr": 'sum(rate(agent_tokens_total{type="input"}[$__rate_interval]))'}]}],
         "description": "tokens \u2192 dollars\tper minute"}, indent=2) + "\n")
    (chart / "dashboards" / "Tools_Detail.json").write_text('{"title": "tools", "panels": []}')
    return chart


def test_rules_and_dashboards_render_exactly(helm, chart_with_fixture_files):
    chart = chart_with_fixture_files
    docs = render(helm, {"prometheusRule": {"enabled": True}, "dashboards": {"enabled": True}}, chart)
    assert len(by_kind(docs, "PrometheusRule")) == 2
    check_rules_and_dashboards(docs, chart / "rules", chart / "dashboards")
    names = sorted(d["metadata"]["name"] for d in docs if "agentprom.io/source" in d["metadata"].get("annotations", {}))
    assert names == ["rel-agentprom-agent-alerts", "rel-agentprom-dashboard-overview",
                     "rel-agentprom-dashboard-tools-detail", "rel-agentprom-sidecar"]
    assert not by_kind(render(helm, {}, chart), "PrometheusRule"), "auto without the operator API renders none"


def test_a_file_in_rules_that_is_not_a_rule_file_fails_the_render(helm, chart_with_fixture_files):
    (chart_with_fixture_files / "rules" / "agent_alerts_test.yml").write_text(
        "rule_files: [agent_alerts.yml]\ntests: []\n")
    done = helm.template({"prometheusRule": {"enabled": True}}, chart_with_fixture_files)
    assert done.returncode != 0
    assert "rules/agent_alerts_test.yml is not a Prometheus rule file" in done.stderr


def test_packaged_chart_carries_the_repository_files(helm, tmp_path):
    done = helm.run("package", str(CHART), "--destination", str(tmp_path))
    assert done.returncode == 0, done.stderr
    (package,) = tmp_path.glob("agentprom-*.tgz")
    with tarfile.open(package) as archive:
        names = set(archive.getnames())
    for path in repo_rule_files(ROOT / "rules") + sorted((ROOT / "dashboards").glob("*.json")):
        assert f"agentprom/{path.parent.name}/{path.name}" in names
    assert "agentprom/values.schema.json" in names and "agentprom/rules/README.md" not in names


# --- sidecar mode from the user's side: NOTES.txt and a parent chart ---------------------

def render_notes(helm: Helm, values: dict[str, Any], tmp_path: Path, release: str = "rel",
                 api_versions: tuple[str, ...] = ()) -> str:
    """NOTES.txt as helm would print it (helm template skips it, so it is rendered through a wrapper)."""
    chart = tmp_path / "notes-chart" / "agentprom"
    if not chart.exists():
        shutil.copytree(CHART, chart, symlinks=True)
        for name in ("rules", "dashboards"):
            (chart / name).unlink()
            (chart / name).symlink_to(ROOT / name)
        notes = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "_notes.tpl").write_text('{{- define "test.notes" -}}\n' + notes + "{{- end -}}\n")
        (chart / "templates" / "notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
            '  notes: {{ include "test.notes" . | toJson }}\n')
    done = helm.template(values, chart, api_versions, release=release)
    assert done.returncode == 0, done.stderr
    docs = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return [d for d in docs if d["metadata"]["name"] == "notes"][0]["data"]["notes"]


def notes_pod_template(text: str) -> dict:
    snippet = text.split("in the same namespace:\n", 1)[1].split("\n\n", 1)[0]
    return yaml.safe_load(snippet)["template"]


def test_notes_show_a_valid_sidecar_snippet(helm, tmp_path):
    for native in (False, True):
        text = render_notes(helm, {"sidecar": {"native": native}}, tmp_path)
        template = notes_pod_template(text)
        template["metadata"]["labels"] = {"app": "my-agent"}
        template["spec"]["containers"] = (
            [{"name": "agent", "image": "example/agent:1"}] + template["spec"].get("containers", []))
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "my-agent"},
                      "spec": {"selector": {"matchLabels": {"app": "my-agent"}}, "template": template}}
        validate(deployment)
        container = agentprom_container(template["spec"])
        assert ("restartPolicy" in container) is native
        assert container in template["spec"]["initContainers" if native else "containers"]
        assert container["image"] == "agentprom:0.1.0"
        assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317" in text

    text = render_notes(helm, {"mode": "gateway", "gateway": {"replicas": 2}}, tmp_path)
    assert "http://rel-agentprom.agents.svc:4317" in text and "Several replicas" in text


def test_the_deployment_in_docs_is_valid_and_matches_the_chart(helm, tmp_path):
    docs_text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = [block.split("```", 1)[0] for block in docs_text.split("```yaml\n")[1:]]
    (block,) = [b for b in blocks if "kind: Deployment" in b]
    deployment = yaml.safe_load(textwrap.dedent(block))
    validate(deployment)
    # what `helm install agentprom helm/agentprom --set image.repository=...` prints
    chart = notes_pod_template(render_notes(
        helm, {"image": {"repository": "registry.example.com/agentprom"}}, tmp_path, release="agentprom"))
    spec = deployment["spec"]["template"]["spec"]
    assert agentprom_container(spec) == agentprom_container(chart["spec"])
    assert spec["volumes"] == chart["spec"]["volumes"]
    assert deployment["spec"]["template"]["metadata"]["annotations"].keys() == chart["metadata"]["annotations"].keys()
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"


def test_parent_chart_example_adds_the_sidecar(helm, tmp_path):
    parent = tmp_path / "my-agent"
    shutil.copytree(PARENT_EXAMPLE, parent, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    (parent / "charts").mkdir()
    (parent / "charts" / "agentprom").symlink_to(CHART)  # what `helm dependency build` would unpack
    docs = render(helm, {}, parent, api_versions=OPERATOR_APIS)
    for doc in docs:
        validate(doc)
    (metadata, spec), = pod_templates(docs)
    container = agentprom_container(spec)
    assert container in spec["initContainers"] and container["restartPolicy"] == "Always"
    agent_env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    config = yaml.safe_load(rendered_config(docs))
    assert agent_env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":%d" % parse_address(config["server"]["otlp_grpc"])[1])
    assert config["store"]["max_series_per_metric"] == 5000
    assert metadata["annotations"]["checksum/agentprom-config"] == hashlib.sha256(
        rendered_config(docs).rstrip("\n").encode()).hexdigest()
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["agentprom-config"]["configMap"]["name"] == one_config_name(docs)
    monitor = one(docs, "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in container["ports"]}
    done = check_config(rendered_config(docs), tmp_path)
    assert done.returncode == 0, done.stderr


def test_operator_schemas_are_strict():
    # The CRD check must catch a misspelled field, as kubernetes-validate --strict does for built-in kinds.
    good = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "x"},
            "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "ap-metrics", "interval": "30s"}]}}
    validate(good)
    for bad in (
        {"podMetricsEndpoint": [{"port": "ap-metrics"}]},
        {"podMetricsEndpoints": [{"port": "ap-metrics", "intervall": "30s"}]},
        {"podMetricsEndpoints": [{"port": "ap-metrics", "interval": "thirty seconds"}]},
    ):
        doc = copy.deepcopy(good)
        doc["spec"] = {"selector": {}, **bad}
        with pytest.raises(AssertionError):
            validate(doc)

