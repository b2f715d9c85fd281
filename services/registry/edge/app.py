"""The registry's wiring: replay registry.log → Registry → the gRPC API, then consume model.candidates."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from mlops.artifacts import ArtifactReader
from mlops.bus import Bus, FailurePolicy, StopFlag, run_loop
from mlops.topics import MODEL_CANDIDATES

from services.registry.core import GatePolicy, Registry
from services.registry.edge.candidates import CandidateHandler
from services.registry.edge.eventlog import EventLog, artifact_fetcher, replay
from services.registry.edge.grpc_api import start_grpc_server
from services.registry.settings import RegistrySettings

__all__ = ["RegistryApp", "build", "run"]

log = logging.getLogger("mlops.registry")


@dataclass
class RegistryApp:
    bus: Bus
    registry: Registry
    events: EventLog
    server: grpc.Server
    grpc_port: int
    replayed: int

    def stop(self) -> None:
        self.server.stop(grace=2).wait(5)


def build(settings: RegistrySettings, bus: Bus) -> RegistryApp:
    """Rebuild the state from registry.log, then serve the gRPC API."""
    state, replayed = replay(bus, settings.replay_timeout_s)
    fetch = artifact_fetcher(ArtifactReader(bus), settings.artifact_timeout_s)
    events = EventLog(bus, bus.producer(client_id="registry"))
    policy = GatePolicy(settings.gate_metric, settings.gate_margin, settings.gate_floor)
    registry = Registry(state, fetch, events.persist, events.announce, policy, actor=settings.actor)
    server, port, _ = start_grpc_server(registry, settings.grpc_host, settings.grpc_port, settings.grpc_workers)
    log.info("registry state rebuilt", extra={"fields": {"records": replayed, "models": state.models(),
                                                         "grpc_port": port}})
    return RegistryApp(bus, registry, events, server, port, replayed)


def run(app: RegistryApp, settings: RegistrySettings, stop: StopFlag) -> int:
    """Gate every candidate on model.candidates until `stop`; returns the records handled."""
    consumer = app.bus.consumer(group_id=settings.group_id, topics=[app.bus.topic(MODEL_CANDIDATES)],
                                client_id="registry")
    return run_loop(consumer, CandidateHandler(app.registry, settings.group_id), stop=stop,
                    policy=FailurePolicy.STOP, batch_size=20)
