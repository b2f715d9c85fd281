"""Ingest throughput with validation vs raw confluent-kafka produce of the same records (same run, same broker).

    .venv/bin/python loadtests/bench_ingest.py [--records 30000]

Target: ingest ≥ 50% of the raw produce rate. Bounded: a fresh topic prefix, one in-process ingest loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs")]

from confluent_kafka import Consumer as KConsumer  # noqa: E402
from confluent_kafka import Producer as KProducer  # noqa: E402
from confluent_kafka import TopicPartition  # noqa: E402
from mlops.bus import StopFlag  # noqa: E402
from mlops.settings import KafkaSettings  # noqa: E402
from mlops.topics import RAW_EVENTS, ensure_topics, topic_name  # noqa: E402

from services.ingest.service import Ingest  # noqa: E402
from services.ingest.settings import IngestSettings  # noqa: E402


def records(n: int) -> list[tuple[bytes, bytes]]:
    t0 = int(time.time() * 1000)
    out = []
    for i in range(n):
        doc = {
            "entity_id": f"e{i % 1000}",
            "event_time": t0 + i,
            "schema_version": 1,
            "values": {"x0": (i % 100) / 10, "x1": 5.0, "x2": (i % 7) * 1.0},
        }
        if i % 50 == 0:
            doc["values"]["x1"] = 42  # 2% invalid: exercised DLQ path
        out.append((doc["entity_id"].encode(), json.dumps(doc).encode()))
    return out


def committed(kafka: KafkaSettings, group: str) -> int:
    c = KConsumer(kafka.client_config() | {"group.id": group})
    try:
        name = topic_name(RAW_EVENTS, kafka)
        return sum(
            max(tp.offset, 0)
            for tp in c.committed([TopicPartition(name, p) for p in range(kafka.default_partitions)], timeout=10)
        )
    finally:
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=30_000)
    args = ap.parse_args()
    n = args.records
    base = KafkaSettings(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    ensure_topics(base)
    recs = records(n)
    topic = topic_name(RAW_EVENTS, base)

    # baseline: raw produce (idempotent, acks=all, lz4, like ours) of the same records into raw.events
    p = KProducer(
        base.client_config()
        | {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4"}
    )
    t = time.perf_counter()
    for key, value in recs:
        while True:
            try:
                p.produce(topic, value=value, key=key)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(60)
    raw_s = time.perf_counter() - t

    # ingest: consume → validate → produce Event/DeadLetter → flush → commit, until everything is committed
    group = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    ingest = Ingest(IngestSettings(group_id=group, poll_timeout_s=0.1), base)
    stop = StopFlag(install_signals=False)
    th = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    t = time.perf_counter()
    th.start()
    deadline = time.monotonic() + 120
    first_t, first_n = None, 0
    while (c := committed(base, group)) < n and time.monotonic() < deadline:
        if first_t is None and c > 0:
            first_t, first_n = time.perf_counter(), c  # the group join is over: steady state from here
        time.sleep(0.05)
    ingest_s = time.perf_counter() - t
    end_t = time.perf_counter()
    stop.set()
    th.join(30)
    done = committed(base, group)

    raw_rate, ingest_rate = n / raw_s, done / ingest_s
    steady = (done - first_n) / (end_t - first_t) if first_t and end_t > first_t else float("nan")
    print(f"{'measure':44} {'records':>8} {'seconds':>8} {'rec/s':>10}")
    print(f"{'raw confluent-kafka produce (baseline)':44} {n:8d} {raw_s:8.2f} {raw_rate:10.0f}")
    print(f"{'ingest: validate+convert+produce+commit':44} {done:8d} {ingest_s:8.2f} {ingest_rate:10.0f}")
    print(
        f"{'ingest steady state (after the group join)':44} {done - first_n:8d} {end_t - (first_t or end_t):8.2f} "
        f"{steady:10.0f}"
    )
    print(
        f"ratio ingest/raw = {ingest_rate / raw_rate:.2%} incl. join, "
        f"{steady / raw_rate:.2%} steady (target >= 50%)"
    )


if __name__ == "__main__":
    main()
