"""Content-addressed artifacts on both buses: found and verified by hash, missing or corrupt refused."""

from __future__ import annotations

import pytest
from mlops.artifacts import (
    ArtifactCorrupt,
    ArtifactError,
    ArtifactNotFound,
    ArtifactReader,
    publish_artifact,
    sha256_hex,
)
from mlops.bus import Bus
from mlops.errors import MlopsError
from mlops.topics import MODEL_ARTIFACTS


def test_published_artifacts_are_read_back_verified(bus: Bus) -> None:
    producer = bus.producer(client_id="artifacts")
    digests = [publish_artifact(producer, bus, data) for data in (b"model one", b"model two")]
    producer.flush()
    reader = ArtifactReader(bus)
    assert reader.get(digests[1], timeout=30) == b"model two"
    assert reader.get(digests[1], timeout=0) == b"model two"  # from the cache
    missing = sha256_hex(b"never published")
    with pytest.raises(ArtifactNotFound, match=missing):
        reader.get(missing, timeout=1.0)


def test_bytes_under_a_wrong_address_are_refused(bus: Bus) -> None:
    producer = bus.producer(client_id="artifacts")
    wrong = sha256_hex(b"the real model")
    producer.send(bus.topic(MODEL_ARTIFACTS), b"something else", key=wrong)
    producer.flush()
    with pytest.raises(ArtifactCorrupt) as info:
        ArtifactReader(bus).get(wrong, timeout=30)
    assert isinstance(info.value, ArtifactError) and isinstance(info.value, MlopsError)
    assert info.value.actual == sha256_hex(b"something else")


def test_a_good_copy_after_a_corrupt_one_is_served(bus: Bus) -> None:
    producer = bus.producer(client_id="artifacts")
    address = sha256_hex(b"the real model")
    producer.send(bus.topic(MODEL_ARTIFACTS), b"tampered bytes", key=address)
    producer.send(bus.topic(MODEL_ARTIFACTS), b"the real model", key=address)
    producer.flush()
    assert ArtifactReader(bus).get(address, timeout=30) == b"the real model"
