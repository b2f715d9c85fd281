"""Producer and consumer-group member over confluent-kafka, and the broker queries they share.

- `Producer`: idempotent (acks=all), stamps each record with `traceparent`, content type and contract version.
- `Consumer`: manual commits only — a record's offset is committed after its handler returned, so a crash before
  the commit means the record is read again (at-least-once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka import Consumer as _KafkaConsumer
from confluent_kafka import Producer as _KafkaProducer
from google.protobuf.message import Message as PbMessage

from mlops import contracts
from mlops.bus._record import (
    HEADER_CONTENT_TYPE,
    HEADER_CONTRACT,
    HEADER_MESSAGE_TYPE,
    BusError,
    Record,
    next_offsets,
)
from mlops.settings import KafkaSettings
from mlops.telemetry import inject_headers

log = logging.getLogger("mlops.bus")

__all__ = ["AuthFailures", "ConfluentClient", "Consumer", "DeliveryCallback", "Producer", "as_bytes",
           "consume_arrived", "consumer_config", "transient", "wait_for_broker", "watermarks"]

DeliveryCallback = Callable[[KafkaError | None, Message], None]


def as_bytes(key: str | bytes | None) -> bytes | None:
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
        self._settings, self._refused = settings, AuthFailures()
        self._producer = _KafkaProducer(conf | {"error_cb": self._refused} | (extra or {}))
        self._errors: list[str] = []
        self._static_headers: dict[type, dict[str, str]] = {}

    def send(self, topic: str, value: PbMessage | bytes | None, *, key: str | bytes | None = None,
             headers: dict[str, str] | None = None, on_delivery: DeliveryCallback | None = None,
             poll: bool = True) -> None:
        """Queue one record. Protobuf values are encoded with the contract version; the current trace context
        goes into `traceparent`. Delivery failures are kept and raised by `flush`. `poll` False: the caller polls
        (once for many records: a poll costs several produces)."""
        payload, hdrs = self._encode(value, headers)
        self._produce(topic, payload, as_bytes(key), hdrs, on_delivery, poll)

    def _produce(self, topic: str, payload: bytes | None, key: bytes | None, headers: dict[str, str],
                 on_delivery: DeliveryCallback | None, poll: bool = True) -> None:
        callback = self._on_delivery if on_delivery is None else self._chain(on_delivery)
        while True:
            try:
                self._producer.produce(topic, value=payload, key=key, headers=list(headers.items()),
                                       on_delivery=callback)
                break
            except BufferError:  # local queue full: serve delivery callbacks, then retry
                self._producer.poll(0.05)
        if poll:  # serve delivery callbacks
            self._producer.poll(0)

    def send_encoded(self, topic: str, message_type: type[PbMessage],
                     records: Iterable[tuple[bytes | None, bytes, dict[str, str] | None]]) -> None:
        """Queue records of `message_type` already encoded (with the contract version stamped), as (key, value,
        trace headers): the contract headers are built once for all of them and each is handed to librdkafka in
        one tight loop — for a batch path that writes its own bytes. Trace headers are taken as given (the caller
        owns the spans); delivery failures are raised by `flush`, as for `send`."""
        static = list(self._contract_headers(message_type).items())
        last_trace: dict[str, str] | None = None  # consecutive records often share one trace context (one list)
        traced = static
        produce, on_delivery = self._producer.produce, self._on_delivery
        for key, value, trace in records:
            if not trace:
                headers = static
            elif trace is last_trace:
                headers = traced
            else:
                last_trace, traced = trace, static + list(trace.items())
                headers = traced
            try:
                produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            except BufferError:  # local queue full: the slow path serves delivery callbacks and retries
                self._produce(topic, value, key, dict(headers), None)
        self._producer.poll(0)

    def _contract_headers(self, message_type: type[PbMessage]) -> dict[str, str]:
        static = self._static_headers.get(message_type)
        if static is None:
            static = self._static_headers[message_type] = {
                HEADER_CONTENT_TYPE: contracts.CONTENT_TYPE,
                HEADER_CONTRACT: str(contracts.CONTRACT_VERSION),
                HEADER_MESSAGE_TYPE: message_type.DESCRIPTOR.full_name,
            }
        return static

    def _encode(self, value: PbMessage | bytes | None, headers: dict[str, str] | None) -> tuple[
            bytes | None, dict[str, str]]:
        """The payload and the headers to send: contract headers for protobuf values, then the trace context."""
        if isinstance(value, PbMessage):
            static = self._contract_headers(type(value))
            return contracts.encode(value), inject_headers(static | (headers or {}))
        return value, inject_headers(dict(headers or {}))

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
        """Wait until every queued record is acknowledged; raise BusError if any failed or are still queued, or at
        once when the broker refused the client's credentials."""
        deadline = time.monotonic() + timeout
        remaining = self._producer.flush(min(timeout, 1.0))
        while remaining and time.monotonic() < deadline:
            self._refused.raise_if_any(self._settings)
            remaining = self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        self._refused.raise_if_any(self._settings)
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


