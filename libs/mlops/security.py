"""Authentication, authorisation and TLS of the gRPC (and REST) edges, in one place for every service.

Tokens: `MLOPS_SECURITY_TOKENS="alice=admin:TOKEN_A,ci=predict:TOKEN_B"` (or the same entries, one a line, in the
file `MLOPS_SECURITY_TOKENS_FILE`, e.g. a mounted Kubernetes Secret). A client sends `authorization: Bearer
TOKEN`. Two roles: `predict` (inference and reading the registry) and `admin` (register, promote, rollback; it
includes `predict`). With no token configured authentication is off (the local stack and the tests); the
production overlay configures tokens, so there everything but health, reflection and the ops endpoints is closed.

TLS: `MLOPS_SECURITY_TLS_CERT_FILE` + `..._KEY_FILE` make a server listen with TLS (plus `..._CLIENT_CA_FILE`:
mutual TLS, a client certificate is required); without them it listens in plaintext and logs so. Clients read
`MLOPS_CLIENT_TOKEN` and `MLOPS_CLIENT_CA_FILE` (and a client certificate for mutual TLS).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from mlops.errors import MlopsError
from mlops.settings import settings_config

__all__ = [
    "ADMIN",
    "OPEN_SERVICES",
    "PREDICT",
    "AuthError",
    "BadTokenEntry",
    "ClientSecuritySettings",
    "PermissionDenied",
    "Principal",
    "PromotionReplayGuard",
    "SecuritySettings",
    "TlsConfigError",
    "TokenTable",
    "Unauthenticated",
    "aio_interceptors",
    "bind_port",
    "client_channel",
    "client_metadata",
    "current_principal",
    "interceptors",
    "promotion_signature",
    "promotion_verified",
]

log = logging.getLogger("mlops.security")

PREDICT, ADMIN = "predict", "admin"
ROLES = (PREDICT, ADMIN)
# health checks and reflection stay open: probes and tools (grpcurl) must work without a token
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                 "grpc.reflection.v1.ServerReflection")


class AuthError(MlopsError):
    """A call the edge refuses; the message says why (never the token)."""


class Unauthenticated(AuthError):
    def __init__(self, reason: str):
        super().__init__(f"unauthenticated: {reason}; send `authorization: Bearer <token>`")


class PermissionDenied(AuthError):
    def __init__(self, identity: str, method: str, role: str):
        super().__init__(f"permission denied: {identity!r} lacks role {role!r} needed for {method}")


class BadTokenEntry(MlopsError, ValueError):
    def __init__(self, line: int, reason: str):
        super().__init__(f"MLOPS_SECURITY_TOKENS entry {line}: {reason} (expected identity=role[+role]:token)")


class TlsConfigError(MlopsError, ValueError):
    def __init__(self, missing: str, given: str):
        super().__init__(f"{given} is set but {missing} is not: a TLS server needs both")


@dataclass(frozen=True)
class Principal:
    identity: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles or ADMIN in self.roles  # admin includes predict


class SecuritySettings(BaseSettings):
    model_config = settings_config("MLOPS_SECURITY_")

    tokens: SecretStr = Field(SecretStr(""), description="Accepted tokens, comma- or newline-separated "
                              "`identity=role[+role]:token` entries (roles: predict, admin). Empty with no "
                              "tokens_file: authentication off.")
    tokens_file: Path | None = Field(None, description="A file of token entries, one a line (a mounted Secret).")
    tls_cert_file: Path | None = Field(None, description="Server certificate (PEM); unset: plaintext (local dev).")
    tls_key_file: Path | None = Field(None, description="Private key of tls_cert_file (PEM).")
    tls_client_ca_file: Path | None = Field(None, description="CA of client certificates: set, mutual TLS is "
                                            "required.")
    promotion_key: SecretStr = Field(SecretStr(""), description="Shared HMAC key: the registry signs each "
                                     "model.promoted record with it, inference serves only records it verifies. "
                                     "Empty: promotions are neither signed nor checked.")

    def table(self) -> TokenTable:
        text = self.tokens.get_secret_value()
        if self.tokens_file is not None:
            text += "\n" + self.tokens_file.read_text()
        return TokenTable.parse(text)


class ClientSecuritySettings(BaseSettings):
    model_config = settings_config("MLOPS_CLIENT_")

    token: SecretStr = Field(SecretStr(""), description="Token sent as `authorization: Bearer` (empty: none).")
    ca_file: Path | None = Field(None, description="CA that signed the servers' certificates: set, TLS is used.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS (PEM).")
    key_file: Path | None = Field(None, description="Private key of cert_file (PEM).")


class TokenTable:
    """token → Principal; an empty table means authentication is off."""

    def __init__(self, entries: Mapping[str, Principal]):
        self._entries = dict(entries)

    @classmethod
    def parse(cls, text: str) -> TokenTable:
        entries: dict[str, Principal] = {}
        for n, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
            item = raw.strip()
            if not item or item.startswith("#"):
                continue
            identity, eq, rest = item.partition("=")
            roles, colon, token = rest.partition(":")
            if not (eq and colon and identity.strip() and token.strip()):
                raise BadTokenEntry(n, "missing identity, role or token")
            wanted = frozenset(r.strip() for r in roles.split("+"))
            if not wanted or not wanted <= set(ROLES):
                raise BadTokenEntry(n, f"roles must be among {ROLES}, got {sorted(wanted)}")
            entries[token.strip()] = Principal(identity.strip(), wanted)
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def authorize(self, authorization: str | None, role: str, method: str) -> Principal:
        """The caller of `authorization` (the header's value) if it holds `role`, else Unauthenticated or
        PermissionDenied. The one check every edge (gRPC, REST) makes."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if not token or scheme.lower() != "bearer":
            raise Unauthenticated(f"{method} needs a bearer token")
        principal = self._entries.get(token.strip())
        if principal is None:
            raise Unauthenticated("unknown token")
        if not principal.has(role):
            raise PermissionDenied(principal.identity, method, role)
        return principal


Roles = Mapping[str, "str | None"]  # gRPC method name → the role it needs (None: open to anyone)

# who is calling, for the servicer (e.g. the audit's actor); None when authentication is off
current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)

