"""Session fixtures: the real local stack (Kafka KRaft + Redis) started once, and per-test isolation by prefix.

Integration tests never mock Kafka or Redis. Each test gets its own topic prefix and Redis key prefix, so tests
(and a demo running beside them) never see each other's records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from mlops.bus import Bus, KafkaBus, MemoryBus
from mlops.settings import KafkaSettings, RedisSettings
from mlops.topics import delete_topics, ensure_topics
from mlops_tools.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    """Kafka + Redis, started by the project's own code (idempotent; left running for the next session)."""
    s = Stack()
    s.up()
    return s


@pytest.fixture
def kafka_settings_factory(stack: Stack) -> Iterator[Callable[..., KafkaSettings]]:
    """Kafka settings with a fresh topic prefix whose topics (all of the registry) already exist.

    The topics are deleted after the test: left behind, a few thousand partitions made the broker's restart take
    minutes and slowed every client's metadata refresh.
    """
    made: list[KafkaSettings] = []

    def make(partitions: int = 3) -> KafkaSettings:
        base = stack.kafka_settings()
        settings = base.model_copy(
            update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}.", "default_partitions": partitions}
        )
        made.append(settings)
        ensure_topics(settings)
        return settings

    yield make
    for settings in made:
        delete_topics(settings)


@pytest.fixture
def kafka_settings(kafka_settings_factory: Callable[..., KafkaSettings]) -> KafkaSettings:
    return kafka_settings_factory()


@pytest.fixture
def redis_settings(stack: Stack) -> RedisSettings:
    return stack.redis_settings().model_copy(update={"key_prefix": f"t{uuid.uuid4().hex[:10]}"})


# the broker variant is fetched by name at run time, so the integration mark is set here
@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def bus(request: pytest.FixtureRequest) -> Bus:
    """The same assertions once on MemoryBus and once on the real broker (a fresh topic prefix)."""
    if request.param == "memory":
        return MemoryBus()
    return KafkaBus(request.getfixturevalue("kafka_settings"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tests that use the stack are integration tests, whatever their module says
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
