"""The message bus: thin, typed wrappers over confluent-kafka.

- `Producer`: idempotent (acks=all), stamps each record with `traceparent`, content type and contract version.
- `Consumer`: manual commits only — a record's offset is committed after its handler returned, so a crash before
  the commit means the record is read again (at-least-once).
- `run_loop`: the consume → handle → commit loop with a named failure policy, stopped by SIGTERM/SIGINT after
  flushing the producer and committing what was done.
"""

from __future__ import annotations

import enum
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka import Consumer as _KafkaConsumer
from confluent_kafka import Producer as _KafkaProducer
from google.protobuf.message import Message as PbMessage

from mlops import contracts
from mlops.settings import KafkaSettings
from mlops.telemetry import inject_headers

log = logging.getLogger("mlops.bus")

PB = TypeVar("PB", bound=PbMessage)

DeliveryCallback = Callable[[KafkaError | None, Message], None]

HEADER_CONTENT_TYPE = "content-type"
HEADER_CONTRACT = "contract-version"
HEADER_MESSAGE_TYPE = "message-type"


class BusError(RuntimeError):
    """A record could not be delivered or committed."""


class Record:
    """One consumed record: a read-only view of confluent-kafka's Message (fields read on demand — the consume
    hot path touches only what a handler uses)."""

    __slots__ = ("_msg", "_headers")

    def __init__(self, msg: Message):
        self._msg = msg
        self._headers: dict[str, bytes] | None = None

    topic = property(lambda self: self._msg.topic())
    partition = property(lambda self: self._msg.partition())
    offset = property(lambda self: self._msg.offset())
    key = property(lambda self: self._msg.key())
    value = property(lambda self: self._msg.value())

    @property
    def timestamp_ms(self) -> int:
        ts_type, ts = self._msg.timestamp()
        return ts if ts_type else 0

    @property
    def headers(self) -> dict[str, bytes]:
        if self._headers is None:
            self._headers = {k: (v if v is not None else b"") for k, v in (self._msg.headers() or [])}
        return self._headers

    @property
    def where(self) -> str:
        return f"topic={self.topic} partition={self.partition} offset={self.offset}"

    def header(self, name: str) -> str | None:
        raw = self.headers.get(name)
        return raw.decode("utf-8", "replace") if raw is not None else None

    def decode(self, message_type: type[PB]) -> PB:
        """The value as `message_type`; raises contracts.ContractError naming topic/partition/offset."""
        return contracts.decode(message_type, self.value, lambda: self.where)

    def __repr__(self) -> str:
        return f"Record({self.where}, key={self.key!r}, {len(self.value or b'')} bytes)"


def _as_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode("utf-8") if isinstance(key, str) else key


class Producer:
    """Idempotent producer. `send` never blocks on the network; `flush` waits for acknowledgements."""

    def __init__(self, settings: KafkaSettings, *, client_id: str, extra: dict[str, object] | None = None):
        conf = settings.client_config() | {
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
        self._producer = _KafkaProducer(conf | (extra or {}))
        self._errors: list[str] = []
        self._static_headers: dict[type, dict[str, str]] = {}

    def send(
        self,
        topic: str,
        value: PbMessage | bytes | None,
        *,
        key: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Queue one record. Protobuf values are encoded with the contract version; the current trace context
        goes into `traceparent`. Delivery failures are kept and raised by `flush`."""
        if isinstance(value, PbMessage):
            payload: bytes | None = contracts.encode(value)
            hdrs = self._headers_for(type(value)) | (headers or {})
        else:
            payload = value
            hdrs = dict(headers or {})
        hdrs = inject_headers(hdrs)
        callback = self._on_delivery if on_delivery is None else self._chain(on_delivery)
        while True:
            try:
                self._producer.produce(
                    topic, value=payload, key=_as_bytes(key), headers=list(hdrs.items()), on_delivery=callback
                )
                break
            except BufferError:  # local queue full: serve delivery callbacks, then retry
                self._producer.poll(0.05)
        self._producer.poll(0)

    def _headers_for(self, message_type: type) -> dict[str, str]:
        static = self._static_headers.get(message_type)
        if static is None:
            static = self._static_headers[message_type] = {
                HEADER_CONTENT_TYPE: contracts.CONTENT_TYPE,
                HEADER_CONTRACT: str(contracts.CONTRACT_VERSION),
                HEADER_MESSAGE_TYPE: message_type.DESCRIPTOR.full_name,
            }
        return static

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def _chain(self, user: DeliveryCallback) -> DeliveryCallback:
        def both(err: KafkaError | None, msg: Message) -> None:
            self._on_delivery(err, msg)
            user(err, msg)

        return both

    def poll(self, timeout: float = 0.0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged; raise BusError if any failed or are still queued."""
        remaining = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        if remaining:
            errors.append(f"{remaining} record(s) still queued after {timeout}s")
        if errors:
            raise BusError("delivery failed: " + "; ".join(errors[:5]))

    def __len__(self) -> int:
        return len(self._producer)


def _assign_from_beginning(consumer: _KafkaConsumer, partitions: list[TopicPartition]) -> None:
    for tp in partitions:
        tp.offset = OFFSET_BEGINNING
    consumer.assign(partitions)


class Consumer:
    """A consumer-group member with manual, synchronous commits."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group_id: str,
        topics: Iterable[str],
        client_id: str,
        from_beginning: bool = True,
        rewind: bool = False,
        extra: dict[str, object] | None = None,
    ):
        """`rewind=True` re-reads every assigned partition from the start whatever was committed: how a service
        rebuilds its state from a compacted topic."""
        conf = settings.client_config() | {
            "group.id": group_id,
            "client.id": client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "isolation.level": "read_committed",
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": max(1000, settings.session_timeout_ms // 4),
            "fetch.max.bytes": settings.max_message_bytes,
            "max.partition.fetch.bytes": settings.max_message_bytes,
        }
        self.group_id = group_id
        self._consumer = _KafkaConsumer(conf | (extra or {}))
        if rewind:
            self._consumer.subscribe(list(topics), on_assign=_assign_from_beginning)
        else:
            self._consumer.subscribe(list(topics))

    def poll(self, timeout: float = 1.0) -> Record | None:
        return next(iter(self.consume(1, timeout)), None)

    def consume(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Up to `max_records` records; partition EOFs are skipped, broker errors raise."""
        msgs = self._consumer.consume(max_records, timeout)
        out = [Record(msg) for msg in msgs if msg.error() is None]
        if len(out) != len(msgs):  # errors are rare: only then look at them
            for msg in msgs:
                err = msg.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(err)
        return out

    def commit(self, records: Iterable[Record]) -> None:
        """Commit past the highest offset of each partition in `records` (synchronously)."""
        highest: dict[tuple[str, int], int] = {}
        for r in records:
            msg = r._msg  # one dict write per record: consume order is offset order within a partition
            key = (msg.topic(), msg.partition())
            offset = msg.offset()
            if offset > highest.get(key, -1):
                highest[key] = offset
        if highest:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in highest.items()], asynchronous=False
            )

    @property
    def raw(self) -> _KafkaConsumer:
        return self._consumer

    def close(self) -> None:
        self._consumer.close()


