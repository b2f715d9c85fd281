"""The ingest side of bench_ingest: the group's committed offsets, pausing a warm ingest's loop while the baselines
run, and one ingest process of a scaled-out group (a module, so `spawn` can import it)."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer as KConsumer
from confluent_kafka import TopicPartition
from mlops.bus import KafkaBus, StopFlag
from mlops.settings import KafkaSettings, TelemetrySettings
from mlops.topics import TopicSpec, topic_name


class Committed:
    """The group's committed offsets on the source's raw topic (one long-lived client: polling it is cheap)."""

    def __init__(self, kafka: KafkaSettings, group: str, raw: TopicSpec):
        self._c = KConsumer(kafka.client_config() | {"group.id": group, "enable.auto.commit": False})
        name = topic_name(raw, kafka)
        self._tps = [TopicPartition(name, p) for p in range(kafka.default_partitions)]

    def __call__(self) -> int:
        return sum(max(tp.offset, 0) for tp in self._c.committed(self._tps, timeout=10))

    def wait(self, target: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (c := self()) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        return c

    def close(self) -> None:
        self._c.close()


def gate(ingest, paused) -> threading.Event:  # noqa: ANN001
    """Make `ingest`'s loop pause its partitions while `paused` is set. librdkafka's pause/resume are called from
    the loop's own thread (called from another thread while the loop consumes, pause() starves on the consumer's
    lock); a paused loop fetches nothing, so nothing is prefetched while the baselines run. Returns an event that
    is set while the partitions are paused. Call it once the loop has subscribed (`ingest.consumer` is set)."""
    consumer, is_paused = ingest.consumer, threading.Event()
    consume = consumer.consume

    def gated(max_records: int = 500, timeout: float = 1.0) -> list:
        raw = consumer.raw
        if paused.is_set():
            if not is_paused.is_set() and raw.assignment():
                raw.pause(raw.assignment())
                is_paused.set()
            time.sleep(0.005)
            return []
        if is_paused.is_set():
            raw.resume(raw.assignment())
            is_paused.clear()
        return consume(max_records, timeout)

    consumer.consume = gated
    return is_paused


def member(prefix: str, group: str, tracing: str, sampling: float, ready, paused, acked, stop) -> None:  # noqa: ANN001
    """One ingest process of the group (for --processes > 1): runs until `stop`, paused while `paused` is set."""
    kafka = KafkaSettings(topic_prefix=prefix)
    if tracing == "sdk":
        from mlops.telemetry import setup_tracing

        setup_tracing("ingest", TelemetrySettings(sampling_ratio=sampling))
    from services.ingest.edge import Ingest
    from services.ingest.settings import IngestSettings

    ingest = Ingest(IngestSettings(group_id=group, poll_timeout_s=0.1), KafkaBus(kafka))
    flag = StopFlag(install_signals=False)
    th = threading.Thread(target=ingest.run, args=(flag,), daemon=True)
    th.start()
    is_paused = gate(ingest, paused) if subscribed(ingest) else threading.Event()
    while not stop.is_set():
        if ingest.assigned:
            ready.set()
        (acked.set if is_paused.is_set() else acked.clear)()
        time.sleep(0.005)
    flag.set()
    th.join(30)


def subscribed(ingest, timeout: float = 60.0) -> bool:  # noqa: ANN001
    """Wait until `ingest` has read the definitions and subscribed to the source topics."""
    deadline = time.monotonic() + timeout
    while ingest.consumer is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return ingest.consumer is not None
