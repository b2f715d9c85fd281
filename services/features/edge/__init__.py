"""The faust edge of features: the app (`app`: topics, table, agent, timers) and the consumer it commits with
(`offsets`: never past an event the agent has not handled)."""

from __future__ import annotations

from services.features.edge.app import BatchTables, FaustTables, FeaturesApp, Featurizer, broker_credentials, build
from services.features.edge.offsets import HandledOffsetsConsumer, install

__all__ = ["BatchTables", "FaustTables", "FeaturesApp", "Featurizer", "HandledOffsetsConsumer",
           "broker_credentials", "build", "install"]
