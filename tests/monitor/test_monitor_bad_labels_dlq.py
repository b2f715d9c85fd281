"""Bad labels are dead-lettered on events.dlq with the reason (and the model) by the monitor, which reads each label
once; the loop goes on. Broker-free (MemoryBus)."""

from __future__ import annotations

import json

from mlops.bus import MemoryBus
from mlops.contracts import events_pb2
from mlops.topics import EVENTS_DLQ, LABELS
from monitor_helpers import DELIVERY, SEA, apply_definitions, delivery_samples
from test_monitor_definitions import DELIVERED, running, send  # noqa: F401 (running: the fixture)


def test_bad_labels_are_dead_lettered_with_the_reason(running) -> None:  # noqa: F811
    bus = MemoryBus(partitions=1)
    apply_definitions(bus, SEA, DELIVERY)
    send(bus, delivery_samples(20, None))
    p = bus.producer(client_id="t-labels")
    p.send(bus.topic(LABELS), events_pb2.Label(entity_id="e1", event_time_ms=1, label=2.0), key="e1")
    p.send(bus.topic(LABELS), events_pb2.Label(entity_id="e2", event_time_ms=1, label=float("nan")), key="e2")
    p.send(bus.topic(DELIVERED), json.dumps({"customer_id": "c1", "event_time": 1, "minutes": "late"}).encode(),
           key="c1")
    p.flush()
    r = running(bus)
    r.handled(40)
    r.until(lambda: len(bus.records(bus.topic(EVENTS_DLQ))) >= 3)
    letters = [rec.decode(events_pb2.DeadLetter) for rec in bus.records(bus.topic(EVENTS_DLQ))]
    dead = {d.original_key: d for d in letters}
    assert set(dead) == {b"e1", b"e2", b"c1"}
    assert all(d.service == "monitor" and d.error_type == "invalid_label" for d in dead.values())
    assert "'sea'" in dead[b"e1"].reason and "2 is not 0 or 1" in dead[b"e1"].reason
    assert dead[b"e1"].field == "label" and dead[b"e1"].source.topic == bus.topic(LABELS)
    assert "not a finite number" in dead[b"e2"].reason
    assert dead[b"c1"].field == "minutes" and "'delivery_time'" in dead[b"c1"].reason
    assert dead[b"c1"].original_size == len(dead[b"c1"].original_value) and len(dead[b"c1"].original_sha256) == 64
