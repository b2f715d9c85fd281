"""Typed settings shared by every service (pydantic-settings; every field overridable by environment variable).

Names are the same everywhere: the local stack, compose.yaml and the Kubernetes ConfigMaps set these variables.
Shared blocks use the MLOPS_KAFKA_, MLOPS_REDIS_ and MLOPS_TELEMETRY_ prefixes; each service adds its own
settings class with an MLOPS_<SERVICE>_ prefix.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops.errors import MlopsError

__all__ = ["MAX_MESSAGE_BYTES", "KafkaConfigError", "KafkaSettings", "RedisSettings", "TelemetrySettings",
           "settings_config"]

# One limit for broker, topics, producers and consumers: they must agree or large records fail silently.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def settings_config(prefix: str) -> SettingsConfigDict:
    """The config every settings class uses: an env prefix, unknown keys refused, immutable."""
    return SettingsConfigDict(env_prefix=prefix, extra="forbid", frozen=True)


class KafkaConfigError(MlopsError, ValueError):
    """Kafka settings that cannot work together (named by their environment variables)."""


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class KafkaSettings(BaseSettings):
    # an error shows no input: the input holds the SASL password
    model_config = settings_config("MLOPS_KAFKA_") | SettingsConfigDict(hide_input_in_errors=True)

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    topic_prefix: str = Field("", description="Prefix for every topic name (isolates test runs or tenants).")
    default_partitions: int = Field(3, description="Partitions for topics created by the stack.")
    replication_factor: int = Field(1, description="Replication factor for topics created by the stack.")
    max_message_bytes: int = Field(MAX_MESSAGE_BYTES, description="Largest record, same on broker and clients.")
    session_timeout_ms: int = Field(
        10_000, description="Consumer-group session timeout: how soon a dead member's partitions move on."
    )
    commit_retry_s: float = Field(
        60.0, gt=0, description="How long a consumer's commit is retried through a fail-over's transient errors "
        "before it raises: a new group coordinator is elected and loads the group's offsets (one session timeout "
        "was too short for that on a busy 3-node cluster)."
    )
    security_protocol: str = Field("PLAINTEXT", description=f"librdkafka security.protocol: one of "
                                   f"{', '.join(SECURITY_PROTOCOLS)}.")
    sasl_mechanism: str | None = Field(None, description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), "
                                       "required with SASL_*.")
    sasl_username: str | None = Field(None, description="SASL user (set from a Secret, never in code).")
    sasl_password: SecretStr | None = Field(None, description="SASL password (set from a Secret, never in code; "
                                            "never logged).")
    sasl_password_file: Path | None = Field(None, description="A file holding the SASL password (a mounted "
                                            "Secret, the local secure stack's run dir); wins over sasl_password.")
    ssl_ca_file: Path | None = Field(None, description="CA (PEM) the brokers' certificates are checked against; "
                                     "unset: the system's trust store.")
    ssl_cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    ssl_key_file: Path | None = Field(None, description="Private key (PEM) of ssl_cert_file.")

    @field_validator("security_protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if value.upper() not in SECURITY_PROTOCOLS:
            raise ValueError(f"security_protocol must be one of {SECURITY_PROTOCOLS} (got {value!r})")
        return value.upper()

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise KafkaConfigError("MLOPS_KAFKA_SSL_CERT_FILE and MLOPS_KAFKA_SSL_KEY_FILE go together (mutual TLS)")
        return self

    def _check_sasl(self) -> None:
        """SASL needs a mechanism, a user and a password: checked when a client is made, not when the settings
        load (a pod's ConfigMap names the protocol, its Secret adds the credentials)."""
        if not self.sasl:
            return
        if not self.sasl_mechanism or not self.sasl_username:
            raise KafkaConfigError(f"MLOPS_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                                   "MLOPS_KAFKA_SASL_MECHANISM and MLOPS_KAFKA_SASL_USERNAME")
        if self.sasl_password is None and self.sasl_password_file is None:
            raise KafkaConfigError(f"MLOPS_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                                   "MLOPS_KAFKA_SASL_PASSWORD or MLOPS_KAFKA_SASL_PASSWORD_FILE")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def password(self) -> str:
        """The SASL password (from sasl_password_file when set); for a client's config only, never for a log."""
        self._check_sasl()
        if self.sasl_password_file is not None:
            try:
                return self.sasl_password_file.read_text().strip()
            except OSError as exc:
                raise KafkaConfigError(f"MLOPS_KAFKA_SASL_PASSWORD_FILE {self.sasl_password_file}: {exc}") from exc
        return self.sasl_password.get_secret_value() if self.sasl_password is not None else ""

    def client_config(self) -> dict[str, object]:
        """librdkafka settings common to producers, consumers and admin clients: the one place every confluent
        client gets its address, security protocol, SASL credentials and TLS files from (faust: `ssl_context`)."""
        self._check_sasl()
        conf: dict[str, object] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "message.max.bytes": self.max_message_bytes,
        }
        if self.sasl:
            conf |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.sasl_username or "",
                "sasl.password": self.password(),
            }
        if self.tls:
            for key, path in (("ssl.ca.location", self.ssl_ca_file), ("ssl.certificate.location", self.ssl_cert_file),
                              ("ssl.key.location", self.ssl_key_file)):
                if path is not None:
                    conf[key] = str(_readable(path, key))
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a Python client (faust/aiokafka) with the same CA and client certificate as
        `client_config`; None without TLS. Host names are checked against the brokers' certificates."""
        if not self.tls:
            return None
        ca = _readable(self.ssl_ca_file, "ssl_ca_file") if self.ssl_ca_file else None
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if self.ssl_cert_file is not None and self.ssl_key_file is not None:
            context.load_cert_chain(str(_readable(self.ssl_cert_file, "ssl_cert_file")),
                                    str(_readable(self.ssl_key_file, "ssl_key_file")))
        return context

    def environ(self) -> dict[str, str]:
        """These settings as MLOPS_KAFKA_* variables, for a child process (the password only when it is not in a
        file: a file's path is passed instead)."""
        env: dict[str, str] = {}
        for name, value in self:
            if value is None or (name == "sasl_password" and self.sasl_password_file is not None):
                continue
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            env[f"MLOPS_KAFKA_{name.upper()}"] = text
        return env


def _readable(path: Path, what: str) -> Path:
    if not path.is_file():
        raise KafkaConfigError(f"{what}: {path} is not a readable file")
    return path


class RedisSettings(BaseSettings):
    model_config = settings_config("MLOPS_REDIS_")

    url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL of the online feature store.")
    key_prefix: str = Field("mlops", description="Prefix of every Redis key (isolates test runs).")
    # bounded so a Redis outage fails a request within its deadline instead of hanging on a dead socket
    connect_timeout_s: float = Field(0.5, gt=0, description="Longest wait to open a Redis connection.")
    socket_timeout_s: float = Field(1.0, gt=0, description="Longest wait for one Redis reply.")
    retries: int = Field(1, ge=0, description="Retries of a command after a connection error or timeout (short "
                                              "backoff): rides out a dropped connection, not an outage.")


class TelemetrySettings(BaseSettings):
    model_config = settings_config("MLOPS_TELEMETRY_")

    exporter: str = Field(
        "none", description="Trace exporter: none | console | otlp-grpc | otlp-http | file (OTLP/JSON lines, offline)."
    )
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP collector / Jaeger URL for the otlp-* exporters (http[s]://host:port). Default: the local "
        "stack's Jaeger, http://127.0.0.1:4317 for otlp-grpc and http://127.0.0.1:4318 for otlp-http "
        "(which posts to its /v1/traces).",
    )
    file_path: Path = Field(
        Path(".run/traces.jsonl"), description="Where the file exporter appends spans (one OTLP/JSON request a line)."
    )
    sampling_ratio: float = Field(1.0, ge=0.0, le=1.0, description="Parent-based trace id ratio sampling.")
    export_batch_spans: int = Field(
        32, ge=1, description="Spans per export (BatchSpanProcessor max_export_batch_size). Encoding a span costs "
        "~20 µs of the process's GIL in the OpenTelemetry SDK: the SDK's 512 held a serving process's requests "
        "for several ms at a time (single-row p99 at 1k req/s 6.7 ms with the file exporter, 2.1 ms with 32).",
    )
    export_interval_ms: int = Field(
        100, ge=1, description="Longest a finished span waits for its export (BatchSpanProcessor schedule delay).",
    )
    metrics_port: int | None = Field(None, description="Prometheus metrics port (each service has a default).")
    log_level: str = Field("INFO", description="Log level of the structured logs.")
    log_format: str = Field("json", description="json | text.")

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint_is_a_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"otlp_endpoint must be an http(s) URL like http://host:4317 (got {value!r})")
        return value

    def otlp_traces_endpoint(self) -> str:
        """Where the configured otlp-* exporter sends spans: gRPC takes host:port, OTLP/HTTP the full
        /v1/traces path (added when the endpoint has no path, as the OTEL_EXPORTER_OTLP_ENDPOINT rule does)."""
        http = self.exporter.lower() == "otlp-http"
        endpoint = self.otlp_endpoint or ("http://127.0.0.1:4318" if http else "http://127.0.0.1:4317")
        if http and urlsplit(endpoint).path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        return endpoint
