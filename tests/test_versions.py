"""README.md's "Supported versions" against what the tests run and what compose, the chart and the dashboards say.

One table states the supported versions; here every other place that names one must agree with
it: the real tools' ``--version`` output, the Grafana schema package, docker-compose.yml's images
(and docs/deploy.md's description of them), the chart's kubeVersion, the Kubernetes versions the
chart tests validate for, the dashboards' schemaVersion, pyproject.toml and the Dockerfile.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib

import pytest
import yaml

from tests.conftest import ROOT, tool

README = (ROOT / "README.md").read_text(encoding="utf-8")


def supported() -> dict[str, str]:
    section = README.split("## Supported versions\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| component")]
    table = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in rows}
    assert {"Python", "Prometheus", "Alertmanager", "Grafana", "Kubernetes", "Helm"} <= set(table), table
    return table


def compose_images() -> dict[str, str]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: service["image"] for name, service in services.items() if "build" not in service}


def minor(version: str) -> str:
    return ".".join(re.match(r"v?(\d+)\.(\d+)", version).groups())


@pytest.mark.parametrize("name, binary, image", [
    ("Prometheus", "promtool", "prometheus"),
    ("Alertmanager", "prometheus-alertmanager", "alertmanager"),
])
def test_prometheus_and_alertmanager(name, binary, image):
    want = supported()[name]
    done = subprocess.run([tool(binary), "--version"], capture_output=True, text=True, timeout=60)
    version = re.search(r"version (\S+)", done.stdout + done.stderr)[1]
    assert minor(version) == want, f"the tests run {binary} {version}; README says {name} {want}"
    tag = compose_images()[image].rpartition(":")[2]
    assert minor(tag) == want, f"compose runs {compose_images()[image]}; README says {name} {want}"


def test_grafana():
    want = supported()["Grafana"]
    package = (ROOT / ".tools" / "grafana" / "package-version")
    if not package.exists():
        pytest.fail("the Grafana schema is missing: run scripts/fetch-tools.sh")
    assert minor(package.read_text().strip()) == want
    assert minor(compose_images()["grafana"].rpartition(":")[2]) == want
    schema_version = int((ROOT / ".tools" / "grafana" / "schema-version").read_text())
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        assert json.loads(path.read_text())["schemaVersion"] == schema_version, path.name
    assert f"Grafana {want.split('.')[0]} (`schemaVersion` {schema_version})" in (
        ROOT / "docs" / "dashboards.md").read_text()


def test_compose_images_are_the_ones_docs_describe():
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for image in compose_images().values():
        assert f"`{image}`" in deploy, image


def test_kubernetes_and_helm():
    from tests.test_deploy_helm import K8S_VERSIONS

    low, high = re.fullmatch(r"(\d+\.\d+) to (\d+\.\d+)", supported()["Kubernetes"]).groups()
    assert [minor(v) for v in K8S_VERSIONS] == [low, high]
    chart = yaml.safe_load((ROOT / "helm" / "agentprom" / "Chart.yaml").read_text())
    assert minor(chart["kubeVersion"].lstrip(">=")) == low
    done = subprocess.run([tool("helm"), "version", "--short"], capture_output=True, text=True, timeout=60)
    assert minor(done.stdout.strip()) == supported()["Helm"]


def test_python():
    want = supported()["Python"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={want}"
    assert f"python:{want}-" in (ROOT / "Dockerfile").read_text()
