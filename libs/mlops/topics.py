"""The topic registry: the one place that names every topic, its partitions and its cleanup policy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mlops.settings import KafkaSettings

__all__ = [
    "ALL_TOPICS",
    "CHALLENGER_VERDICTS",
    "DEFINITIONS",
    "EVENTS",
    "EVENTS_DLQ",
    "FEATURES_LOG",
    "LABELS",
    "MODEL_ARTIFACTS",
    "MODEL_CANDIDATES",
    "MODEL_PROMOTED",
    "MODEL_REGISTRATIONS",
    "PREDICTIONS",
    "RAW_EVENTS",
    "REGISTRY_LOG",
    "RETRAIN_REQUESTED",
    "TRAINING_FAILURES",
    "TopicSpec",
    "delete_topics",
    "ensure_topics",
    "topic_name",
]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    compacted: bool = False
    partitions: int | None = None  # None: KafkaSettings.default_partitions
    config: dict[str, str] = field(default_factory=dict)

    def broker_config(self) -> dict[str, str]:
        conf = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.compacted:
            # compact promptly so a restarted reader replays little; never delete the latest value of a key
            conf |= {"min.cleanable.dirty.ratio": "0.1", "segment.ms": "600000"}
        return conf | self.config


RAW_EVENTS = TopicSpec("raw.events", "what external producers write (JSON or RawEvent), keyed by entity id")
EVENTS = TopicSpec("events", "validated Event records, keyed by entity id")
EVENTS_DLQ = TopicSpec("events.dlq", "DeadLetter records: rejected input with the reason, keyed as the original")
FEATURES_LOG = TopicSpec("features.log", "FeatureVector updates: the offline store, keyed by entity id")
LABELS = TopicSpec("labels", "delayed ground truth (Label), keyed by entity id")
PREDICTIONS = TopicSpec(
    "predictions", "PredictionBatch per served request (and partition), keyed by an entity id of its rows"
)
RETRAIN_REQUESTED = TopicSpec("retrain.requested", "debounced RetrainRequest, keyed by model name", partitions=1)
MODEL_CANDIDATES = TopicSpec("model.candidates", "ModelCandidate from the trainer, keyed by model name", partitions=1)
TRAINING_FAILURES = TopicSpec("training.failures", "TrainingFailed, keyed by model name", partitions=1)
MODEL_PROMOTED = TopicSpec("model.promoted", "ModelPromoted, keyed by model name", partitions=1)
MODEL_ARTIFACTS = TopicSpec(
    "model.artifacts", "ONNX bytes keyed by their sha256 (content-addressed)", compacted=True, partitions=1
)
REGISTRY_LOG = TopicSpec(
    "registry.log", "RegistryEvent: the registry's event-sourced state", compacted=True, partitions=1
)
MODEL_REGISTRATIONS = TopicSpec(
    "model.registrations", "ModelRegistration: a model trained elsewhere, to be checked and gated", partitions=1
)
CHALLENGER_VERDICTS = TopicSpec(
    "challenger.verdicts", "ChallengerVerdict: the monitor's live judgement of a challenger, keyed by model name",
    partitions=1,
)
DEFINITIONS = TopicSpec(
    "definitions", "DefinitionsRevision per applied revision, keyed revision/<n> (never overwritten)",
    compacted=True, partitions=1,
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    RAW_EVENTS,
    EVENTS,
    EVENTS_DLQ,
    FEATURES_LOG,
    LABELS,
    PREDICTIONS,
    RETRAIN_REQUESTED,
    MODEL_CANDIDATES,
    TRAINING_FAILURES,
    MODEL_PROMOTED,
    MODEL_ARTIFACTS,
    REGISTRY_LOG,
    MODEL_REGISTRATIONS,
    DEFINITIONS,
    CHALLENGER_VERDICTS,
)


def topic_name(spec: TopicSpec, settings: KafkaSettings | None = None) -> str:
    """The topic's name on the broker (with the configured prefix)."""
    prefix = (settings or KafkaSettings()).topic_prefix
    return f"{prefix}{spec.name}"


def ensure_topics(
    settings: KafkaSettings, specs: tuple[TopicSpec, ...] = ALL_TOPICS, timeout: float = 30.0
) -> list[str]:
    """Create the missing topics and wait until the broker reports them; returns the names it created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.client_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = {
        topic_name(spec, settings): NewTopic(
            topic_name(spec, settings),
            num_partitions=spec.partitions or settings.default_partitions,
            replication_factor=settings.replication_factor,
            config=spec.broker_config() | {"max.message.bytes": str(settings.max_message_bytes)},
        )
        for spec in specs
    }
    missing = [topic for name, topic in wanted.items() if name not in existing]
    created: list[str] = []
    if missing:
        for name, fut in admin.create_topics(missing, operation_timeout=timeout).items():
            try:
                fut.result()
                created.append(name)
            except Exception as exc:  # another process may have created it in between
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    # the controller acknowledges a creation before the broker serves the topic's metadata (describe_configs, a
    # producer's first send): wait for that, as delete_topics waits for deletions
    deadline = time.monotonic() + timeout
    while missing:
        listed = admin.list_topics(timeout=timeout).topics
        missing = [t for t in missing if t.topic not in listed or listed[t.topic].error is not None
                   or not listed[t.topic].partitions]
        if missing and time.monotonic() > deadline:
            raise TimeoutError(f"topics not served {timeout}s after creation: {[t.topic for t in missing][:5]}")
        if missing:
            time.sleep(0.1)
    return created


def delete_topics(settings: KafkaSettings, timeout: float = 30.0) -> list[str]:
    """Delete every topic under the settings' (non-empty) prefix; returns the names deleted.

    For scratch prefixes of tests, benchmarks and demos: thousands of leftover partitions slow a broker's start
    and every client's metadata refresh. Refuses an empty prefix, which would mean the real topics.
    """
    from confluent_kafka.admin import AdminClient

    prefix = settings.topic_prefix
    if not prefix:
        raise ValueError("delete_topics needs a topic prefix; refusing to delete unprefixed topics")
    admin = AdminClient(settings.client_config())
    doomed = [name for name in admin.list_topics(timeout=timeout).topics if name.startswith(prefix)]
    if not doomed:
        return []
    deleted: list[str] = []
    for name, fut in admin.delete_topics(doomed, operation_timeout=timeout).items():
        try:
            fut.result()
            deleted.append(name)
        except Exception as exc:  # already gone (another cleanup) is fine
            if "UNKNOWN_TOPIC_OR_PART" not in str(exc):
                raise
    # the broker acknowledges a deletion before its metadata stops listing the topic: wait for that, so a caller
    # (or a test) that lists or re-creates topics next sees them gone
    deadline = time.monotonic() + timeout
    while left := set(doomed) & set(admin.list_topics(timeout=timeout).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics still listed {timeout}s after deletion: {sorted(left)[:5]}")
        time.sleep(0.1)
    return deleted
