"""The registry's adapters: the gRPC API, the model.candidates and challenger.verdicts consumers, registry.log and
model.promoted."""

from __future__ import annotations

from services.registry.edge.app import RegistryApp, build, follow_verdicts, run
from services.registry.edge.candidates import CandidateHandler
from services.registry.edge.eventlog import EventLog, artifact_fetcher, replay
from services.registry.edge.grpc_api import STATUS, RegistryServicer, start_grpc_server
from services.registry.edge.verdicts import VerdictHandler

__all__ = ["STATUS", "CandidateHandler", "EventLog", "RegistryApp", "RegistryServicer", "VerdictHandler",
           "artifact_fetcher", "build", "follow_verdicts", "replay", "run", "start_grpc_server"]
