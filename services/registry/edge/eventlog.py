"""registry.log and model.promoted on the bus: write events (acknowledged before they count), announce champions,
and replay the compacted log on start."""

from __future__ import annotations

import logging

from mlops.artifacts import ArtifactError, ArtifactReader
from mlops.bus import Bus, Producer
from mlops.contracts import ContractError, models_pb2
from mlops.security import promotion_signature
from mlops.telemetry import messaging_attributes, messaging_span_name, tracer
from mlops.topics import MODEL_PROMOTED, REGISTRY_LOG
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from services.registry.convert import event_in, event_key, event_out, promotion_out
from services.registry.core import CHALLENGER_KEY, Event, FetchArtifact, Promotion, RegistryState
from services.registry.errors import ArtifactRejected
from services.registry.metrics import PROMOTIONS

__all__ = ["EventLog", "artifact_fetcher", "last_announced", "replay"]

log = logging.getLogger("mlops.registry")
_tracer = tracer("mlops.registry")


class EventLog:
    """Persists events to registry.log and announces promotions on model.promoted."""

    def __init__(self, bus: Bus, producer: Producer, signing_key: SecretStr | None = None):
        """`signing_key`: the HMAC key model.promoted records are signed with (None or empty: unsigned)."""
        self.producer = producer
        self.signing_key = signing_key if signing_key is not None and signing_key.get_secret_value() else None
        self.log_topic = bus.topic(REGISTRY_LOG)
        self.promoted_topic = bus.topic(MODEL_PROMOTED)

    def persist(self, events: list[Event]) -> None:
        for e in events:
            self.producer.send(self.log_topic, event_out(e), key=event_key(e))
        self.producer.flush()  # raises BusError → the command fails and nothing is applied

    def announce(self, promotion: Promotion) -> None:
        # the promote span: a child of the candidate's span (gate promotion, in the training trace) or of the
        # gRPC call (manual promote / rollback); model.promoted carries its traceparent to inference
        # a second version (challenger, guard) goes on "<model>/challenger", its role signed with it
        attrs = messaging_attributes("send", self.promoted_topic, key=promotion.key) | {
            "mlops.model": promotion.model_name, "mlops.model_version": promotion.version,
            "mlops.previous_version": promotion.previous_version, "mlops.action": promotion.action,
            "mlops.role": promotion.role or "champion"}
        with _tracer.start_as_current_span(messaging_span_name("send", self.promoted_topic), kind=SpanKind.PRODUCER,
                                           attributes=attrs):
            message = promotion_out(promotion)
            if self.signing_key is not None:
                message.signature = promotion_signature(self.signing_key, message.model_name, message.version,
                                                        message.artifact_sha256, message.role)
            self.producer.send(self.promoted_topic, message, key=promotion.key)
            self.producer.flush()
        PROMOTIONS.labels(promotion.model_name, promotion.action).inc()


def replay(bus: Bus, timeout: float = 60.0) -> tuple[RegistryState, int]:
    """Rebuild the state from registry.log up to its end as of now. Returns (state, records applied)."""
    reader = bus.reader([bus.topic(REGISTRY_LOG)], client_id="registry-replay", start="beginning")
    try:
        records = reader.read_to_end(timeout)
    finally:
        reader.close()
    state, applied = RegistryState(), 0
    for record in records:
        if record.value is None:  # a tombstone: the registry never writes one, compaction may leave one
            continue
        try:
            event = event_in(record.decode(models_pb2.RegistryEvent))
        except (ContractError, ValueError) as exc:
            log.error("skipping unreadable registry.log record", extra={"fields": {"error": str(exc)}})
            continue
        state.apply(event)
        applied += 1
    return state, applied


def last_announced(bus: Bus, timeout: float = 60.0) -> dict[str, tuple[str, str, str, str]]:
    """The last (version, sha256, action, role) announced on model.promoted under each key ("<model>" for its
    champion, "<model>/challenger" for its second version), as of now: what the registry compares its state with
    on start to re-send an announcement lost between registry.log and model.promoted."""
    reader = bus.reader([bus.topic(MODEL_PROMOTED)], client_id="registry-outbox", start="beginning")
    try:
        records = reader.read_to_end(timeout)
    finally:
        reader.close()
    last: dict[str, tuple[str, str, str, str]] = {}
    for record in records:
        try:
            msg = record.decode(models_pb2.ModelPromoted)
        except ContractError:
            continue  # not ours to judge here; inference dead-letters nothing on this topic either
        key = f"{msg.model_name}/{CHALLENGER_KEY}" if msg.role not in ("", "champion") else msg.model_name
        last[key] = (msg.version, msg.artifact_sha256, msg.action, msg.role)
    return last


def artifact_fetcher(reader: ArtifactReader, timeout: float) -> FetchArtifact:
    """sha256 → verified bytes from model.artifacts; missing or corrupt → ArtifactRejected."""

    def fetch(sha256: str) -> bytes:
        try:
            return reader.get(sha256, timeout=timeout)
        except ArtifactError as exc:
            raise ArtifactRejected(sha256, str(exc)) from exc

    return fetch
