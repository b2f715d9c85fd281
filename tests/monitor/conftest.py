"""The buses a monitor edge test hands the service: in-process, or the real broker under a fresh topic prefix."""

from __future__ import annotations

import pytest
from mlops.bus import KafkaBus, MemoryBus
from mlops.settings import KafkaSettings


@pytest.fixture
def memory_bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
def kafka_bus(kafka_settings: KafkaSettings) -> KafkaBus:
    return KafkaBus(kafka_settings)
