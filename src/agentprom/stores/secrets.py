"""A store's password and its address as logs may show it (without the password).

The password comes from the store's address, or from ``password_env`` or
``password_file`` (config/storage_schema.py); the latter two win, so an address
may sit in a ConfigMap and its password in a Secret. Nothing here ever puts a
password into a message: ``redacted`` is the only form of an address that
logs, errors and /-/ready show.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from agentprom.config.storage_schema import _Secret


class SecretError(Exception):
    """The password cannot be read (the message names where it was looked for, never the value)."""


def password(config: _Secret) -> str | None:
    """The password from the environment variable or file the config names, else None (use the
    address's own, if any)."""
    if config.password_env:
        value = os.environ.get(config.password_env)
        if value is None:
            raise SecretError(f"the environment variable {config.password_env} (password_env) is not set")
        return value
    if config.password_file:
        try:
            with open(config.password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"cannot read password_file {config.password_file}: "
                              f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    return None


_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redacted(address: str) -> str:
    """``address`` (a URL or a libpq key=value string) with any password replaced by ``***``."""
    if "://" in address:
        try:
            parts = urlsplit(address)
        except ValueError:
            return "<an address that does not parse>"
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _KEYWORD_PASSWORD.sub(r"\1***", address)


def scrub(message: str, *secrets: str | None) -> str:
    """``message`` with every given secret replaced (driver errors may quote what they were given)."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message
