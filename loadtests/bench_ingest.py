"""Ingest throughput with validation vs raw confluent-kafka produce (same run, same broker, interleaved rounds).

    .venv/bin/python loadtests/bench_ingest.py [--records 30000] [--rounds 5] [--tracing sdk|off] [--sampling 1.0]
                                               [--traceparent] [--processes 1] [--example sea|delivery]

Targets: ingest ≥ 25% of the raw produce rate of the same records, and ≥ 31.2k records/s (4× the 7.8k of the
per-record path it replaced), with validation and default tracing on (the headline row: `--tracing sdk`, the
default sampling ratio, input records without a traceparent, as a third-party producer writes them; each batch's
untraced records share one `ingest validate` span). `--traceparent` is the extra row where every record continues
its producer's trace with its own span.

What is measured, per round (rounds interleave baseline and ingest; medians are reported — the machine is shared):
- raw (same input): raw confluent-kafka produce (idempotent, acks=all, lz4, linger 5 ms: the mlops.bus Producer's
  settings) of the round's raw JSON records into raw.events. This is the baseline the target is measured against.
- raw (same output): the same raw produce of exactly what ingest writes — the Event / DeadLetter protobuf bytes and
  headers (content-type, contract-version, message-type, traceparent) — into a scratch topic. Shown for reference.
- ingest: a warm ingest (group joined, a warm-up batch done; paused while the baselines run) consumes the round,
  validates, converts, produces, flushes and commits; timed from resume until every record is committed.

Tracing as the service runs it: `python -m services.ingest` always installs the SDK tracer provider
(setup_tracing; sampling ratio 1.0 by default), so `--tracing sdk` (default) records one span per record like
production (no exporter: export cost is not included). `--tracing off` leaves OpenTelemetry's no-op tracer (spans
cost nothing there). `--traceparent` gives every input record a traceparent
header (what an mlops.bus producer writes), so ingest continues traces instead of starting them.
`--processes 2` runs that many ingest processes in one consumer group (scale-out; each its own interpreter).
`--example` picks the declared definitions (examples/<name>/definitions.yaml) applied before ingest starts, and so
the records: SEA's three floats (the default, today's demo) or delivery's orders (float, int, bool and categorical
fields, one of them optional).
"""

from __future__ import annotations

import argparse
import atexit
import json
import multiprocessing as mp
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs"), str(ROOT / "tools")]

from confluent_kafka import Consumer as KConsumer  # noqa: E402
from confluent_kafka import Producer as KProducer  # noqa: E402
from mlops import contracts, definitions  # noqa: E402
from mlops.bus import KafkaBus, StopFlag  # noqa: E402
from mlops.contracts import common_pb2, events_pb2  # noqa: E402
from mlops.definitions.store import declared_topics, publish  # noqa: E402
from mlops.settings import KafkaSettings, TelemetrySettings  # noqa: E402
from mlops.topics import EVENTS, EVENTS_DLQ, TopicSpec, delete_topics, ensure_topics, topic_name  # noqa: E402

from services.ingest.convert import to_event, validate  # noqa: E402
from services.ingest.core import SourceValidator, compile_sources  # noqa: E402
from services.ingest.errors import Rejected  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the ingest_load package beside this script
from ingest_load.group import Committed, gate, member, subscribed  # noqa: E402

RAW_CONF = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4"}
TRACEPARENT = "00-{:032x}-{:016x}-01"
HEADLINES = ("raw confluent-kafka produce, same input", "raw confluent-kafka produce, same output",
             "pass-through: consume+produce, no work", "least per-record work: json+Event+produce",
             "ingest: validate+convert+produce+commit")


