"""The registry's wiring: replay registry.log → Registry → gRPC API + the model.candidates consumer."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from mlops.bus import Consumer, FailurePolicy, Producer, Record, StopFlag, run_loop
from mlops.contracts import ContractError, models_pb2
from mlops.settings import KafkaSettings
from mlops.telemetry import extract_context, link_to_ids, messaging_attributes, tracer
from mlops.topics import MODEL_CANDIDATES, topic_name

from services.registry import errors
from services.registry.convert import candidate_in
from services.registry.core import GatePolicy, Promotion, Registry, Status
from services.registry.edge.eventlog import EventLog, artifact_fetcher, replay
from services.registry.edge.grpc_api import start_grpc_server
from services.registry.metrics import CANDIDATES
from services.registry.settings import RegistrySettings

log = logging.getLogger("mlops.registry")
_tracer = tracer("mlops.registry")



@dataclass
class RegistryApp:
    registry: Registry
    server: grpc.Server
    grpc_port: int
    events: EventLog
    replayed: int

    def stop(self) -> None:
        self.server.stop(grace=2).wait(5)


def build(settings: RegistrySettings, kafka: KafkaSettings, producer: Producer) -> RegistryApp:
    """Rebuild the state from registry.log, then serve the gRPC API."""
    state, replayed = replay(kafka, settings.replay_timeout_s)
    events = EventLog(kafka, producer)
    registry = Registry(state, artifact_fetcher(kafka, settings.artifact_timeout_s), events.persist,
                        events.announce, GatePolicy(settings.gate_metric, settings.gate_margin,
                                                         settings.gate_floor), actor=settings.actor)
    server, port, _ = start_grpc_server(registry, settings.grpc_host, settings.grpc_port, settings.grpc_workers)
    log.info("registry state rebuilt", extra={"fields": {"records": replayed, "models": state.models(),
                                                         "grpc_port": port}})
    return RegistryApp(registry, server, port, events, replayed)


def handle_candidate(app: RegistryApp, record: Record, group: str) -> None:
    """One model.candidates record. Refusals (duplicate, corrupt/missing artifact, invalid) are logged and
    counted; they change nothing. Infrastructure errors propagate (FailurePolicy.STOP: read again on restart)."""
    with _tracer.start_as_current_span(
        "registry.candidate", context=extract_context(record.headers),
        attributes=messaging_attributes("process", record.topic, record.partition, record.offset, record.key,
                                        group),
    ) as span:
        try:
            msg = record.decode(models_pb2.ModelCandidate)
            training = link_to_ids(msg.trace_id, msg.span_id)  # the trainer's span that produced the candidate
            if training is not None:
                span.add_link(training.context, {"mlops.link": "training"})
            v = app.registry.register(*candidate_in(msg))
            CANDIDATES.labels(v.gate_decision).inc()
            span.set_attributes({"mlops.version": v.version, "mlops.model_version": v.version,
                                 "mlops.decision": v.gate_decision})
        except errors.DuplicateCandidate as exc:
            CANDIDATES.labels("duplicate").inc()
            log.warning("duplicate candidate ignored", extra={"fields": {"error": str(exc)}})
            # a crash between registry.log and model.promoted re-delivers the candidate: announce again
            existing = app.registry.state.get(exc.name, exc.version)
            if exc.same_candidate and existing is not None and existing.status == Status.CHAMPION \
                    and existing.gate_decision == "promoted":
                c = existing.candidate
                app.events.announce(Promotion(c.model_name, existing.version, c.sha256,
                                              existing.champion_version_at_gate, existing.gate_reason,
                                              c.feature_names, "promote", existing.registered_at_ms))
        except (errors.RegistryError, ContractError) as exc:
            CANDIDATES.labels("refused").inc()
            log.error("candidate refused", extra={"fields": {"where": record.where, "error": str(exc)}})


def run(app: RegistryApp, settings: RegistrySettings, kafka: KafkaSettings, stop: StopFlag) -> int:
    consumer = Consumer(kafka, group_id=settings.group_id, topics=[topic_name(MODEL_CANDIDATES, kafka)],
                        client_id="registry")
    return run_loop(consumer, lambda r: handle_candidate(app, r, settings.group_id), stop=stop,
                    policy=FailurePolicy.STOP, batch_size=20)
