"""The registry's adapters: the gRPC API, the model.candidates consumer, registry.log and model.promoted."""

from __future__ import annotations

from services.registry.edge.app import RegistryApp, build, run
from services.registry.edge.candidates import CandidateHandler
from services.registry.edge.eventlog import EventLog, artifact_fetcher, replay
from services.registry.edge.grpc_api import STATUS, RegistryServicer, start_grpc_server

__all__ = ["STATUS", "CandidateHandler", "EventLog", "RegistryApp", "RegistryServicer", "artifact_fetcher", "build",
           "replay", "run", "start_grpc_server"]
