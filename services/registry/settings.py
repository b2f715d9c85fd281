"""The registry's settings (environment prefix MLOPS_REGISTRY_). The gate policy is not here: each model declares
its own (`models[].gate` in the definitions)."""

from __future__ import annotations

from mlops.settings import settings_config
from pydantic import Field
from pydantic_settings import BaseSettings

__all__ = ["RegistrySettings"]


class RegistrySettings(BaseSettings):
    model_config = settings_config("MLOPS_REGISTRY_")

    grpc_host: str = Field("0.0.0.0", description="Address the gRPC API binds.")
    grpc_port: int = Field(8002, description="Port of the gRPC API (mlops.v1.ModelRegistry); 0 picks a free one.")
    grpc_workers: int = Field(4, ge=1, description="Threads serving gRPC calls.")
    group_id: str = Field("registry", description="Consumer group on model.candidates.")
    verdicts_group_id: str = Field(
        "registry-verdicts", description="Consumer group on challenger.verdicts (the monitor's live verdicts)."
    )
    artifact_timeout_s: float = Field(
        10.0, gt=0.0, description="How long to wait for a candidate's artifact to appear on model.artifacts."
    )
    actor: str = Field("registry", description="Actor recorded in audit entries of automatic decisions.")
    replay_timeout_s: float = Field(
        60.0, gt=0.0, description="Longest the start-up replay of registry.log may take."
    )
    announce_retry_s: float = Field(
        5.0, gt=0.0, description="How often an announcement on model.promoted that failed is re-sent (the outbox)."
    )
    definitions_timeout_s: float = Field(
        30.0, gt=0.0, description="Longest the start-up read of the definitions topic may take."
    )
