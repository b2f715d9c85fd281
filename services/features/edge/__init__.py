"""The faust edge of features: the app (`app`: topics, table, agent, timers), the work on one batch (`featurizer`)
and the consumer it commits with (`offsets`: never past an event the agent has not handled)."""

from __future__ import annotations

from services.features.edge.app import FaustTables, FeaturesApp, broker_credentials, build
from services.features.edge.featurizer import BatchTables, Featurizer, TraceBudget, carried_traceparent
from services.features.edge.offsets import HandledOffsetsConsumer, install

__all__ = ["BatchTables", "FaustTables", "FeaturesApp", "Featurizer", "HandledOffsetsConsumer", "TraceBudget",
           "broker_credentials", "build", "carried_traceparent", "install"]