def records(n: int, round_no: int = 0, example: str = "sea") -> list[tuple[bytes, bytes]]:
    """`n` records of the example's source, 2% invalid (exercises the DLQ path)."""
    t0 = int(time.time() * 1000)
    out = []
    for i in range(n):
        if example == "sea":
            key, values = f"e{i % 1000}", {"x0": (i % 100) / 10, "x1": 42 if i % 50 == 0 else 5.0, "x2": (i % 7) * 1.0}
            doc = {"entity_id": key, "event_time": t0 + i, "schema_version": 1, "values": values}
        else:  # delivery: float, int, bool and categorical fields; the optional `payment` absent every 4th record
            key, payment = f"c{i % 1000}", {} if i % 4 == 0 else {"payment": ("card", "cash", "voucher")[i % 3]}
            values = {"amount": (i % 500) / 4, "items": 420 if i % 50 == 0 else 1 + i % 9, "express": i % 3 == 0,
                      "channel": ("web", "app", "store")[i % 3]} | payment
            doc = {"customer_id": key, "ordered_at": t0 + i, "schema_version": 1, "values": values}
        out.append((key.encode(), json.dumps(doc).encode()))
    return out


def input_headers(n: int, with_traceparent: bool) -> list[list[tuple[str, bytes]] | None]:
    if not with_traceparent:
        return [None] * n
    return [[("traceparent", TRACEPARENT.format(uuid.uuid4().int, i + 1).encode())] for i in range(n)]


def outputs(recs: list[tuple[bytes, bytes]], topic: str, validator: SourceValidator
            ) -> list[tuple[str, bytes, bytes, list[tuple[str, str]]]]:
    """What ingest writes for `recs` (Event or DeadLetter bytes, key, headers), built untimed with its own code."""
    now = int(time.time() * 1000)
    out = []
    for offset, (key, value) in enumerate(recs):
        tp = [("traceparent", TRACEPARENT.format(uuid.uuid4().int, offset + 1))]
        src = common_pb2.SourcePosition(topic=topic, partition=offset % 3, offset=offset)
        msg: events_pb2.Event | events_pb2.DeadLetter
        try:
            ev = validate(value, validator, content_type=None, fallback_event_id=f"{topic}/{offset % 3}/{offset}",
                          now_ms=now)
            msg = to_event(ev, topic, offset % 3, offset, now)
            out_key = ev.entity_id.encode()
        except Rejected as rej:
            msg = events_pb2.DeadLetter(
                original_key=key, original_value=value, reason=rej.reason, field=rej.field,
                error_type=rej.error_type, source=src, failed_at_ms=now, service="ingest",
            )
            out_key = key
        headers = [
            ("content-type", contracts.CONTENT_TYPE),
            ("contract-version", str(contracts.CONTRACT_VERSION)),
            ("message-type", msg.DESCRIPTOR.full_name),
        ] + tp
        out.append((type(msg).__name__, out_key, contracts.encode(msg), headers))
    return out


def produce(p: KProducer, topic: str, value: bytes | None, key: bytes | None, headers: list | None = None) -> None:
    """One raw produce, serving delivery callbacks while librdkafka's local queue is full (never dropping)."""
    while True:
        try:
            p.produce(topic, value=value, key=key, headers=headers)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)


def raw_produce(kafka: KafkaSettings, topic: str, items: list[tuple[bytes, bytes, list | None]]) -> float:
    """Seconds to produce `items` (key, value, headers) and have them all acknowledged."""
    p = KProducer(kafka.client_config() | RAW_CONF)
    p.list_topics(topic, timeout=10)  # connect and learn the leaders before the clock starts
    t = time.perf_counter()
    for key, value, headers in items:
        produce(p, topic, value, key, headers)
    left = p.flush(60)
    elapsed = time.perf_counter() - t
    assert left == 0, f"{left} records not delivered"
    return elapsed


def pass_through(consumer: KConsumer, producer: KProducer, topic: str, n: int) -> float:
    """Seconds for a plain confluent-kafka loop that does NO work to copy `n` records (consume → produce the same
    key, value and headers → flush → commit): the ceiling of any consume-then-produce service in Python. Its
    consumer has usually prefetched the round already (ingest's is paused), so this ceiling is generous."""
    t, got = time.perf_counter(), 0
    while got < n:
        for m in consumer.consume(500, 1.0):
            if m.error():
                continue
            produce(producer, topic, m.value(), m.key(), m.headers())
            got += 1
    assert producer.flush(60) == 0, "pass-through records not delivered"
    consumer.commit(asynchronous=False)
    return time.perf_counter() - t


