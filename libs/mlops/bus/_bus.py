"""`Bus`: what an edge is given to make its clients — the broker (`KafkaBus`) or, in unit tests, `MemoryBus`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from mlops.bus._kafka import Consumer, Producer
from mlops.bus._reader import Reader, Start
from mlops.settings import KafkaSettings
from mlops.topics import TopicSpec, topic_name

__all__ = ["Bus", "KafkaBus"]


class Bus(Protocol):
    """Makes producers, group consumers and readers, and names topics."""

    @property
    def settings(self) -> KafkaSettings | None:
        """The broker's settings (None for an in-process bus)."""
        ...

    def topic(self, spec: TopicSpec) -> str:
        """The topic's name on this bus (with the configured prefix)."""
        ...

    def producer(self, *, client_id: str, extra: dict[str, object] | None = None) -> Producer: ...

    def consumer(
        self,
        *,
        group_id: str,
        topics: Iterable[str],
        client_id: str,
        from_beginning: bool = True,
        rewind: bool = False,
        extra: dict[str, object] | None = None,
    ) -> Consumer: ...

    def reader(self, topics: Iterable[str], *, client_id: str, start: Start = "beginning") -> Reader: ...


class KafkaBus:
    """The real bus: clients of the broker named by `settings`."""

    def __init__(self, settings: KafkaSettings):
        self._settings = settings

    @property
    def settings(self) -> KafkaSettings:
        return self._settings

    def topic(self, spec: TopicSpec) -> str:
        return topic_name(spec, self._settings)

    def producer(self, *, client_id: str, extra: dict[str, object] | None = None) -> Producer:
        return Producer(self._settings, client_id=client_id, extra=extra)

    def consumer(self, **options: Any) -> Consumer:
        """A group member; takes Bus.consumer's keywords."""
        return Consumer(self._settings, **options)

    def reader(self, topics: Iterable[str], *, client_id: str, start: Start = "beginning") -> Reader:
        return Reader(self._settings, topics, client_id=client_id, start=start)

    def __repr__(self) -> str:
        return f"KafkaBus({self._settings.bootstrap_servers}, prefix={self._settings.topic_prefix!r})"
