"""The ingest edge on the in-process bus: raw records in → events and dead letters out, offsets committed, the
bus's lag gauge kept. No broker."""

from __future__ import annotations

import threading
import time

from mlops.bus import MemoryBus, StopFlag
from mlops.contracts import events_pb2
from mlops.topics import EVENTS, EVENTS_DLQ, RAW_EVENTS
from prometheus_client import REGISTRY
from test_ingest_edge_kafka import BAD, good

from services.ingest.edge import Ingest
from services.ingest.settings import IngestSettings


def run_until_committed(bus: MemoryBus, settings: IngestSettings, total: int, timeout: float = 20.0) -> dict:
    """Run an ingest on a thread until its group has committed `total` records of raw.events; returns the bus's
    lag gauge per partition of the group, read while the loop still ran."""
    ingest = Ingest(settings, bus)
    stop = StopFlag(install_signals=False)
    thread = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    thread.start()
    raw = bus.topic(RAW_EVENTS)
    partitions = range(bus.default_partitions)
    lag: dict = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            labels = {"topic": raw, "group": settings.group_id}
            lag = {p: REGISTRY.get_sample_value("mlops_consumer_lag_records", labels | {"partition": str(p)})
                   for p in partitions}
            # the gauge follows each commit: done once both show everything
            committed = sum(bus.committed(settings.group_id, raw, p) or 0 for p in partitions)
            if committed >= total and all(v == 0 for v in lag.values()):
                break
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and ingest.assigned
    return lag


def test_raw_records_become_events_and_dead_letters_naming_the_field() -> None:
    bus = MemoryBus(partitions=3)
    producer = bus.producer(client_id="test")
    raw = bus.topic(RAW_EVENTS)
    for i in range(30):
        producer.send(raw, good(i), key=f"e{i}")
    for value, _field in BAD:
        producer.send(raw, value, key="bad", headers={"origin": "test"})
    producer.send(raw, b"", key="empty")
    producer.flush()
    total = 30 + len(BAD) + 1
    settings = IngestSettings(group_id="ingest-memory", poll_timeout_s=0.05, batch_size=7)

    lag = run_until_committed(bus, settings, total)

    events = [r.decode(events_pb2.Event) for r in bus.records(bus.topic(EVENTS))]
    assert sorted(e.event_id for e in events) == sorted(f"ev-{i}" for i in range(30))
    assert all(e.source.topic == raw and e.ingest_time_ms > 0 for e in events)
    dead = [r.decode(events_pb2.DeadLetter) for r in bus.records(bus.topic(EVENTS_DLQ))]
    by_value = {d.original_value: d for d in dead}
    for value, field in BAD:
        d = by_value[value]
        assert d.field == field and field in d.reason and d.error_type, d.reason
        assert d.original_key == b"bad" and d.original_headers["origin"] == "test" and d.service == "ingest"
    assert by_value[b""].error_type == "empty_record"
    for p in range(3):  # every partition committed to its end
        assert bus.committed(settings.group_id, raw, p) == sum(1 for r in bus.records(raw) if r.partition == p)
    assert lag == {0: 0.0, 1: 0.0, 2: 0.0}


def test_a_bug_in_handling_dead_letters_the_record_and_the_loop_goes_on(monkeypatch) -> None:
    import services.ingest.edge as edge

    real = edge.to_event

    def flaky(ev, *args):  # noqa: ANN001, ANN002
        if ev.event_id == "ev-3":
            raise KeyError("boom")
        return real(ev, *args)

    monkeypatch.setattr(edge, "to_event", flaky)
    bus = MemoryBus(partitions=1)
    producer = bus.producer(client_id="test")
    for i in range(6):
        producer.send(bus.topic(RAW_EVENTS), good(i), key="k")
    producer.flush()
    run_until_committed(bus, IngestSettings(group_id="ingest-bug", poll_timeout_s=0.05), 6)
    assert len(bus.records(bus.topic(EVENTS))) == 5
    [dead] = [r.decode(events_pb2.DeadLetter) for r in bus.records(bus.topic(EVENTS_DLQ))]
    assert dead.error_type == "internal_error" and "KeyError" in dead.reason