def consumer_config(settings: KafkaSettings, client_id: str) -> dict[str, object]:
    """What every consuming client sets: its id, no automatic commits, committed data only, large records."""
    return settings.client_config() | {
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "fetch.max.bytes": settings.max_message_bytes,
        "max.partition.fetch.bytes": settings.max_message_bytes,
    }


def consume_arrived(consumer: Any, max_records: int, timeout: float) -> list[Message]:
    """Up to `max_records` messages of what has arrived, waiting up to `timeout` for the first one only.

    librdkafka's `consume(n, timeout)` returns when n messages are there *or* the timeout expires, so with a large
    batch and moderate traffic a lone record waited the whole timeout: latency depended on traffic. Here only the
    wait for one message blocks; the rest of the batch is what the client has already fetched (`timeout=0`), so
    a batch is as large as the backlog and never waits to fill."""
    msgs = consumer.consume(max_records, 0)
    if msgs or timeout <= 0:
        return msgs
    msgs = consumer.consume(1, timeout)
    if msgs and max_records > 1:
        msgs.extend(consumer.consume(max_records - 1, 0))
    return msgs


class ConfluentClient:
    """What the bus's consuming clients share: the confluent-kafka consumer under them, and the refusals of its
    credentials (`error_cb`), raised by `consume`."""

    _consumer: _KafkaConsumer
    _settings: KafkaSettings
    _refused: AuthFailures | None = None  # None: a client built around a double, in a unit test

    def _make(self, settings: KafkaSettings, conf: dict[str, object]) -> _KafkaConsumer:
        self._settings, self._refused = settings, AuthFailures()
        self._consumer = _KafkaConsumer({"error_cb": self._refused} | conf)
        return self._consumer

    def _raise_refused(self) -> None:
        if self._refused is not None:
            self._refused.raise_if_any(self._settings)

    @property
    def raw(self) -> _KafkaConsumer:
        return self._consumer

    def close(self) -> None:
        self._consumer.close()


