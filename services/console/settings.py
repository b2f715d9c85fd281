"""The console's settings (env prefix MLOPS_CONSOLE_). The upstream addresses are typed settings: a page whose
upstream is absent says so ("Prometheus not reachable at ...") and shows the rest."""

from __future__ import annotations

from mlops.settings import settings_config
from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings

__all__ = ["DEFAULT_METRICS_PORT", "ConsoleSettings"]

DEFAULT_METRICS_PORT = 9107


class ConsoleSettings(BaseSettings):
    model_config = settings_config("MLOPS_CONSOLE_")

    host: str = Field("0.0.0.0", description="Address the console's HTTP server binds.")
    port: int = Field(8080, description="The console's HTTP port; 0 picks a free one.")
    registry_address: str = Field("127.0.0.1:8002", description="The registry's gRPC API (host:port).")
    prometheus_url: AnyHttpUrl = Field(AnyHttpUrl("http://127.0.0.1:9090"),
                                       description="Prometheus's HTTP API (health, rates, drift, alerts).")
    jaeger_url: AnyHttpUrl = Field(AnyHttpUrl("http://127.0.0.1:16686"),
                                   description="Jaeger's query API (trace search and traces).")
    upstream_timeout_s: float = Field(5.0, gt=0, description="Longest wait for the registry, Prometheus or Jaeger.")
    kafka_timeout_s: float = Field(10.0, gt=0, description="Longest wait for a page's recent Kafka records.")
    recent_records: int = Field(50, ge=1, le=1000, description="Recent records shown per topic (dead letters, "
                                "retrain requests, predictions).")
    chart_minutes: int = Field(60, ge=1, description="Time range of the drift and rate charts.")
    actions_enabled: bool = Field(False, description="Offer promote and rollback (through the registry's gRPC "
                                  "API, so they land in its audit trail); also needs admin_token.")
    registry_token: SecretStr = Field(SecretStr(""), description="Token the console sends to the registry's gRPC "
                                      "API (an identity with role predict to read, admin for actions); empty: "
                                      "MLOPS_CLIENT_TOKEN. TLS to the registry: MLOPS_CLIENT_CA_FILE.")
    admin_token: SecretStr = Field(SecretStr(""), description="Token an action must carry (form field `token` or "
                                   "header X-Admin-Token); empty: actions are refused even when enabled.")
