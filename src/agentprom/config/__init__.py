"""Configuration: typed schema, YAML/env/flag loading, and error reporting."""

from agentprom.config.loader import ConfigError, load_config
from agentprom.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config"]