_CODES = {Unauthenticated: grpc.StatusCode.UNAUTHENTICATED, PermissionDenied: grpc.StatusCode.PERMISSION_DENIED}


def _required_role(method: str, roles: Roles) -> str | None:
    """The role `method` (/pkg.Service/Method) needs: open services none, listed methods theirs (None: open), the
    rest admin (closed by default: a new RPC is admin-only until someone lists it)."""
    service, _, name = method.lstrip("/").partition("/")
    if service in OPEN_SERVICES:
        return None
    return roles.get(name, ADMIN)


def _authorization(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    return next((str(v) for k, v in metadata or () if k == "authorization"), None)


def _check(table: TokenTable, roles: Roles,
           details: grpc.HandlerCallDetails) -> tuple[Principal | None, AuthError | None]:
    method = details.method  # type: ignore[attr-defined]
    role = _required_role(method, roles)
    if role is None:
        return None, None
    try:
        return table.authorize(_authorization(details.invocation_metadata), role, method), None  # type: ignore
    except AuthError as exc:
        log.warning("call refused", extra={"fields": {"method": method, "reason": str(exc)}})
        return None, exc


def _wrap(handler: grpc.RpcMethodHandler, behaviour: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Any:
    kinds = {(False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
             (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
             (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
             (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler)}
    attr, make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(behaviour(getattr(handler, attr)), request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class _Interceptor(grpc.ServerInterceptor):
    def __init__(self, table: TokenTable, roles: Roles):
        self.table, self.roles = table, roles

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        principal, refusal = _check(self.table, self.roles, details)
        if handler is None or (principal is None and refusal is None):
            return handler
        if refusal is not None:
            def refuse(_: Any) -> Any:
                return lambda request, context: context.abort(_CODES[type(refusal)], str(refusal))
            return _wrap(handler, refuse)

        def as_principal(fn: Any) -> Any:
            def call(request: Any, context: Any) -> Any:
                token = current_principal.set(principal)
                try:
                    return fn(request, context)
                finally:
                    current_principal.reset(token)
            return call
        return _wrap(handler, as_principal) if not handler.response_streaming else handler


class _AioInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, table: TokenTable, roles: Roles):
        self.table, self.roles = table, roles

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        principal, refusal = _check(self.table, self.roles, details)
        if handler is None or refusal is None:
            return handler  # the aio servicers read no principal: a task per call would only add latency
        code, message = _CODES[type(refusal)], str(refusal)

        def refuse(_: Any) -> Any:
            if handler.response_streaming:
                async def abort_stream(request: Any, context: Any) -> Any:
                    await context.abort(code, message)
                    yield  # pragma: no cover (an async generator, as streaming handlers must be)
                return abort_stream

            async def abort(request: Any, context: Any) -> Any:
                await context.abort(code, message)
            return abort
        return _wrap(handler, refuse)


def interceptors(settings: SecuritySettings, roles: Roles) -> list[grpc.ServerInterceptor]:
    """The interceptor for a sync grpc.server (none when authentication is off). `roles`: method name → role;
    unlisted methods need admin, OPEN_SERVICES none."""
    table = settings.table()
    return [_Interceptor(table, roles)] if table.enabled else []


def aio_interceptors(settings: SecuritySettings, roles: Roles) -> list[grpc.aio.ServerInterceptor]:
    """The same for a grpc.aio server: none when authentication is off, so the hot path pays nothing then."""
    table = settings.table()
    return [_AioInterceptor(table, roles)] if table.enabled else []


def bind_port(server: Any, address: str, settings: SecuritySettings, service: str) -> int:
    """Bind `address` with TLS when a certificate is configured (mutual when a client CA is), else plaintext
    (logged, so nobody runs it by accident). Returns the bound port (0: the bind failed)."""
    if settings.tls_cert_file is None:
        log.warning("gRPC listening in PLAINTEXT (no MLOPS_SECURITY_TLS_CERT_FILE): local development only",
                    extra={"fields": {"service": service, "address": address}})
        return int(server.add_insecure_port(address))
    if settings.tls_key_file is None:
        raise TlsConfigError("MLOPS_SECURITY_TLS_KEY_FILE", "MLOPS_SECURITY_TLS_CERT_FILE")
    pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    credentials = grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                              require_client_auth=client_ca is not None)
    log.info("gRPC listening with TLS", extra={"fields": {
        "service": service, "address": address, "mutual": client_ca is not None}})
    return int(server.add_secure_port(address, credentials))


def client_metadata(settings: ClientSecuritySettings | None = None) -> list[tuple[str, str]]:
    """The call metadata carrying the client's token (empty without one)."""
    token = (settings or ClientSecuritySettings()).token.get_secret_value()
    return [("authorization", f"Bearer {token}")] if token else []


class _TokenAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: str):
        self._token = token

    def __call__(self, context: Any, callback: Any) -> None:
        callback((("authorization", f"Bearer {self._token}"),), None)


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Adds the token on a plaintext channel (gRPC sends call credentials only over TLS)."""

    def __init__(self, token: str):
        self._token = token

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {self._token}")]
        return continuation(details._replace(metadata=metadata), request)


def client_channel(address: str, settings: ClientSecuritySettings | None = None,
                   options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """A channel to `address`: TLS when a CA is configured (with a client certificate when one is), the token on
    every call when one is configured."""
    s = settings or ClientSecuritySettings()
    token = s.token.get_secret_value()
    if s.ca_file is None:
        channel = grpc.insecure_channel(address, options=list(options))
        return grpc.intercept_channel(channel, _TokenInterceptor(token)) if token else channel
    credentials = grpc.ssl_channel_credentials(
        s.ca_file.read_bytes(), s.key_file.read_bytes() if s.key_file else None,
        s.cert_file.read_bytes() if s.cert_file else None)
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.metadata_call_credentials(_TokenAuth(token)))
    return grpc.secure_channel(address, credentials, options=list(options))


def promotion_signature(key: SecretStr, model: str, version: str, artifact_sha256: str, role: str = "", *,
                        promoted_at_ms: int | None = None, action: str = "") -> str:
    """Hex HMAC-SHA256 over (model, version, sha256[, role]) — JSON-encoded, so no field can run into the next.
    A challenger's role is signed too, so a signed shadow announcement cannot be replayed as a champion.

    With `promoted_at_ms` (the record's own field) the time and the action are signed as well, so a recorded
    promotion cannot be re-sent later as a fresh one: the reader keeps the newest time it accepted per model and slot
    (`PromotionReplayGuard`) and refuses anything not newer. Without it, the signature is the earlier one (records
    signed before this was added still verify, but carry no replay protection)."""
    fields: list[object] = [model, version, artifact_sha256] + ([role] if role not in ("", "champion") else [])
    if promoted_at_ms is not None:
        fields = [*fields, {"promoted_at_ms": int(promoted_at_ms), "action": action}]
    payload = json.dumps(fields).encode()
    return hmac.new(key.get_secret_value().encode(), payload, hashlib.sha256).hexdigest()


def promotion_verified(key: SecretStr, model: str, version: str, artifact_sha256: str, signature: str,
                       role: str = "", *, promoted_at_ms: int | None = None, action: str = "") -> bool:
    """True when `signature` is the key's signature of the promotion (constant-time comparison)."""
    expected = promotion_signature(key, model, version, artifact_sha256, role, promoted_at_ms=promoted_at_ms,
                                   action=action)
    return hmac.compare_digest(expected, signature)


class PromotionReplayGuard:
    """Refuses a (verified) promotion that is older than the last one accepted for the same model and slot
    (champion, or the one challenger slot): an old signed record appended again is a replay, not a decision.

    Records must be offered in log order (model.promoted has one partition), the history replayed on start
    included; a rollback is a new record with a new time, so it passes. The registry's clock orders promotions: a
    registry restarted with its clock behind the last promotion would be refused until it catches up."""

    def __init__(self) -> None:
        self._newest: dict[tuple[str, str], int] = {}

    @staticmethod
    def slot(role: str) -> str:
        return "champion" if role in ("", "champion") else "challenger"

    def accept(self, model: str, role: str, promoted_at_ms: int) -> bool:
        """True (and remembered) unless `promoted_at_ms` is older than a promotion accepted for this slot. The same
        time passes: one registry command stamps all its announcements alike (a replaced challenger's withdrawal
        and its successor), and a copy of the newest record only re-applies what is in force."""
        key = (model, self.slot(role))
        if promoted_at_ms < self._newest.get(key, -1):
            return False
        self._newest[key] = promoted_at_ms
        return True

    def newest(self, model: str, role: str = "") -> int | None:
        return self._newest.get((model, self.slot(role)))
