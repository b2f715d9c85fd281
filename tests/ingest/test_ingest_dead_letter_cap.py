"""A dead letter keeps at most a settable prefix of its original (with the whole value's size and sha256), so a raw
record near the broker's 16 MiB limit cannot make a dead letter over it and crash-loop ingest. Unit test of the
converter, and a real ~16 MiB record through ingest on the real broker."""

from __future__ import annotations

import hashlib
import os

from mlops import contracts
from mlops.contracts import events_pb2
from mlops.settings import KafkaSettings
from mlops.topics import EVENTS, EVENTS_DLQ
from test_ingest_edge_kafka import Running, drain, good, ingest_settings, produce, sea_applied  # noqa: F401

from services.ingest.convert import to_dead_letter


class _Msg:
    """What a consumed message looks like to `Record`."""

    def __init__(self, value: bytes, key: bytes = b"k", headers=None):
        self._value, self._key, self._headers = value, key, headers or []

    def topic(self) -> str:
        return "raw.events"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self):
        return self._headers

    def timestamp(self):
        return (1, 0)


def test_the_original_is_truncated_to_the_cap_with_its_size_and_hash() -> None:
    from mlops.bus import Record

    value = os.urandom(300_000)
    dead = to_dead_letter(Record(_Msg(value, headers=[("h", b"x" * 10_000)])), "oversize", "", "r" * 100_000, 1,
                          max_original_bytes=1000)
    assert dead.original_value == value[:1000] and dead.original_truncated
    assert dead.original_size == len(value) and dead.original_sha256 == hashlib.sha256(value).hexdigest()
    assert len(dead.reason) < 100_000 and len(dead.original_headers["h"]) < 10_000
    assert len(dead.SerializeToString()) < 20_000
    small = to_dead_letter(Record(_Msg(b"short")), "malformed_json", "", "bad", 1, max_original_bytes=1000)
    assert small.original_value == b"short" and not small.original_truncated and small.original_size == 5


def test_a_near_limit_record_is_dead_lettered_capped_and_ingest_goes_on(kafka_settings: KafkaSettings) -> None:
    huge = b"x" * (kafka_settings.max_message_bytes - 160)  # within a record batch's overhead of the limit
    produce(kafka_settings, [(b"e1", good(1))])
    produce(kafka_settings, [(b"huge", huge)])
    produce(kafka_settings, [(f"e{i}".encode(), good(i)) for i in range(2, 12)])
    running = Running(kafka_settings, ingest_settings())
    with running:
        events = drain(kafka_settings, EVENTS, 11)
        dlq = drain(kafka_settings, EVENTS_DLQ, 1)
        assert running.thread.is_alive()  # no crash: the loop is still consuming
    assert len(events) == 11  # the records after the huge one were ingested: no crash loop
    [dead] = [contracts.decode(events_pb2.DeadLetter, m.value()) for m in dlq]
    assert dead.error_type == "oversize" and dead.original_truncated
    assert dead.original_size == len(huge) and dead.original_sha256 == hashlib.sha256(huge).hexdigest()
    assert dead.original_value == huge[:64 * 1024] and len(dlq[0].value()) < 128 * 1024
