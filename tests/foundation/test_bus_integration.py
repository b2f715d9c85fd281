"""The bus against the real broker: round trip with headers, at-least-once after a kill, clear decode errors,
graceful shutdown on SIGTERM, and the broker's own view of topics and consumer groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from mlops import contracts
from mlops.bus import Consumer, FailurePolicy, Producer, Record, StopFlag, run_loop
from mlops.contracts import ContractError, events_pb2
from mlops.settings import KafkaSettings
from mlops.telemetry import setup_tracing, tracer
from mlops.topics import ALL_TOPICS, EVENTS, REGISTRY_LOG, delete_topics, topic_name
from testkit import committed, end_offsets, wait_until


def _events(n: int) -> list[events_pb2.Event]:
    return [
        events_pb2.Event(event_id=f"e{i}", entity_id=f"ent-{i % 7}", event_time_ms=1_700_000_000_000 + i,
                         values={"x0": float(i), "x1": i / 2})
        for i in range(n)
    ]


def _consume_all(consumer: Consumer, n: int, timeout: float = 30.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.extend(consumer.consume(500, 0.5))
    return got


def _produce(settings: KafkaSettings, topic: str, events: list[events_pb2.Event]) -> dict[str, str]:
    """Produce each event inside its own span; returns event_id -> traceparent that was current."""
    setup_tracing("test-bus")
    producer = Producer(settings, client_id="test-producer")
    parents: dict[str, str] = {}
    for ev in events:
        with tracer("test").start_as_current_span("produce") as span:
            ctx = span.get_span_context()
            parents[ev.event_id] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
            producer.send(topic, ev, key=ev.entity_id)
    producer.flush()
    return parents


def test_round_trip_keeps_payloads_and_headers(kafka_settings: KafkaSettings) -> None:
    topic = topic_name(EVENTS, kafka_settings)
    sent = _events(300)
    parents = _produce(kafka_settings, topic, sent)
    consumer = Consumer(kafka_settings, group_id=f"g-{uuid.uuid4().hex[:6]}", topics=[topic], client_id="t")
    got = _consume_all(consumer, len(sent))
    consumer.close()

    assert len(got) == len(sent)
    by_id = {r.decode(events_pb2.Event).event_id: r for r in got}
    assert len(by_id) == len(sent), "duplicates or losses"
    for ev in sent:
        record = by_id[ev.event_id]
        assert record.value == contracts.encode(ev)
        assert record.key == ev.entity_id.encode()
        assert record.header("traceparent") == parents[ev.event_id]
        assert record.header("content-type") == contracts.CONTENT_TYPE
        assert record.header("contract-version") == str(contracts.CONTRACT_VERSION)
        assert record.header("message-type") == "mlops.v1.Event"


CONSUME_AND_HANG = textwrap.dedent(
    """
    import sys, time
    from mlops.bus import Consumer
    from mlops.settings import KafkaSettings
    s = KafkaSettings(bootstrap_servers=sys.argv[1])
    c = Consumer(s, group_id=sys.argv[2], topics=[sys.argv[3]], client_id="doomed")
    seen = 0
    while seen < int(sys.argv[4]):
        seen += len(c.consume(500, 0.5))
    print("handled", seen, flush=True)   # the work is done but the offsets are not committed yet
    time.sleep(600)
    """
)


def test_consumer_killed_before_commit_rereads(kafka_settings: KafkaSettings) -> None:
    topic = topic_name(EVENTS, kafka_settings)
    sent = _events(50)
    _produce(kafka_settings, topic, sent)
    group = f"g-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSUME_AND_HANG, kafka_settings.bootstrap_servers, group, topic, str(len(sent))],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split() == ["handled", str(len(sent))]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    # the dead member's partitions move on after the session timeout; then everything is read again
    consumer = Consumer(kafka_settings, group_id=group, topics=[topic], client_id="survivor")
    again = _consume_all(consumer, len(sent), timeout=kafka_settings.session_timeout_ms / 1000 + 30)
    assert sorted(r.decode(events_pb2.Event).event_id for r in again) == sorted(e.event_id for e in sent)
    consumer.commit(again)
    consumer.close()

    # committed now, in the broker's view: every partition to its end
    assert committed(kafka_settings, group, topic) == end_offsets(kafka_settings, topic)
    # and a third member, once it HOLDS the partitions (an empty poll before that proves nothing), reads nothing
    consumer = Consumer(kafka_settings, group_id=group, topics=[topic], client_id="third")
    extra: list[Record] = []
    partitions = set(range(kafka_settings.default_partitions))
    wait_until(lambda: extra.extend(consumer.consume(500, 0.2)) or {p for _, p in consumer.assignment()} == partitions,
               timeout=kafka_settings.session_timeout_ms / 1000 + 60)
    extra += consumer.consume(500, 2.0)  # fetched from the committed positions
    consumer.close()
    assert extra == []


def test_undecodable_bytes_name_topic_partition_offset(kafka_settings: KafkaSettings) -> None:
    topic = topic_name(EVENTS, kafka_settings)
    producer = Producer(kafka_settings, client_id="t")
    producer.send(topic, b"\xff\xfe not protobuf at all", key="k")
    producer.flush()
    consumer = Consumer(kafka_settings, group_id=f"g-{uuid.uuid4().hex[:6]}", topics=[topic], client_id="t")
    [record] = _consume_all(consumer, 1)
    with pytest.raises(ContractError) as info:
        record.decode(events_pb2.Event)
    message = str(info.value)
    assert f"topic={topic}" in message and f"partition={record.partition}" in message
    assert f"offset={record.offset}" in message and "mlops.v1.Event" in message

    # the dead-letter policy hands the record and the error on, and the loop goes on
    dead: list[tuple[Record, Exception]] = []
    stop = StopFlag(install_signals=False)
    producer.send(topic, events_pb2.Event(event_id="fine"), key="k")
    producer.flush()
    decoded: list[str] = []

    def handle(r: Record) -> None:
        decoded.append(r.decode(events_pb2.Event).event_id)
        stop.set()

    consumer.close()
    consumer = Consumer(kafka_settings, group_id=f"g-{uuid.uuid4().hex[:6]}", topics=[topic], client_id="t")
    run_loop(consumer, handle, stop=stop, policy=FailurePolicy.DEAD_LETTER,
             dead_letter=lambda r, e: dead.append((r, e)))
    assert decoded == ["fine"]
    assert len(dead) == 1 and isinstance(dead[0][1], ContractError)


GRACEFUL = textwrap.dedent(
    """
    import sys
    from mlops.bus import Consumer, Producer, StopFlag, run_loop
    from mlops.settings import KafkaSettings
    s = KafkaSettings(bootstrap_servers=sys.argv[1])
    stop = StopFlag()
    producer = Producer(s, client_id="graceful")
    consumer = Consumer(s, group_id=sys.argv[2], topics=[sys.argv[3]], client_id="graceful")
    def handle(r):
        producer.send(sys.argv[4], r.value, key=r.key)
    print("ready", flush=True)
    n = run_loop(consumer, handle, stop=stop, producer=producer, batch_size=50)
    print("handled", n, flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_flush_and_commit(kafka_settings: KafkaSettings, sig: signal.Signals) -> None:
    source = topic_name(EVENTS, kafka_settings)
    sink = f"{kafka_settings.topic_prefix}events.copy"
    from mlops.topics import TopicSpec, ensure_topics

    ensure_topics(kafka_settings, (TopicSpec("events.copy", "test sink"),))
    sent = _events(120)
    _produce(kafka_settings, source, sent)
    group = f"g-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-c", GRACEFUL, kafka_settings.bootstrap_servers, group, source, sink],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    copy = Consumer(kafka_settings, group_id=f"g-{uuid.uuid4().hex[:6]}", topics=[sink], client_id="t")
    copied = _consume_all(copy, len(sent))
    copy.close()
    proc.send_signal(sig)  # SIGINT too: Ctrl-C stops after the batch, not with a KeyboardInterrupt mid-batch
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert out.split() == ["handled", str(len(sent))]
    assert len(copied) == len(sent)

    # the broker's view: every partition of the group committed to its end
    from confluent_kafka import Consumer as RawConsumer
    from confluent_kafka import TopicPartition

    raw = RawConsumer(kafka_settings.client_config() | {"group.id": group})
    meta = raw.list_topics(source, timeout=10).topics[source]
    committed = raw.committed([TopicPartition(source, p) for p in meta.partitions], timeout=10)
    ends = {p: raw.get_watermark_offsets(TopicPartition(source, p), timeout=10)[1] for p in meta.partitions}
    raw.close()
    # every partition that holds records is committed to its end (an empty one has nothing to commit)
    assert {tp.partition: tp.offset for tp in committed if ends[tp.partition]} == {
        p: end for p, end in ends.items() if end
    }
    assert sum(ends.values()) == len(sent)


