"""The registry's adapters: the gRPC API, the model.candidates consumer, registry.log and model.promoted."""

from __future__ import annotations

from services.registry.edge.app import RegistryApp, build, handle_candidate, run
from services.registry.edge.eventlog import EventLog, artifact_fetcher, replay
from services.registry.edge.grpc_api import STATUS, RegistryServicer, start_grpc_server

__all__ = ["STATUS", "EventLog", "RegistryApp", "RegistryServicer", "artifact_fetcher", "build", "handle_candidate",
           "replay", "run", "start_grpc_server"]