def minimal_work(kafka: KafkaSettings, topic: str, recs: list[tuple[bytes, bytes]], source: str,
                 validator: SourceValidator) -> float:
    """Seconds for the least per-record Python any JSON → Event service must do, timed like raw_produce: json.loads,
    build and serialize the Event, produce it; no validation, tracing, consume or commit. Its gap to raw produce
    is the cost of doing per-record work in Python at all."""
    p = KProducer(kafka.client_config() | RAW_CONF)
    p.list_topics(topic, timeout=10)
    now = int(time.time() * 1000)
    id_field, time_field, name = validator.id_field, validator.time_field, validator.source_name
    t = time.perf_counter()
    for offset, (key, value) in enumerate(recs):
        doc = json.loads(value)
        ev = events_pb2.Event(
            event_id=f"{source}/0/{offset}", entity_id=doc[id_field], event_time_ms=doc[time_field],
            ingest_time_ms=now, schema_version=doc["schema_version"],
            values={k: v for k, v in doc["values"].items() if not isinstance(v, str)},
            source=common_pb2.SourcePosition(topic=source, partition=0, offset=offset), source_name=name,
        )
        produce(p, topic, ev.SerializeToString(), key)
    assert p.flush(60) == 0, "records not delivered"
    return time.perf_counter() - t