class FailurePolicy(enum.Enum):
    """What the loop does when a handler raises for a record (STYLE.md: never an accident)."""

    STOP = "stop"  # re-raise: the offset is not committed, the record is read again after a restart
    SKIP_AND_LOG = "skip"  # log loudly and commit past it (only for records whose loss is acceptable)
    DEAD_LETTER = "dead_letter"  # hand it to `dead_letter(record, exc)`, then commit past it


class StopFlag:
    """Set by SIGTERM/SIGINT (when installed from the main thread) or by `set()`."""

    def __init__(self, install_signals: bool = True):
        self._event = threading.Event()
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._event.set())

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def run_loop(
    consumer: Consumer,
    handle: Callable[[Record], None],
    *,
    stop: StopFlag,
    policy: FailurePolicy = FailurePolicy.STOP,
    dead_letter: Callable[[Record, Exception], None] | None = None,
    producer: Producer | None = None,
    batch_size: int = 500,
    poll_timeout: float = 0.5,
    on_idle: Callable[[], None] | None = None,
) -> int:
    """Consume until `stop` is set. Each batch is handled record by record, the producer (if any) is flushed so
    every output is acknowledged, and only then are the batch's offsets committed. Returns records handled."""
    if policy is FailurePolicy.DEAD_LETTER and dead_letter is None:
        raise ValueError("FailurePolicy.DEAD_LETTER needs a dead_letter callback")
    handled = 0
    try:
        while not stop.is_set():
            records = consumer.consume(batch_size, poll_timeout)
            if not records:
                if on_idle is not None:
                    on_idle()
                continue
            for record in records:
                try:
                    handle(record)
                except Exception as exc:
                    if policy is FailurePolicy.STOP:
                        raise
                    if policy is FailurePolicy.DEAD_LETTER:
                        assert dead_letter is not None
                        dead_letter(record, exc)
                    else:
                        log.error("skipping record", extra={"fields": {"where": record.where, "error": str(exc)}})
                handled += 1
            if producer is not None:
                producer.flush()
            consumer.commit(records)
    finally:
        if producer is not None:
            try:
                producer.flush(10)
            except BusError as exc:
                log.error("flush on shutdown failed", extra={"fields": {"error": str(exc)}})
        consumer.close()
    return handled


def wait_for_broker(settings: KafkaSettings, timeout: float = 60.0) -> None:
    """Block until the broker answers a metadata request."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    admin = AdminClient(settings.client_config())
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=2)
            return
        except KafkaException as exc:
            last = exc
            time.sleep(0.5)
    raise BusError(f"Kafka at {settings.bootstrap_servers} not reachable after {timeout}s: {last}")


_RETRIABLE = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
}


def watermarks(consumer: _KafkaConsumer, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
    """(low, high) watermark of one partition from the broker, retrying the transient errors a just-created
    topic gives while its leader is elected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=max(0.5, deadline - time.monotonic()), cached=False
            )
            return int(low), int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in _RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
