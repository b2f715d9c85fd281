"""Protobuf <-> features domain: an `Event` record in, a `FeatureVector` record out."""

from __future__ import annotations

from mlops import contracts
from mlops.contracts import events_pb2

from services.features.core import Event, FeatureVector


def event_from_bytes(value: bytes, where: str) -> Event:
    """The domain event of an `events` record; raises contracts.ContractError naming `where`."""
    ev = contracts.decode(events_pb2.Event, value, where)
    return Event(ev.event_id, ev.source_name, ev.entity_id, ev.event_time_ms, ev.ingest_time_ms, dict(ev.values),
                 dict(ev.categories))


def feature_vector_record(vector: FeatureVector) -> events_pb2.FeatureVector:
    """The features.log record of a view update: `feature_set` is the view's name, `feature_set_version` its
    version, `values` its columns (NaN: no value yet)."""
    return events_pb2.FeatureVector(
        entity_id=vector.entity_id, feature_set=vector.view.name, feature_set_version=vector.view.layout.version,
        as_of_ms=vector.as_of_ms, values=vector.values, event_id=vector.event_id,
    )
