"""agentprom: an OpenTelemetry-to-Prometheus sidecar that understands AI agents."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("agentprom")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
