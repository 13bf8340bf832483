"""TLS and authentication for the listeners: TLS contexts, gRPC credentials, and the auth checks.

* TLS (optionally mutual) for aiohttp sites (``server_ssl_context``) and the gRPC
  server (``grpc_server_credentials``), from PEM files named in the config.
* Bearer tokens and basic-auth passwords are read from files once at start-up
  and compared with ``hmac.compare_digest`` (constant time), never logged.
* ``http_auth_middleware`` guards every route of an aiohttp application, so routes
  other components add later (the runtime event API) are covered too;
  ``BearerTokenInterceptor`` does the same for every gRPC service.

Failures are answered 401 / UNAUTHENTICATED and counted in
``agentprom_auth_failures_total{listener}``. See docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc
from aiohttp import web

from agentprom.config.schema import BasicAuthConfig, TlsConfig
from agentprom.metrics.series_store import Family
from agentprom.receiver.otlp_http import CONTENT_TYPES, JSON, status_body

_UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
_MESSAGE = "missing or wrong credentials"


def read_secret(path: str) -> bytes:
    """A token or password file's content without its trailing newline; empty files are refused."""
    secret = Path(path).read_bytes().rstrip(b"\r\n")
    if not secret:
        raise ValueError(f"secret file {path!r} is empty")
    return secret


# -- TLS ------------------------------------------------------------------------


def server_ssl_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """An SSL context for an aiohttp site (TLS 1.2+), verifying client certificates when
    ``client_ca_file`` is set; None when TLS is off."""
    if not tls.enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=tls.client_ca_file)
    return context


def grpc_server_credentials(tls: TlsConfig) -> grpc.ServerCredentials | None:
    if not tls.enabled:
        return None
    key = Path(tls.key_file).read_bytes()
    cert = Path(tls.cert_file).read_bytes()
    ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


# -- credentials ------------------------------------------------------------------


class Credentials:
    """Accepts an ``Authorization`` header carrying any of the configured credentials."""

    def __init__(self, bearer_token: bytes | None = None, basic: tuple[bytes, bytes] | None = None) -> None:
        self._bearer = bearer_token
        self._basic = basic

    @classmethod
    def from_config(cls, bearer_token_file: str = "", basic_auth: BasicAuthConfig | None = None) -> Credentials | None:
        bearer = read_secret(bearer_token_file) if bearer_token_file else None
        basic = None
        if basic_auth is not None and basic_auth.username:
            basic = (basic_auth.username.encode(), read_secret(basic_auth.password_file))
        if bearer is None and basic is None:
            return None
        return cls(bearer, basic)

    @property
    def challenge(self) -> str:
        return 'Basic realm="agentprom"' if self._basic is not None and self._bearer is None else "Bearer"

    def check(self, authorization: str | bytes | None) -> bool:
        if not authorization:
            return False
        if isinstance(authorization, str):
            authorization = authorization.encode("utf-8", "surrogateescape")
        scheme, _, value = authorization.strip().partition(b" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == b"bearer" and self._bearer is not None:
            return hmac.compare_digest(value, self._bearer)
        if scheme == b"basic" and self._basic is not None:
            try:
                user, _, password = base64.b64decode(value, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            # both compared (no early exit), so timing does not tell which one was wrong
            user_ok = hmac.compare_digest(user, self._basic[0])
            password_ok = hmac.compare_digest(password, self._basic[1])
            return user_ok and password_ok
        return False


def http_auth_middleware(
    credentials: Credentials,
    failures: Family,
    listener: str,
    exempt: Iterable[str] = (),
) -> Callable:
    """An aiohttp middleware refusing requests without valid credentials (401), except ``exempt`` paths.

    The 401 body is a ``google.rpc.Status`` in the request's encoding (OTLP/HTTP
    "Failures"), so OTLP clients can read it; other clients see JSON.
    """
    exempt = frozenset(exempt)

    @web.middleware
    async def authenticate(request: web.Request, handler):
        if request.path in exempt or credentials.check(request.headers.get("Authorization")):
            return await handler(request)
        failures.inc((listener,))
        encoding = CONTENT_TYPES.get(request.content_type, JSON)
        body, content_type = status_body(encoding, _UNAUTHENTICATED.value[0], _MESSAGE)
        return web.Response(status=401, body=body, content_type=content_type,
                            headers={"WWW-Authenticate": credentials.challenge})

    return authenticate


async def _deny(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(_UNAUTHENTICATED, _MESSAGE)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every gRPC call whose ``authorization`` metadata lacks the token (UNAUTHENTICATED)."""

    def __init__(self, credentials: Credentials, on_failure: Callable[[], None]) -> None:
        self.credentials = credentials
        self.on_failure = on_failure
        self._deny = grpc.unary_unary_rpc_method_handler(_deny)

    async def intercept_service(self, continuation, handler_call_details):
        authorization = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                authorization = value
                break
        if self.credentials.check(authorization):
            return await continuation(handler_call_details)
        self.on_failure()
        return self._deny
