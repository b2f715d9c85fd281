"""Typed settings shared by every service (pydantic-settings; every field overridable by environment variable).

Names are the same everywhere: the local stack, compose.yaml and the Kubernetes ConfigMaps set these variables.
Shared blocks use the MLOPS_KAFKA_, MLOPS_REDIS_ and MLOPS_TELEMETRY_ prefixes; each service adds its own
settings class with an MLOPS_<SERVICE>_ prefix.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MAX_MESSAGE_BYTES", "KafkaSettings", "RedisSettings", "TelemetrySettings", "settings_config"]

# One limit for broker, topics, producers and consumers: they must agree or large records fail silently.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def settings_config(prefix: str) -> SettingsConfigDict:
    """The config every settings class uses: an env prefix, unknown keys refused, immutable."""
    return SettingsConfigDict(env_prefix=prefix, extra="forbid", frozen=True)


class KafkaSettings(BaseSettings):
    model_config = settings_config("MLOPS_KAFKA_")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    topic_prefix: str = Field("", description="Prefix for every topic name (isolates test runs or tenants).")
    default_partitions: int = Field(3, description="Partitions for topics created by the stack.")
    replication_factor: int = Field(1, description="Replication factor for topics created by the stack.")
    max_message_bytes: int = Field(MAX_MESSAGE_BYTES, description="Largest record, same on broker and clients.")
    session_timeout_ms: int = Field(
        10_000, description="Consumer-group session timeout: how soon a dead member's partitions move on."
    )
    security_protocol: str = Field("PLAINTEXT", description="librdkafka security.protocol.")
    sasl_mechanism: str | None = Field(None, description="librdkafka sasl.mechanism, when SASL is used.")
    sasl_username: str | None = Field(None, description="SASL user (set from a Secret, never in code).")
    sasl_password: str | None = Field(None, description="SASL password (set from a Secret, never in code).")

    def client_config(self) -> dict[str, object]:
        """librdkafka settings common to producers, consumers and admin clients."""
        conf: dict[str, object] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "message.max.bytes": self.max_message_bytes,
        }
        if self.sasl_mechanism:
            conf |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.sasl_username or "",
                "sasl.password": self.sasl_password or "",
            }
        return conf


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