class Consumer(ConfluentClient):
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
        conf = consumer_config(settings, client_id) | {
            "group.id": group_id,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": max(1000, settings.session_timeout_ms // 4),
        }
        self.group_id = group_id
        self._make(settings, conf | (extra or {}))
        if rewind:
            self._consumer.subscribe(list(topics), on_assign=_assign_from_beginning)
        else:
            self._consumer.subscribe(list(topics))

    def poll(self, timeout: float = 1.0) -> Record | None:
        return next(iter(self.consume(1, timeout)), None)

    def consume(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Up to `max_records` records of what has arrived, waiting up to `timeout` for the first (never for a full
        batch: `consume_arrived`); partition EOFs are skipped, broker errors raise."""
        msgs = consume_arrived(self._consumer, max_records, timeout)
        if not msgs:
            self._raise_refused()
        out = [Record(msg) for msg in msgs if msg.error() is None]
        if len(out) != len(msgs):  # errors are rare: only then look at them
            for msg in msgs:
                err = msg.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF and not transient(err):
                    raise KafkaException(err)
        return out

    def commit(self, records: Iterable[Record]) -> None:
        """Commit past the highest offset of each partition in `records` (synchronously). A transient error (the
        group coordinator's broker just died, a cluster fails over) is retried for up to `commit_retry_s`."""
        offsets = next_offsets(records)
        if not offsets:
            return
        deadline, waited = time.monotonic() + self._settings.commit_retry_s, False
        while True:
            try:
                self._consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
                )
                return
            except KafkaException as exc:
                if exc.args[0].code() in _MEMBERSHIP_LOST:
                    # the group moved on without this member (a broker of the cluster died and the coordinator's
                    # session expired it): its partitions' next owner re-reads from the last committed offset, so
                    # nothing is lost by not committing — and the member rejoins on its next poll
                    log.warning("commit skipped: %s; the records are read again by the partitions' next owner",
                                exc.args[0].str())
                    return
                if not transient(exc.args[0]) or time.monotonic() > deadline:
                    raise
                if not waited:
                    log.warning("commit waits for the group coordinator: %s", exc.args[0].str())
                    waited = True
                time.sleep(0.2)

    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition)s this member holds now."""
        return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    def lag(self) -> dict[tuple[str, int], int]:
        """(topic, partition) → high watermark minus position, for each assigned partition whose position and
        watermark are known (the watermark the last fetch brought: no broker round trip)."""
        out: dict[tuple[str, int], int] = {}
        for tp in self._consumer.position(self._consumer.assignment()):
            if tp.offset < 0:
                continue
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                out[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        return out


def wait_for_broker(settings: KafkaSettings, timeout: float = 60.0, brokers: int = 1) -> None:
    """Block until the cluster answers a metadata request listing at least `brokers` brokers. Refused credentials
    or certificates fail at once with a BusError that says so (they would never get better by waiting)."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    last: Exception | str | None = None
    refused = AuthFailures()
    admin = AdminClient(settings.client_config() | {"error_cb": refused})
    while time.monotonic() < deadline:
        try:
            listed = len(admin.list_topics(timeout=2).brokers)
            if listed >= brokers:
                return
            last = f"{listed} of {brokers} brokers registered"
        except KafkaException as exc:
            last = exc
        admin.poll(0)  # serves error_cb
        refused.raise_if_any(settings)
        time.sleep(0.5)
    raise BusError(f"Kafka at {settings.bootstrap_servers} not reachable after {timeout}s: {last}")


# what librdkafka reports when the broker refuses the client's SASL credentials or its TLS handshake
_AUTH_CODES = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL,
               KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}


class AuthFailures:
    """A librdkafka `error_cb` keeping authentication and TLS refusals, which the client otherwise only retries
    (a producer would queue, a consumer poll nothing, for ever); `raise_if_any` turns them into a BusError naming
    the user, the mechanism and the settings to check (never the password)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, err: KafkaError) -> None:
        text = err.str().lower()
        if err.code() in _AUTH_CODES or any(word in text for word in ("authentication", "certificate", "ssl")):
            self.errors.append(err.str())

    def raise_if_any(self, settings: KafkaSettings) -> None:
        if not self.errors:
            return
        who = (f"SASL user {settings.sasl_username!r} ({settings.sasl_mechanism})" if settings.sasl
               else "the client")
        raise BusError(f"Kafka at {settings.bootstrap_servers} refused {who} over {settings.security_protocol}: "
                       f"{self.errors[-1]} (check MLOPS_KAFKA_SASL_USERNAME, MLOPS_KAFKA_SASL_PASSWORD[_FILE] and "
                       "MLOPS_KAFKA_SSL_*_FILE)")


RETRIABLE = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
}
# what a consumer sees while a broker of a cluster dies and its partitions and groups fail over: librdkafka recovers
# by itself, so these are reported, not raised (a raise ended a service's loop when one of three brokers died)
_FAILOVER = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
             KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
             KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_LEADER_FOR_PARTITION,
             KafkaError.LEADER_NOT_AVAILABLE, KafkaError.REQUEST_TIMED_OUT}


# a commit refused because this member no longer belongs to the group's current generation (no error of the records)
_MEMBERSHIP_LOST = {KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS}


def transient(err: KafkaError) -> bool:
    """An error the client recovers from by itself (a broker failing over); never a fatal one."""
    return not err.fatal() and (err.code() in _FAILOVER or err.retriable())


def watermarks(consumer: Any, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
    """(low, high) watermark of one partition from the broker, retrying the transient errors a just-created
    topic gives while its leader is elected. `consumer`: a bus Consumer or Reader, or a confluent-kafka one."""
    raw: _KafkaConsumer = getattr(consumer, "raw", consumer)
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = raw.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=max(0.5, deadline - time.monotonic()), cached=False
            )
            return int(low), int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
