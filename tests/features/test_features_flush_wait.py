"""features.log is waited for while the broker is away (a batch that failed instead would be acked by faust and its
events lost — the chaos suite's broker-kill found it); a record that failed for good still fails the batch."""

from __future__ import annotations

import pytest
from mlops.bus import BusError, MemoryBus
from mlops.online_store import MemoryOnlineStore

from services.features.edge import Featurizer


class _Flaky:
    """A producer whose first flushes find records still queued (the broker is down), then all acknowledged."""

    def __init__(self, queued_flushes: int, error: str = ""):
        self.queued_flushes, self.error, self.flushes = queued_flushes, error, 0

    def flush(self, timeout: float = 30.0) -> None:
        self.flushes += 1
        if self.flushes <= self.queued_flushes:
            raise BusError("delivery failed: " + (f"{self.error}; " if self.error else "") +
                           f"3 record(s) still queued after {timeout}s")

    def __len__(self) -> int:
        return 3 if self.flushes <= self.queued_flushes else 0


def _featurizer(producer: object) -> Featurizer:
    return Featurizer(MemoryOnlineStore(), producer, "features.log", "test")  # type: ignore[arg-type]


def test_a_broker_outage_is_waited_out() -> None:
    producer = _Flaky(queued_flushes=3)
    _featurizer(producer)._flush()
    assert producer.flushes == 4


def test_a_record_that_failed_for_good_fails_the_batch() -> None:
    producer = _Flaky(queued_flushes=1, error="features.log: Broker: Message size too large")
    with pytest.raises(BusError, match="too large"):
        _featurizer(producer)._flush()


def test_the_memory_bus_producer_flushes_at_once() -> None:
    bus = MemoryBus()
    featurizer = _featurizer(bus.producer(client_id="t"))
    featurizer._flush()