def apply_example(kafka: KafkaSettings, example: str) -> tuple[SourceValidator, TopicSpec]:
    """Publish examples/<example>/definitions.yaml as revision 1 on the bench's prefix (what `mlops apply` does,
    topics included); returns its one source's validator, as ingest will build it, and raw topic."""
    declared = definitions.load(ROOT / "examples" / example / "definitions.yaml")
    revision = definitions.plan(None, declared, "bench").revision
    assert revision is not None
    ensure_topics(kafka, declared_topics(declared))
    publish(KafkaBus(kafka), revision, client_id="bench-apply")
    [validator] = compile_sources(declared).values()
    return validator, TopicSpec(declared.sources[0].topic, "raw records")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tracing", choices=("sdk", "off"), default="sdk")
    ap.add_argument("--sampling", type=float, default=1.0, help="trace sampling ratio (MLOPS_TELEMETRY_...)")
    ap.add_argument("--traceparent", action="store_true", help="input records carry a traceparent header")
    ap.add_argument("--processes", type=int, default=1, help="ingest processes in the group (1: in-process)")
    ap.add_argument("--example", choices=("sea", "delivery"), default="sea", help="declared definitions and records")
    args = ap.parse_args()
    n = args.records
    base = KafkaSettings(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    scratch = KafkaSettings(topic_prefix=f"benchout{uuid.uuid4().hex[:6]}.")
    for prefix in (base, scratch):
        ensure_topics(prefix)
        atexit.register(delete_topics, prefix)  # leftover partitions slow the broker down
    validator, raw_spec = apply_example(base, args.example)
    raw_topic, out_topic = topic_name(raw_spec, base), topic_name(EVENTS, scratch)
    group = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    committed = Committed(base, group, raw_spec)

    # the ingest group: in-process thread, or N processes; paused/resumed around the baselines
    members: list = []
    if args.processes == 1:
        if args.tracing == "sdk":
            from mlops.telemetry import setup_tracing

            setup_tracing("ingest", TelemetrySettings(sampling_ratio=args.sampling))
        from services.ingest.edge import Ingest
        from services.ingest.settings import IngestSettings

        ingest = Ingest(IngestSettings(group_id=group, poll_timeout_s=0.1), KafkaBus(base))
        pause_req = threading.Event()
        flag = StopFlag(install_signals=False)
        th = threading.Thread(target=ingest.run, args=(flag,), daemon=True)
        th.start()
        assert subscribed(ingest), "ingest did not subscribe: are the definitions published?"
        is_paused = gate(ingest, pause_req)

        def assigned() -> bool:
            return ingest.assigned

        def pause(on: bool) -> None:
            (pause_req.set if on else pause_req.clear)()
            if on:
                is_paused.wait(10)
    else:
        ctx = mp.get_context("spawn")
        paused, stop_all = ctx.Event(), ctx.Event()
        readies = [ctx.Event() for _ in range(args.processes)]
        acks = [ctx.Event() for _ in range(args.processes)]
        members = [ctx.Process(target=member, daemon=True, args=(
            base.topic_prefix, group, args.tracing, args.sampling, readies[i], paused, acks[i], stop_all))
            for i in range(args.processes)]
        for m in members:
            m.start()

        def assigned() -> bool:
            return all(r.is_set() for r in readies)

        def pause(on: bool) -> None:
            (paused.set if on else paused.clear)()
            deadline = time.monotonic() + 10
            while on and not all(a.is_set() for a in acks) and time.monotonic() < deadline:
                time.sleep(0.005)

    deadline = time.monotonic() + 60
    while not assigned() and time.monotonic() < deadline:
        time.sleep(0.05)
    if args.processes > 1:
        time.sleep(3)  # let the group settle (a member joining late triggers one more rebalance)

    # warm-up: the group is joined, connections and caches are warm
    warm = records(3000, example=args.example)
    raw_produce(base, raw_topic, [(k, v, None) for k, v in warm])
    total = committed.wait(len(warm), 60)
    assert total >= len(warm), f"warm-up not committed: {total}/{len(warm)}"
    copier = KConsumer(base.client_config() | {"group.id": f"{group}-pass", "enable.auto.commit": False,
                                                "auto.offset.reset": "earliest"})
    copier.subscribe([raw_topic])
    copy_out = KProducer(base.client_config() | RAW_CONF)
    pass_topic = topic_name(EVENTS_DLQ, scratch)  # any scratch topic
    pass_through(copier, copy_out, pass_topic, len(warm))  # joins the group, warms up (untimed)

    rows: list[tuple[float, float, float]] = []
    for r in range(args.rounds):
        recs = records(n, r + 1, args.example)
        heads = input_headers(n, args.traceparent)
        outs = outputs(recs, raw_topic, validator)
        pause(True)
        raw_in = raw_produce(base, raw_topic, [(k, v, h) for (k, v), h in zip(recs, heads, strict=True)])
        raw_out = raw_produce(scratch, out_topic, [(k, v, h) for _, k, v, h in outs])
        copy_s = pass_through(copier, copy_out, pass_topic, n)
        least_s = minimal_work(scratch, pass_topic, recs, raw_topic, validator)
        t = time.perf_counter()
        pause(False)
        total += n
        done = committed.wait(total, 120)
        ingest_s = time.perf_counter() - t
        assert done >= total, f"round {r}: only {done}/{total} committed"
        rows.append((n / raw_in, n / raw_out, n / copy_s, n / least_s, n / ingest_s))
        print(f"round {r + 1}: raw(same input) {n / raw_in:8.0f}/s  raw(same output) {n / raw_out:8.0f}/s  "
              f"pass-through {n / copy_s:8.0f}/s  least work {n / least_s:8.0f}/s  ingest {n / ingest_s:8.0f}/s  "
              f"ratio {n / ingest_s / (n / raw_in):6.1%}", flush=True)

    if args.processes == 1:
        flag.set()
        th.join(30)
    else:
        stop_all.set()
        for m in members:
            m.join(30)
    committed.close()
    copier.close()

    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    ratios = [ing / raw for raw, _, _, _, ing in rows]
    least = [work / raw for raw, _, _, work, _ in rows]
    print(f"\n{n} records x {args.rounds} rounds, tracing={args.tracing} sampling={args.sampling} "
          f"traceparent={args.traceparent} processes={args.processes} example={args.example}")
    print(f"{'measure (median of rounds)':44} {'rec/s':>10}")
    for label, value in zip(HEADLINES, med, strict=True):
        print(f"{label:44} {value:10.0f}")
    print(f"ratio ingest/raw(same input) = {statistics.median(ratios):.1%} median of rounds "
          f"(min {min(ratios):.1%}, max {max(ratios):.1%}); vs raw(same output) = {med[4] / med[1]:.1%}; "
          f"vs least per-record work = {med[4] / med[3]:.1%} (targets: >= 25% of raw same input, >= 31200 rec/s)")
    print(f"least per-record work / raw(same input) = {statistics.median(least):.1%} median of rounds: the most any "
          f"per-record Python service reaches here, before validation, tracing, consume and commit")


if __name__ == "__main__":
    main()
