"""Settings of the ingest service (env prefix MLOPS_INGEST_)."""

from __future__ import annotations

from mlops.settings import settings_config
from pydantic import Field
from pydantic_settings import BaseSettings

DEFAULT_METRICS_PORT = 9101


class IngestSettings(BaseSettings):
    model_config = settings_config("MLOPS_INGEST_")

    group_id: str = Field(
        "mlops-ingest", description="Consumer group of the ingest processes (scale out by adding members)."
    )
    client_id: str = Field("mlops-ingest", description="Kafka client id prefix of this process.")
    batch_size: int = Field(
        5000, ge=1, description="Most records per consume/flush/commit batch: a batch is what has arrived, up to "
        "this many (it never waits to fill, so this bounds only a backlog's batches, where the flush and commit "
        "round trips are shared by more records).",
    )
    poll_timeout_s: float = Field(
        0.5, gt=0, description="Longest wait for the first record of a batch (also how often an idle loop checks "
        "its stop flag and definitions).",
    )
    definitions_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait at start for the definitions already published to be read."
    )
    dead_letter_original_bytes: int = Field(
        64 * 1024, ge=0, description="Most bytes of a rejected record's value kept in its dead letter (the whole "
        "value's size and sha256 are always kept): a record near the broker's limit must not make a dead letter "
        "over it.",
    )
    max_future_skew_ms: int = Field(
        24 * 3600 * 1000, ge=0, description="Event times further than this in the future are rejected."
    )
