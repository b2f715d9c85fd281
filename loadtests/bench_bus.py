"""Bus wrapper vs raw confluent-kafka: produce and consume throughput of the same records, in one run; and the
latency of a lone record, produce -> handed over by consume, with a large batch size.

    .venv/bin/python loadtests/bench_bus.py [--records 100000] [--lone 40]

The wrapper does more per record (protobuf encode with the contract version, trace/contract headers on produce;
Record objects on consume), so the ratio is the cost of those guarantees. Target: >= 80% of raw.
Lone records: one record every 50 ms, each consumed with run_loop's defaults (batch 500, poll timeout 0.5 s) by
raw confluent-kafka `consume(500, 0.5)` (returns when 500 are there or the timeout expires) and by the bus's
`Consumer.consume(500, 0.5)` (returns what has arrived): the bus's latency should not depend on traffic.
"""

from __future__ import annotations

import argparse
import atexit
import statistics
import time
import uuid

from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import Producer as RawProducer
from mlops import contracts
from mlops.bus import Consumer, Producer
from mlops.contracts import events_pb2
from mlops.settings import KafkaSettings
from mlops.topics import TopicSpec, delete_topics, ensure_topics
from mlops_tools.stack import Stack


def _events(n: int) -> list[events_pb2.Event]:
    return [
        events_pb2.Event(event_id=f"e{i}", entity_id=f"ent-{i % 1000}", event_time_ms=1_700_000_000_000 + i,
                         values={"x0": i * 0.5, "x1": i * 0.25, "x2": 1.0})
        for i in range(n)
    ]


PRODUCER_CONF = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4"}


def produce_raw(settings: KafkaSettings, topic: str, events: list[events_pb2.Event]) -> float:
    producer = RawProducer(settings.client_config() | PRODUCER_CONF)
    start = time.perf_counter()
    for ev in events:  # the raw baseline still has to serialize the same message
        while True:
            try:
                producer.produce(topic, ev.SerializeToString(), ev.entity_id.encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return time.perf_counter() - start


def produce_wrapped(settings: KafkaSettings, topic: str, events: list[events_pb2.Event]) -> float:
    producer = Producer(settings, client_id="bench")
    start = time.perf_counter()
    for ev in events:
        producer.send(topic, ev, key=ev.entity_id)
    producer.flush(60)
    return time.perf_counter() - start


def consume_raw(settings: KafkaSettings, topic: str, n: int) -> float:
    consumer = RawConsumer(settings.client_config() | {
        "group.id": f"bench-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got, start = 0, time.perf_counter()
    while got < n:
        batch = consumer.consume(500, 1.0)
        for msg in batch:  # the same work a correct consumer must do: check the error, decode
            if msg.error() is None:
                events_pb2.Event.FromString(msg.value())
        got += len(batch)
        if batch:
            consumer.commit(asynchronous=False)
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


def consume_wrapped(settings: KafkaSettings, topic: str, n: int) -> float:
    consumer = Consumer(settings, group_id=f"bench-{uuid.uuid4().hex[:6]}", topics=[topic], client_id="bench")
    got, start = 0, time.perf_counter()
    while got < n:
        batch = consumer.consume(500, 1.0)
        for record in batch:
            record.decode(events_pb2.Event)
        got += len(batch)
        consumer.commit(batch)
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


def lone_latency(settings: KafkaSettings, topic: str, n: int, raw: bool) -> list[float]:
    """Seconds from producing each of `n` lone records (50 ms apart) to a consume call returning it."""
    group = f"bench-lone-{uuid.uuid4().hex[:6]}"
    conf = {"group.id": group, "auto.offset.reset": "latest", "enable.auto.commit": False}
    consumer = (RawConsumer(settings.client_config() | conf) if raw else
                Consumer(settings, group_id=group, topics=[topic], client_id="bench-lone", from_beginning=False))
    if raw:
        consumer.subscribe([topic])
    producer = RawProducer(settings.client_config() | PRODUCER_CONF)
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:  # join the group first
        consumer.consume(500, 0.2)
    consumer.consume(500, 1.0)  # the first fetch
    out = []
    for _ in range(n):
        time.sleep(0.05)
        start = time.perf_counter()
        producer.produce(topic, b"lone")
        producer.poll(0)
        got = 0
        while not got and time.perf_counter() - start < 10:
            got = len(consumer.consume(500, 0.5))
        out.append(time.perf_counter() - start)
    consumer.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved raw/bus rounds; the median is reported")
    parser.add_argument("--lone", type=int, default=40, help="lone records for the latency rows (0: skip)")
    args = parser.parse_args()
    stack = Stack()
    stack.up()
    settings = stack.kafka_settings().model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:6]}."})
    ensure_topics(settings, (TopicSpec("raw", "bench"), TopicSpec("wrapped", "bench")))
    atexit.register(delete_topics, settings)  # leftover partitions slow the broker down
    raw_topic, wrapped_topic = f"{settings.topic_prefix}raw", f"{settings.topic_prefix}wrapped"
    events = _events(args.records)
    size = len(contracts.encode(events[0]))

    # warm both clients once (connections, idempotent producer id) before timing
    produce_raw(settings, raw_topic, events[:1000])
    produce_wrapped(settings, wrapped_topic, events[:1000])
    produced = args.records * args.rounds + 1000
    # interleave raw and bus rounds so machine noise hits both alike; report medians
    p_raw, p_bus, c_raw, c_bus = [], [], [], []
    for _ in range(args.rounds):
        p_raw.append(args.records / produce_raw(settings, raw_topic, events))
        p_bus.append(args.records / produce_wrapped(settings, wrapped_topic, events))
    for _ in range(args.rounds):  # each round consumes the whole topic in a new group
        c_raw.append(produced / consume_raw(settings, raw_topic, produced))
        c_bus.append(produced / consume_wrapped(settings, wrapped_topic, produced))

    print(f"bus benchmark: {args.records} Event records (~{size} B each) x {args.rounds} interleaved rounds, "
          "idempotent producer, lz4, local broker; medians")
    print(f"{'phase':24} {'raw rec/s':>12} {'bus rec/s':>12} {'bus/raw':>8}")
    for name, raw, bus in (("produce", p_raw, p_bus), ("consume+decode+commit", c_raw, c_bus)):
        r, b = statistics.median(raw), statistics.median(bus)
        print(f"{name:24} {r:12,.0f} {b:12,.0f} {b / r:8.0%}")
    if args.lone:
        print(f"\nlone record, produce -> handed over by consume(500, 0.5), {args.lone} records 50 ms apart")
        print(f"{'consumer':44} {'p50 ms':>8} {'p99 ms':>8}")
        for name, raw in (("raw confluent-kafka consume(500, 0.5)", True), ("bus Consumer.consume(500, 0.5)", False)):
            lat = sorted(lone_latency(settings, raw_topic, args.lone, raw))
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"{name:44} {p50 * 1e3:8.1f} {p99 * 1e3:8.1f}")


if __name__ == "__main__":
    main()
