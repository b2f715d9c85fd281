"""Typed settings shared by every service (pydantic-settings; every field overridable by environment variable).

Names are the same everywhere: the local stack, compose.yaml and the Kubernetes ConfigMaps set these variables.
Shared blocks use the MLOPS_KAFKA_, MLOPS_REDIS_ and MLOPS_TELEMETRY_ prefixes; each service adds its own
settings class with an MLOPS_<SERVICE>_ prefix.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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
        "none", description="Trace exporter: none | console | otlp-grpc | otlp-http | file (JSON lines)."
    )
    otlp_endpoint: str | None = Field(None, description="OTLP endpoint for the otlp-* exporters.")
    file_path: Path = Field(Path(".run/traces.jsonl"), description="Where the file exporter appends spans.")
    sampling_ratio: float = Field(1.0, ge=0.0, le=1.0, description="Parent-based trace id ratio sampling.")
    metrics_port: int | None = Field(None, description="Prometheus metrics port (each service has a default).")
    log_level: str = Field("INFO", description="Log level of the structured logs.")
    log_format: str = Field("json", description="json | text.")
