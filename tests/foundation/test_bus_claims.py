"""The README's claims about the bus, each against the real broker: the producer is idempotent (the broker's own log
shows a producer id and sequence numbers), `flush()` raises when a record is not acknowledged, `run_loop` flushes
its outputs before it commits, the STOP policy commits nothing and re-reads, and one 16 MiB limit holds from
producer through broker to consumer (records on `model.artifacts` included)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka import Producer as RawProducer
from confluent_kafka.admin import AdminClient, NewTopic
from mlops.artifacts import ArtifactReader, publish_artifact
from mlops.bus import BusError, Consumer, FailurePolicy, Producer, Reader, Record, StopFlag, run_loop
from mlops.contracts import events_pb2
from mlops.settings import KafkaSettings
from mlops.topics import EVENTS, MODEL_ARTIFACTS, topic_name
from mlops_tools.stack import Stack
from testkit import committed, end_offsets, wait_until


def _topic(kafka: KafkaSettings, name: str, partitions: int = 1, **config: str) -> str:
    """A scratch topic under the test's prefix (deleted with the prefix's topics by the fixture)."""
    topic = f"{kafka.topic_prefix}{name}"
    admin = AdminClient(kafka.client_config())
    [future] = admin.create_topics([NewTopic(topic, partitions, 1, config=config)]).values()
    future.result(30)
    wait_until(lambda: topic in admin.list_topics(timeout=10).topics, timeout=30)
    return topic


def _dump_log(stack: Stack, topic: str, partition: int = 0) -> str:
    """The broker's on-disk log segment of one partition, as Kafka's own DumpLogSegments prints its batches."""
    segment = stack.run_dir / "kafka" / "data" / f"{topic}-{partition}" / f"{0:020d}.log"
    wait_until(segment.exists, timeout=30)
    proc = subprocess.run(["java", "-cp", f"{stack.jar_dir}/*", "kafka.tools.DumpLogSegments", "--files",
                           str(segment)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _batches(dump: str) -> list[dict[str, str]]:
    out = []
    for line in dump.splitlines():
        if line.startswith("baseOffset:"):
            words = line.replace(": ", ":").split()
            out.append(dict(w.split(":", 1) for w in words if ":" in w))
    return out


def _events(n: int, prefix: str = "e") -> list[events_pb2.Event]:
    return [events_pb2.Event(event_id=f"{prefix}{i}", entity_id=f"ent-{i % 5}", event_time_ms=i) for i in range(n)]


def test_the_producer_is_idempotent_as_the_broker_sees_it(stack: Stack, kafka_settings: KafkaSettings) -> None:
    ours = _topic(kafka_settings, "idem.ours")
    plain = _topic(kafka_settings, "idem.plain")
    producer = Producer(kafka_settings, client_id="test-idempotent")
    for ev in _events(20):
        producer.send(ours, ev, key="k")
    producer.flush()
    raw = RawProducer(kafka_settings.client_config() | {"enable.idempotence": False, "acks": 1})
    raw.produce(plain, b"x", key=b"k")
    assert raw.flush(30) == 0

    batches = _batches(_dump_log(stack, ours))
    assert sum(int(b["count"]) for b in batches) == 20
    # the broker assigned a producer id and checks sequence numbers: what makes retries free of duplicates
    assert all(int(b["producerId"]) >= 0 and int(b["baseSequence"]) >= 0 for b in batches), batches
    assert [int(b["baseSequence"]) for b in batches] == [int(b["baseOffset"]) for b in batches]
    assert {b["compresscodec"].lower() for b in batches} == {"lz4"}
    # the control: a non-idempotent producer's batch carries no producer id, so the check above can fail
    [control] = _batches(_dump_log(stack, plain))
    assert int(control["producerId"]) == -1


def test_flush_raises_when_the_broker_refuses_a_record(kafka_settings: KafkaSettings) -> None:
    small = _topic(kafka_settings, "small", **{"max.message.bytes": "1024"})
    producer = Producer(kafka_settings, client_id="test-refused")
    producer.send(small, os.urandom(8_192), key="k")  # random: lz4 cannot shrink it under the topic's limit
    with pytest.raises(BusError, match=f"delivery failed: {small}"):
        producer.flush()
    producer.send(small, b"fits", key="k")
    producer.flush()  # the error was reported once; the producer goes on


def test_a_send_without_poll_is_acknowledged_at_the_callers_poll(kafka_settings: KafkaSettings) -> None:
    """`send(poll=False)` (the prediction log's loop) serves no delivery callback itself; the caller's poll does,
    and every record arrives."""
    topic = _topic(kafka_settings, "nopoll")
    producer = Producer(kafka_settings, client_id="test-nopoll")
    acked: list[bytes] = []
    for i in range(50):
        producer.send(topic, f"r{i}".encode(), key="k", poll=False,
                      on_delivery=lambda err, msg: acked.append(msg.value()) if err is None else None)
    assert acked == []  # nothing served a callback yet, however fast the broker answered
    wait_until(lambda: producer.poll(0.1) >= 0 and len(acked) == 50, timeout=30)
    assert acked == [f"r{i}".encode() for i in range(50)] and end_offsets(kafka_settings, topic) == {0: 50}


def test_flush_raises_when_records_stay_unacknowledged() -> None:
    from mlops_tools.procs import free_port

    nowhere = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens there
    # quiet: librdkafka would log every reconnect attempt for as long as the producer lives
    producer = Producer(nowhere, client_id="test-unacked", extra={"log_level": 0, "message.timeout.ms": 10_000})
    producer.send("anything", b"lost?", key="k")
    with pytest.raises(BusError, match=r"1 record\(s\) still queued after 2"):
        producer.flush(2)


class _Watched(Consumer):
    """A group member that records, at each commit, how many outputs the broker already holds on `sink`."""

    def __init__(self, kafka: KafkaSettings, sink: str, **kwargs: object):
        super().__init__(kafka, **kwargs)  # type: ignore[arg-type]
        self.kafka, self.sink, self.at_commit = kafka, sink, []  # type: ignore[var-annotated]
        self.handled = 0

    def commit(self, records: list[Record]) -> None:
        self.at_commit.append((self.handled, sum(end_offsets(self.kafka, self.sink).values())))
        super().commit(records)


def test_run_loop_flushes_outputs_before_it_commits(kafka_settings: KafkaSettings) -> None:
    source, sink = topic_name(EVENTS, kafka_settings), _topic(kafka_settings, "loop.sink", partitions=3)
    producer = Producer(kafka_settings, client_id="test-loop")
    sent = _events(300)
    for ev in sent:
        producer.send(source, ev, key=ev.entity_id)
    producer.flush()
    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = _Watched(kafka_settings, sink, group_id=group, topics=[source], client_id="t")
    out = Producer(kafka_settings, client_id="test-loop-out", extra={"linger.ms": 500})  # outputs wait in the queue
    stop = StopFlag(install_signals=False)

    def handle(record: Record) -> None:
        out.send(sink, record.value, key=record.key)
        consumer.handled += 1
        if consumer.handled == len(sent):
            stop.set()

    assert run_loop(consumer, handle, stop=stop, producer=out, batch_size=50) == len(sent)
    assert consumer.at_commit, "nothing was committed"
    # at every commit, every output of the records handled so far was already acknowledged by the broker
    assert all(on_broker >= handled for handled, on_broker in consumer.at_commit), consumer.at_commit
    assert committed(kafka_settings, group, source) == end_offsets(kafka_settings, source)


def test_a_failed_flush_commits_nothing(kafka_settings: KafkaSettings) -> None:
    source, small = topic_name(EVENTS, kafka_settings), _topic(kafka_settings, "loop.small", **{
        "max.message.bytes": "1024"})
    producer = Producer(kafka_settings, client_id="test-loop")
    for ev in _events(10):
        producer.send(source, ev, key=ev.entity_id)
    producer.flush()
    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = Consumer(kafka_settings, group_id=group, topics=[source], client_id="t")
    out = Producer(kafka_settings, client_id="test-loop-out")
    with pytest.raises(BusError, match="delivery failed"):
        run_loop(consumer, lambda r: out.send(small, os.urandom(4_096), key=r.key), stop=StopFlag(False),
                 producer=out)
    assert committed(kafka_settings, group, source) == {}  # the outputs were lost, so the inputs stay unread


def test_stop_policy_raises_commits_nothing_and_the_records_are_read_again(kafka_settings: KafkaSettings) -> None:
    source = topic_name(EVENTS, kafka_settings)
    producer = Producer(kafka_settings, client_id="test-stop")
    sent = _events(12) + [events_pb2.Event(event_id="poison", entity_id="ent-0")]
    for ev in sent:
        producer.send(source, ev, key="one-partition")
    producer.flush()
    group = f"g-{uuid.uuid4().hex[:6]}"
    seen: list[str] = []

    def handle(record: Record) -> None:
        event_id = record.decode(events_pb2.Event).event_id
        seen.append(event_id)
        if event_id == "poison":
            raise ValueError("cannot handle poison")

    consumer = Consumer(kafka_settings, group_id=group, topics=[source], client_id="t")
    with pytest.raises(ValueError, match="cannot handle poison"):
        run_loop(consumer, handle, stop=StopFlag(False), policy=FailurePolicy.STOP, batch_size=500)
    assert seen[-1] == "poison" and len(seen) == len(sent)
    assert committed(kafka_settings, group, source) == {}  # not even the records before it

    again: list[str] = []
    stop = StopFlag(False)

    def after_restart(record: Record) -> None:
        again.append(record.decode(events_pb2.Event).event_id)
        if len(again) == len(sent):
            stop.set()

    run_loop(Consumer(kafka_settings, group_id=group, topics=[source], client_id="t2"), after_restart, stop=stop,
             policy=FailurePolicy.SKIP_AND_LOG)
    assert again == [ev.event_id for ev in sent]


def test_one_16_mib_limit_from_producer_through_broker_to_consumer(kafka_settings: KafkaSettings) -> None:
    limit = kafka_settings.max_message_bytes
    assert limit == 16 * 1024 * 1024
    topic = topic_name(EVENTS, kafka_settings)
    big = os.urandom(limit - 64 * 1024)  # the record's own overhead (headers, batch) stays under the limit
    producer = Producer(kafka_settings, client_id="test-big")
    producer.send(topic, big, key="big")
    producer.flush()
    group_reader = Consumer(kafka_settings, group_id=f"g-{uuid.uuid4().hex[:6]}", topics=[topic], client_id="t")
    got: list[Record] = []
    wait_until(lambda: got.extend(group_reader.consume(1, 0.5)) or got, timeout=60)
    group_reader.close()
    assert got[0].value == big
    reader = Reader(kafka_settings, [topic], client_id="t")
    try:
        assert [r.value for r in reader.read_to_end(60)] == [big]
    finally:
        reader.close()

    # an artifact that size travels on the compacted model.artifacts topic and is read back, hash-checked
    artifact = os.urandom(limit - 64 * 1024)
    sha = publish_artifact(producer, kafka_settings, artifact)
    assert ArtifactReader(kafka_settings).get(sha, timeout=60) == artifact
    assert topic_name(MODEL_ARTIFACTS, kafka_settings) in AdminClient(kafka_settings.client_config()).list_topics(
        timeout=10).topics

    # past the limit the producer refuses it at once, before anything reaches the broker
    with pytest.raises((KafkaException, BusError), match="(?i)too large|MSG_SIZE_TOO_LARGE"):
        producer.send(topic, os.urandom(limit + 1024), key="too-big")
        producer.flush()
