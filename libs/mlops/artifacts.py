"""Content-addressed model artifacts on the compacted `model.artifacts` topic: key = sha256 of the bytes.

Writers publish bytes under their own hash; readers verify the hash of whatever they read, so a corrupt or
mislabelled artifact is refused wherever it is used.
"""

from __future__ import annotations

import hashlib
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from confluent_kafka import Consumer as _KafkaConsumer

from mlops.bus import Producer
from mlops.settings import KafkaSettings
from mlops.topics import MODEL_ARTIFACTS, topic_name


class ArtifactError(LookupError):
    """Root of artifact errors."""


class ArtifactNotFound(ArtifactError):
    def __init__(self, sha256: str, topic: str):
        super().__init__(f"artifact sha256={sha256} not found on topic {topic}")
        self.sha256 = sha256


class ArtifactCorrupt(ArtifactError):
    def __init__(self, expected: str, actual: str):
        super().__init__(f"artifact bytes do not match their address: expected sha256={expected}, got {actual}")
        self.expected, self.actual = expected, actual


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected_sha256: str) -> bytes:
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ArtifactCorrupt(expected_sha256, actual)
    return data


def publish_artifact(producer: Producer, settings: KafkaSettings, data: bytes) -> str:
    """Queue `data` on the artifacts topic under its sha256 and return the hash (flush the producer to wait)."""
    digest = sha256_hex(data)
    producer.send(
        topic_name(MODEL_ARTIFACTS, settings), data, key=digest,
        headers={"content-type": "application/onnx", "sha256": digest},
    )
    return digest


class ArtifactReader:
    """Reads artifacts by hash from the compacted topic (no consumer group: assigns partitions and scans), keeping
    a cache of what it has verified."""

    def __init__(self, settings: KafkaSettings):
        self.settings = settings
        self.topic = topic_name(MODEL_ARTIFACTS, settings)
        self._cache: dict[str, bytes] = {}

    def get(self, sha256: str, timeout: float = 30.0) -> bytes:
        """The verified bytes of artifact `sha256`; waits up to `timeout` for it to appear on the topic."""
        if sha256 in self._cache:
            return self._cache[sha256]
        consumer = _KafkaConsumer(
            self.settings.client_config()
            | {
                "group.id": f"artifact-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.max.bytes": self.settings.max_message_bytes,
                "max.partition.fetch.bytes": self.settings.max_message_bytes,
            }
        )
        try:
            meta = consumer.list_topics(self.topic, timeout=10).topics[self.topic]
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                    continue
                if msg.error():
                    raise ArtifactError(f"reading {self.topic}: {msg.error()}")
                key = (msg.key() or b"").decode()
                if key == sha256 and msg.value() is not None:
                    self._cache[sha256] = verify(msg.value(), sha256)
                    return self._cache[sha256]
        finally:
            consumer.close()
        raise ArtifactNotFound(sha256, self.topic)
