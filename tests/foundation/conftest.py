"""Fixtures of the foundation tests: `bus`, each test once on MemoryBus and once on the real broker."""

from __future__ import annotations

import pytest
from mlops.bus import Bus, KafkaBus, MemoryBus


# the broker variant is fetched by name at run time, so the integration mark is set here
@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def bus(request: pytest.FixtureRequest) -> Bus:
    if request.param == "memory":
        return MemoryBus()
    return KafkaBus(request.getfixturevalue("kafka_settings"))
