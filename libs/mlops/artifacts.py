"""Content-addressed model artifacts on the compacted `model.artifacts` topic: key = sha256 of the bytes.

Writers publish bytes under their own hash; readers verify the hash of whatever they read, so a corrupt or
mislabelled artifact is refused wherever it is used.
"""

from __future__ import annotations

import hashlib
import time

from mlops.bus import Bus, BusError, KafkaBus, Producer
from mlops.errors import MlopsError
from mlops.settings import KafkaSettings
from mlops.topics import MODEL_ARTIFACTS

__all__ = [
    "ArtifactCorrupt",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactReader",
    "publish_artifact",
    "sha256_hex",
    "verify",
]


class ArtifactError(MlopsError):
    """Root of artifact errors."""


class ArtifactNotFound(ArtifactError):
    def __init__(self, sha256: str, topic: str, reason: str = "not found"):
        super().__init__(f"artifact sha256={sha256} {reason} on topic {topic}")
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


def _bus(where: KafkaSettings | Bus) -> Bus:
    return KafkaBus(where) if isinstance(where, KafkaSettings) else where


def publish_artifact(producer: Producer, where: KafkaSettings | Bus, data: bytes) -> str:
    """Queue `data` on the artifacts topic under its sha256 and return the hash (flush the producer to wait)."""
    digest = sha256_hex(data)
    producer.send(
        _bus(where).topic(MODEL_ARTIFACTS), data, key=digest,
        headers={"content-type": "application/onnx", "sha256": digest},
    )
    return digest


class ArtifactReader:
    """Reads artifacts by hash from the compacted topic with a bus Reader (no consumer group), keeping a cache of
    what it has verified."""

    def __init__(self, where: KafkaSettings | Bus):
        self.bus = _bus(where)
        self.topic = self.bus.topic(MODEL_ARTIFACTS)
        self._cache: dict[str, bytes] = {}

    def get(self, sha256: str, timeout: float = 30.0) -> bytes:
        """The verified bytes of artifact `sha256`; waits up to `timeout` for it to appear on the topic."""
        if sha256 in self._cache:
            return self._cache[sha256]
        deadline = time.monotonic() + timeout
        wanted = sha256.encode()
        try:
            reader = self.bus.reader([self.topic], client_id="artifact-reader")
        except BusError as exc:
            raise ArtifactNotFound(sha256, self.topic, f"unreadable ({exc})") from exc
        try:
            records = reader.read_to_end(timeout)
            while True:
                # every record under the key counts: a corrupt one (tampered, or a bad write) is refused only when
                # no record read so far carries the right bytes, so a good re-publish after it still serves
                corrupt: ArtifactCorrupt | None = None
                for record in records:
                    if record.key == wanted and record.value is not None:
                        try:
                            self._cache[sha256] = verify(record.value, sha256)
                            return self._cache[sha256]
                        except ArtifactCorrupt as exc:
                            corrupt = exc
                if corrupt is not None:
                    raise corrupt
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ArtifactNotFound(sha256, self.topic)
                records = reader.consume(500, min(0.5, remaining))
        except BusError as exc:
            raise ArtifactNotFound(sha256, self.topic, f"not read within {timeout}s ({exc})") from exc
        finally:
            reader.close()
