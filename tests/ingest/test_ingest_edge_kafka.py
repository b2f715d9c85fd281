"""Integration tests of ingest against the real broker: mix of valid/invalid, kcat as a third-party producer,
kill -9 mid-stream with restart, two processes splitting the partitions, trace continuation, a new source declared
while running. Every test runs under the SEA definitions (examples/sea), applied on its fresh topic prefix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer as KConsumer
from confluent_kafka import Producer as KProducer
from confluent_kafka import TopicPartition
from ingest_definitions import DELIVERY, SEA, apply
from mlops import contracts
from mlops.bus import KafkaBus, StopFlag
from mlops.contracts import events_pb2
from mlops.settings import KafkaSettings
from mlops.telemetry import setup_tracing
from mlops.topics import EVENTS, EVENTS_DLQ, RAW_EVENTS, TopicSpec, topic_name
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from testkit import tool, wait_until

from services.ingest.edge import Ingest
from services.ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000


@pytest.fixture(autouse=True)
def sea_applied(request: pytest.FixtureRequest) -> None:
    """The SEA definitions in force on the test's prefix (once: a session fixture that already applied them makes
    this a no-op). Tests without the broker (the memory-bus tests import this module) are left alone."""
    if "kafka_settings" in request.fixturenames:
        apply(KafkaBus(request.getfixturevalue("kafka_settings")), SEA)


def good(i: int, entity: str | None = None) -> bytes:
    return json.dumps(
        {
            "entity_id": entity or f"e{i % 17}",
            "event_time": T0 + i,
            "schema_version": 1,
            "values": {"x0": i % 10, "x1": 1.5, "x2": 9.0},
            "event_id": f"ev-{i}",
        }
    ).encode()


BAD = [  # (value, field named in the reason)
    (
        json.dumps(
            {"entity_id": "b", "event_time": T0, "schema_version": 1, "values": {"x0": 99, "x1": 1, "x2": 1}}
        ).encode(),
        "values.x0",
    ),
    (
        json.dumps(
            {"entity_id": "b", "event_time": T0, "schema_version": 7, "values": {"x0": 1, "x1": 1, "x2": 1}}
        ).encode(),
        "schema_version",
    ),
    (
        json.dumps(
            {"entity_id": "b", "event_time": T0, "schema_version": 1, "values": {"x0": 1, "x2": 1}}
        ).encode(),
        "values.x1",
    ),
    (
        json.dumps(
            {"entity_id": "", "event_time": T0, "schema_version": 1, "values": {"x0": 1, "x1": 1, "x2": 1}}
        ).encode(),
        "entity_id",
    ),
    (
        b'{"entity_id": "b", "event_time": "soon", "schema_version": 1, "values": {"x0":1,"x1":1,"x2":1}}',
        "event_time",
    ),
    (b'{"entity_id": "b", "event_time": 5, "schema_version": 1, "values": {"x0":NaN,"x1":1,"x2":1}}', "values.x0"),
    (b"not json at all", ""),
]


def produce(kafka: KafkaSettings, records: list[tuple[bytes | None, bytes]], headers=None, spec=RAW_EVENTS) -> None:
    p = KProducer(kafka.client_config() | {"linger.ms": 5})
    topic = topic_name(spec, kafka)
    for key, value in records:
        p.produce(topic, value=value, key=key, headers=headers)
        p.poll(0)
    assert p.flush(30) == 0


def drain(kafka: KafkaSettings, spec, expected: int, timeout: float = 60.0) -> list:
    """Read a whole topic from the beginning until `expected` records (or the timeout), no group commits."""
    name = topic_name(spec, kafka)
    c = KConsumer(
        kafka.client_config() | {"group.id": f"drain-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
    )
    meta = c.list_topics(name, timeout=10).topics[name]
    c.assign([TopicPartition(name, p, 0) for p in meta.partitions])
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    out.append(m)
        # a short grace read to catch surplus (duplicates)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            out.extend(m for m in c.consume(1000, 0.2) if m.error() is None)
    finally:
        c.close()
    return out


def ingest_settings(**over: object) -> IngestSettings:
    return IngestSettings(group_id=f"ingest-{uuid.uuid4().hex[:8]}", poll_timeout_s=0.2, **over)


class Running:
    """An in-process ingest loop on a thread, stopped (flush + commit) on exit."""

    def __init__(self, kafka: KafkaSettings, settings: IngestSettings):
        self.ingest = Ingest(settings, KafkaBus(kafka))
        self.stop = StopFlag(install_signals=False)
        self.thread = threading.Thread(target=self.ingest.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Ingest:
        self.thread.start()
        return self.ingest

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive()


def test_valid_invalid_mix(kafka_settings: KafkaSettings) -> None:
    records = [(f"e{i}".encode(), good(i)) for i in range(200)]
    for j, (value, _) in enumerate(BAD):
        records.insert(j * 20 + 5, (b"bad", value))
    records.append((None, b""))  # an empty value
    produce(kafka_settings, records)
    with Running(kafka_settings, ingest_settings()):
        events = drain(kafka_settings, EVENTS, 200)
        dlq = drain(kafka_settings, EVENTS_DLQ, len(BAD) + 1)
    assert len(events) == 200
    assert len(dlq) == len(BAD) + 1
    assert len(events) + len(dlq) == len(records)
    ev = contracts.decode(events_pb2.Event, events[0].value())
    assert (
        ev.entity_id == events[0].key().decode()
        and ev.ingest_time_ms > 0
        and ev.source.topic.endswith("raw.events")
    )
    dead = [contracts.decode(events_pb2.DeadLetter, m.value()) for m in dlq]
    by_value = {d.original_value: d for d in dead}
    for value, field in BAD:
        d = by_value[value]
        assert d.field == field and (field in d.reason), d.reason
        assert d.error_type and d.source.topic == topic_name(RAW_EVENTS, kafka_settings) and d.service == "ingest"
        assert d.original_key == b"bad"
    assert any(d.error_type == "empty_record" for d in dead)


def test_protobuf_and_trace_continuation(kafka_settings: KafkaSettings) -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("ingest-test", exporter=exporter)
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{'ab' * 8}-01"
    raw = events_pb2.RawEvent(
        entity_id="p1", event_time_ms=T0, schema_version=1, values={"x0": 1, "x1": 2, "x2": 3}
    )
    produce(
        kafka_settings,
        [(b"p1", contracts.encode(raw))],
        headers=[("traceparent", parent.encode()), ("content-type", contracts.CONTENT_TYPE.encode())],
    )
    produce(kafka_settings, [(b"p2", good(1, "p2"))])  # no traceparent: a root span is created
    with Running(kafka_settings, ingest_settings()):
        events = drain(kafka_settings, EVENTS, 2)
    assert len(events) == 2
    by_key = {m.key(): dict(m.headers()) for m in events}
    assert by_key[b"p1"]["traceparent"].decode().split("-")[1] == trace_id
    assert by_key[b"p2"]["traceparent"].decode().split("-")[1] != trace_id
    spans = [s for s in exporter.get_finished_spans() if s.name == f"process {topic_name(RAW_EVENTS, kafka_settings)}"]
    assert any(format(s.context.trace_id, "032x") == trace_id and s.parent is not None for s in spans)
    assert any(s.parent is None for s in spans)


@pytest.fixture(scope="module")
def kcat() -> str:
    return tool("kcat")  # Debian's kcat, installed on demand


def test_kcat_as_third_party_producer(kafka_settings: KafkaSettings, kcat: str) -> None:
    lines = [good(i).decode() for i in range(20)] + ['{"entity_id": "k", "values": {}}']
    topic = topic_name(RAW_EVENTS, kafka_settings)
    subprocess.run(
        [
            kcat,
            "-P",
            "-b",
            kafka_settings.bootstrap_servers,
            "-t",
            topic,
            "-K",
            "|",
            "-H",
            "content-type=application/json",
        ],
        input="\n".join(f"kcat-{i}|{line}" for i, line in enumerate(lines)).encode() + b"\n",
        check=True,
        timeout=30,
        capture_output=True,
    )
    with Running(kafka_settings, ingest_settings()):
        events = drain(kafka_settings, EVENTS, 20)
        dlq = drain(kafka_settings, EVENTS_DLQ, 1)
    assert len(events) == 20 and len(dlq) == 1
    d = contracts.decode(events_pb2.DeadLetter, dlq[0].value())
    assert d.original_key == b"kcat-20" and d.original_headers["content-type"] == "application/json"
    assert d.error_type == "missing_field" and d.field in d.reason


def _spawn(kafka: KafkaSettings, group: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MLOPS_INGEST_GROUP_ID": group,
        "MLOPS_INGEST_BATCH_SIZE": "200",
        "MLOPS_TELEMETRY_METRICS_PORT": "0",
        "MLOPS_TELEMETRY_LOG_FORMAT": "text",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'libs'}",
    }
    fh = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "services.ingest"],
        cwd=ROOT,
        env=env,
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _committed(kafka: KafkaSettings, group: str) -> int:
    name = topic_name(RAW_EVENTS, kafka)
    c = KConsumer(kafka.client_config() | {"group.id": group, "enable.auto.commit": False})
    try:
        parts = c.committed([TopicPartition(name, p) for p in range(kafka.default_partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        c.close()


def test_kill_minus_9_loses_nothing(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    n = 20_000
    group = f"ingest-kill-{uuid.uuid4().hex[:6]}"
    records = [(f"e{i % 50}".encode(), good(i)) for i in range(n)]
    for j in range(20):
        records[j * 997] = (b"bad", BAD[j % len(BAD)][0])
    produce(kafka_settings, records)
    first = _spawn(kafka_settings, group, tmp_path / "ingest1.log")
    try:
        wait_until(lambda: _committed(kafka_settings, group) >= 2_000 or first.poll() is not None, timeout=120,
                   interval=0.2)
        assert first.poll() is None, (tmp_path / "ingest1.log").read_text()[-2000:]
        os.kill(first.pid, signal.SIGKILL)  # mid-stream: no flush, no commit
        first.wait(10)
        killed_at = _committed(kafka_settings, group)
        # the kill really came mid-stream: part of the stream committed, part not
        assert 2_000 <= killed_at < n, f"{killed_at} of {n} committed at the kill; make the stream longer"
        second = _spawn(kafka_settings, group, tmp_path / "ingest2.log")
        try:
            wait_until(lambda: _committed(kafka_settings, group) == n, timeout=180, interval=0.3,
                       message=lambda: (tmp_path / "ingest2.log").read_text()[-2000:])
        finally:
            _stop(second)
    finally:
        _stop(first)
    events = drain(kafka_settings, EVENTS, n - 20, timeout=30)
    dlq = drain(kafka_settings, EVENTS_DLQ, 20, timeout=10)
    ids = Counter(contracts.decode(events_pb2.Event, m.value()).event_id for m in events)
    dlq_src = Counter(contracts.decode(events_pb2.DeadLetter, m.value()).source.offset for m in dlq)
    duplicates = sum(c - 1 for c in ids.values()) + sum(c - 1 for c in dlq_src.values())
    print(
        f"\nkill -9 after {killed_at} committed of {n}: out={len(events)} dlq={len(dlq)} duplicates={duplicates}"
    )
    assert len(ids) == n - 20, "every valid record reached events at least once"
    assert len(events) + len(dlq) >= n
    assert len(dlq_src) == 20


def test_two_processes_split_partitions(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    group = f"ingest-pair-{uuid.uuid4().hex[:6]}"
    procs = [_spawn(kafka_settings, group, tmp_path / f"ingest{i}.log") for i in range(2)]
    try:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(kafka_settings.client_config())
        deadline = time.monotonic() + 60
        owners: dict[str, list[int]] = {}
        while time.monotonic() < deadline:
            desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
            owners = {
                m.client_id + str(i): [tp.partition for tp in m.assignment.topic_partitions]
                for i, m in enumerate(desc.members)
            }
            if len(owners) == 2 and all(owners.values()):
                break
            time.sleep(0.5)
        assert len(owners) == 2, owners
        assigned = sorted(p for ps in owners.values() for p in ps)
        assert assigned == list(range(kafka_settings.default_partitions)), owners
        assert all(owners.values())
        produce(kafka_settings, [(f"e{i}".encode(), good(i)) for i in range(300)])
        assert len(drain(kafka_settings, EVENTS, 300, timeout=30)) == 300
    finally:
        for p in procs:
            _stop(p)


def test_a_source_declared_while_running_is_subscribed_without_a_restart(kafka_settings: KafkaSettings) -> None:
    produce(kafka_settings, [(b"e1", good(1, "e1"))])
    with Running(kafka_settings, ingest_settings()) as ingest:
        assert len(drain(kafka_settings, EVENTS, 1)) == 1
        assert ingest.revision == 1
        # `mlops apply` creates the new source's topic; ingest makes sure of it too, so do not create it here
        apply(KafkaBus(kafka_settings), DELIVERY)
        deadline = time.monotonic() + 60
        while not (ingest.revision == 2 and ingest.ready) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ingest.revision == 2 and ingest.ready
        orders = json.dumps({"customer_id": "c1", "ordered_at": T0, "schema_version": 1, "values": {
            "amount": 12.5, "items": 2, "express": True, "channel": "web", "payment": "card"}}).encode()
        produce(kafka_settings, [(b"c1", orders)], spec=TopicSpec("orders.raw", "orders"))
        produce(kafka_settings, [(b"e2", good(2, "e2"))])
        events = drain(kafka_settings, EVENTS, 3)
    by_source = Counter(contracts.decode(events_pb2.Event, m.value()).source_name for m in events)
    assert by_source == {"sea_events": 2, "orders": 1}
    [order] = [contracts.decode(events_pb2.Event, m.value()) for m in events if m.key() == b"c1"]
    assert dict(order.categories) == {"channel": "web", "payment": "card"} and order.values["express"] == 1.0