def test_compacted_topics_configured_on_broker(kafka_settings: KafkaSettings) -> None:
    admin = AdminClient(kafka_settings.client_config())
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic_name(s, kafka_settings)) for s in ALL_TOPICS]
    described = {res.name: fut.result() for res, fut in admin.describe_configs(resources).items()}
    for spec in ALL_TOPICS:
        config = described[topic_name(spec, kafka_settings)]
        expected = "compact" if spec.compacted else "delete"
        assert config["cleanup.policy"].value == expected, spec.name
        assert int(config["max.message.bytes"].value) == kafka_settings.max_message_bytes


def test_broker_cli_sees_topics_and_group(stack, kafka_settings: KafkaSettings) -> None:
    """Ask the broker through its own admin tool (kafka-tools' TopicCommand / ConsumerGroupCommand)."""
    topic = topic_name(REGISTRY_LOG, kafka_settings)
    out = stack.kafka_tool("org.apache.kafka.tools.TopicCommand", "--describe", "--topic", topic)
    assert "cleanup.policy=compact" in out and f"Topic: {topic}" in out

    events = topic_name(EVENTS, kafka_settings)
    _produce(kafka_settings, events, _events(10))
    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = Consumer(kafka_settings, group_id=group, topics=[events], client_id="t")
    consumer.commit(_consume_all(consumer, 10))
    consumer.close()
    out = stack.kafka_tool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--describe",
                           "--group", group)
    lags = [line.split() for line in out.splitlines() if line.startswith(group)]
    assert lags and all(row[5] == "0" for row in lags), out  # LAG column


def test_stack_up_is_idempotent(stack) -> None:
    assert stack.up()["kafka"] == "already running"
    assert {s.name: s.state for s in stack.status()} == {"kafka": "running", "redis": "running"}
    assert os.path.exists(stack.kafka.pid_file)


def test_delete_topics_removes_only_its_prefix(kafka_settings_factory) -> None:  # noqa: ANN001
    doomed, kept = kafka_settings_factory(), kafka_settings_factory()
    names = {topic_name(s, doomed) for s in ALL_TOPICS}
    assert set(delete_topics(doomed)) == names
    listed = set(AdminClient(kept.client_config()).list_topics(timeout=10).topics)
    assert not listed & names  # the broker's own view
    assert {topic_name(s, kept) for s in ALL_TOPICS} <= listed  # another prefix is untouched
    assert delete_topics(doomed) == []  # nothing left: a no-op
    with pytest.raises(ValueError, match="prefix"):
        delete_topics(kept.model_copy(update={"topic_prefix": ""}))  # never the unprefixed, real topics
