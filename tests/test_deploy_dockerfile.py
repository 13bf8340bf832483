"""The Dockerfile, checked without a Docker engine.

hadolint lints it; the official BuildKit parser (PyPI ``dockerfile``) gives its
structure, which must keep the promises docs/deploy.md makes (multi-stage,
non-root, exec form only, ports, health check, config path, data volume).
What the runtime stage would run is then run here for real: the package
installed the way the build stage installs it, started with the image's
ENTRYPOINT and CMD arguments, and probed with the image's HEALTHCHECK command.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dockerfile
import pytest

from tests.conftest import ROOT, tool

DOCKERFILE = ROOT / "Dockerfile"
PORTS = {"4317", "4318", "9464"}
CONFIG_IN_IMAGE = "/etc/agentprom/agentprom.yaml"
DATA_DIR = "/var/lib/agentprom"


def stages() -> dict[str, list[dockerfile.Command]]:
    """Instructions by stage name, in file order (the last stage is the default build target)."""
    out: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] | None = None
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            words = command.value
            assert len(words) == 3 and words[1].upper() == "AS", f"unnamed stage: {command.original}"
            current = out.setdefault(words[2], [])
        if current is not None:
            current.append(command)
    return out


def runtime_stage() -> list[dockerfile.Command]:
    return list(stages().values())[-1]


def only(commands: list[dockerfile.Command], name: str) -> dockerfile.Command:
    found = [c for c in commands if c.cmd == name]
    assert len(found) == 1, f"expected one {name} in the runtime stage, found {len(found)}"
    return found[0]


def runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for command in runtime_stage():
        if command.cmd == "ENV":
            values = command.value
            env.update(zip(values[0::2], values[1::2]))
    return env


def test_hadolint_is_clean():
    done = subprocess.run([tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_multi_stage_with_named_stages_and_the_sidecar_last():
    names = list(stages())
    assert len(names) >= 2
    assert names[-1] == "runtime" and "build" in names and "demo" in names


def test_runtime_stage_needs_no_shell():
    commands = runtime_stage()
    assert not [c.original for c in commands if c.cmd == "RUN"], "RUN needs a shell in the runtime stage"
    for name in ("ENTRYPOINT", "CMD", "HEALTHCHECK"):
        assert only(commands, name).json, f"{name} must use the exec (JSON) form: there is no shell"
    assert only(commands, "ENTRYPOINT").value == ("/usr/bin/python3", "-m", "agentprom")


def test_runtime_stage_runs_as_a_non_root_user():
    user = [c for c in runtime_stage() if c.cmd == "USER"][-1].value[0]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, non-root uid (Kubernetes runAsNonRoot can verify it)"
    assert gid.isdigit() and int(gid) != 0


def test_ports_config_and_data_volume():
    commands = runtime_stage()
    assert set(only(commands, "EXPOSE").value) == PORTS
    assert only(commands, "VOLUME").value == (DATA_DIR,)
    copies = {c.value[-1]: c for c in commands if c.cmd == "COPY"}
    assert copies[CONFIG_IN_IMAGE].value[0] == "config/agentprom.yaml"
    assert "--chown=65532:65532" in copies[DATA_DIR].flags, "the data volume must be writable by the user"
    assert only(commands, "CMD").value == ("serve", "--config", CONFIG_IN_IMAGE)


def test_healthcheck_probes_the_health_endpoint():
    check = only(runtime_stage(), "HEALTHCHECK")
    assert check.value[0] == "CMD"
    assert runtime_env()["AGENTPROM_HEALTHCHECK_URL"] == "http://127.0.0.1:9464/-/healthy"
    assert "AGENTPROM_HEALTHCHECK_URL" in check.value[-1]


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def in_build_context(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parents wins."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _dockerignore_regex(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for negate, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = negate
    return included


def test_every_copied_file_exists_and_is_in_the_build_context():
    sources = [
        source
        for commands in stages().values()
        for c in commands
        if c.cmd == "COPY" and not any(flag.startswith("--from=") for flag in c.flags)
        for source in c.value[:-1]
    ]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file"
        files = [p for p in path.rglob("*.py")] if path.is_dir() else [path]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            assert in_build_context(relative), f"{relative} is excluded by .dockerignore"
    # and what must stay out of the context does
    assert not in_build_context(".tools/bin/helm")
    assert not in_build_context("tests/conftest.py")
    assert not in_build_context("src/agentprom/__pycache__/app.cpython-311.pyc")
    for module in ("receiver/_wire", "conventions/_classify", "context/_batch", "sessions/_spans"):  # built in the image
        assert not in_build_context(f"src/agentprom/{module}.cpython-311-x86_64-linux-gnu.so")
        assert not in_build_context(f"src/agentprom/{module}.c")
        assert in_build_context(f"src/agentprom/{module}.pyx")
    assert in_build_context("setup.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthcheck(url: str) -> subprocess.CompletedProcess:
    argv = list(only(runtime_stage(), "HEALTHCHECK").value[1:])
    argv[0] = sys.executable  # the image's /usr/bin/python3
    env = {**os.environ, "AGENTPROM_HEALTHCHECK_URL": url}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def installed_like_the_image(tmp_path_factory) -> Path:
    """The package installed as the build stage does (pip --target), without its dependencies."""
    target = tmp_path_factory.mktemp("image") / "lib"
    work = tmp_path_factory.mktemp("src")
    # Build from a copy so the worktree gets no build/ or egg-info directories.
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "src", work / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so", "_wire.c", "_classify.c",
                                                  "_batch.c", "_spans.c"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--no-compile", "--target", str(target), str(work)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return target


def test_entrypoint_serves_and_the_healthcheck_sees_it(installed_like_the_image, tmp_path):
    env = runtime_env()
    metrics_port = _free_port()
    config = tmp_path / "agentprom.yaml"
    config.write_text(
        (ROOT / "config" / "agentprom.yaml").read_text()
        .replace("127.0.0.1:4317", "127.0.0.1:0").replace("127.0.0.1:4318", "127.0.0.1:0")
        .replace("0.0.0.0:9464", f"127.0.0.1:{metrics_port}")
    )
    entrypoint = list(only(runtime_stage(), "ENTRYPOINT").value)
    cmd = list(only(runtime_stage(), "CMD").value)
    argv = [sys.executable, *entrypoint[1:], *[str(config) if a == CONFIG_IN_IMAGE else a for a in cmd]]
    process_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AGENTPROM_")},
        "PYTHONPATH": env["PYTHONPATH"].replace("/opt/agentprom/lib", str(installed_like_the_image)),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    assert _module_path(process_env).startswith(str(installed_like_the_image)), "not the installed copy"
    url = f"http://127.0.0.1:{metrics_port}/-/healthy"
    assert _healthcheck(url).returncode != 0, "nothing listens yet: the health check must fail"
    server = subprocess.Popen(argv, env=process_env, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while _healthcheck(url).returncode != 0:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "sidecar did not become healthy in 30 s"
            time.sleep(0.1)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        log = server.stderr.read()
        assert "listening: metrics on 127.0.0.1:%d" % metrics_port in log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def _module_path(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", "import agentprom; print(agentprom.__file__)"],
                          env=env, capture_output=True, text=True, check=True)
    return done.stdout


def test_image_config_is_valid(installed_like_the_image):
    env = {**os.environ, "PYTHONPATH": str(installed_like_the_image)}
    done = subprocess.run([sys.executable, "-m", "agentprom", "check-config", str(ROOT / "config" / "agentprom.yaml")],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
