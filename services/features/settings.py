"""Settings of the features service (env prefix MLOPS_FEATURES_)."""

from __future__ import annotations

import socket

from mlops.settings import settings_config
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

DEFAULT_METRICS_PORT = 9102


class FeaturesSettings(BaseSettings):
    model_config = settings_config("MLOPS_FEATURES_")

    app_id: str = Field(
        "mlops-features",
        description="faust app id: the consumer group and the prefix of the table changelog topics "
        "(<app_id>-<table>-changelog); give each deployment / test its own.",
    )
    late_events_s: float = Field(
        300.0, ge=0, description="How late an event may be (behind its entity's newest event time) and still count "
        "in its tumbling, hopping or sliding window: windows and buffered events are kept that long past their end.",
    )
    sliding_max_events: int = Field(
        10_000, ge=1, description="Most events buffered per entity, field and sliding window (the oldest go first): "
        "bounds the state of an entity that sends faster than its window is long.",
    )
    definitions_timeout_s: float = Field(
        30.0, gt=0, description="How long start-up reads the definitions topic before following it.",
    )
    store: str = Field(
        "memory://", description="faust table store (memory:// rebuilds from the changelog topics on start)."
    )
    data_dir: str = Field(".run/features", description="faust's working directory (table stores, locks).")
    log_level: str = Field("info", description="faust worker log level.")
    commit_interval_s: float = Field(1.0, gt=0, description="How often processed offsets are committed.")
    batch_max: int = Field(
        500, ge=1, description="Most events folded per batch: one Redis round trip and one table write per key "
        "per batch instead of per event.",
    )
    batch_wait_s: float = Field(
        0.02, gt=0, description="Longest wait for more events before a partial batch is processed (the "
        "freshness cost of batching when traffic is light). Must be > 0: faust's take_events without a timeout "
        "holds a partial batch until it fills.",
    )
    group_instance_id: str = Field(
        "", description="Static group membership (Kafka group.instance.id), unique per replica and kept across its "
        "restarts: a restarted replica gets its partitions back at once instead of after the dead member's session "
        "timeout. `{hostname}` is replaced by the host name (a Kubernetes pod's name, a compose container's id), "
        "which is how the shipped manifests, compose file and `mlops up` set it. A static member does not leave the "
        "group when it stops: its partitions move after the session timeout. Empty: dynamic membership.",
    )
    remembered_events: int = Field(
        64, ge=0, description="Recent event ids remembered per entity and view (8 bytes each in the table): an "
        "event replayed after a crash (consumed again after its effect reached the changelog) is not folded twice "
        "if it is among them. 0: no de-duplication.",
    )
    changelog_compaction_lag_s: float = Field(
        30.0, gt=0, description="Longest a table state superseded by a newer one of its key stays uncompacted in "
        "the changelog topic (its max.compaction.lag.ms and segment.ms, set when faust creates the topic): what a "
        "restart restores stays about one record per key plus this long of writes, instead of every write since "
        "the topic began (Kafka compacts no active segment, and the default one rolls after 7 days or 1 GiB).",
    )
    traced_events_per_s: float = Field(
        100.0, ge=0, description="Most events a second given spans of their own in features (process, send to "
        "features.log, one MULTI per view), on top of the telemetry sampling; the others' views and features.log "
        "records carry the traceparent their record came with. Per-event spans cost features more CPU than the fold "
        "(issue 19). 0: every event.",
    )
    online_rebuild_check_s: float = Field(
        5.0, gt=0, description="How often the online store's marker key is checked: a Redis that lost its data "
        "(restarted without persistence, flushed) is rebuilt from features.log (mlops.online_rebuild).",
    )

    @field_validator("group_instance_id")
    @classmethod
    def _expand_hostname(cls, value: str) -> str:
        return value.replace("{hostname}", socket.gethostname())
