"""Protobuf ↔ domain: PredictionRecord and labels in, RetrainRequest out (the only module besides the edge that
touches generated contracts). Labels arrive as `Label` protobufs or JSON on each model's declared topic;
`mlops.definitions.labels.decode_label` reads both and checks them per task, and `label_from_row` takes it on."""

from __future__ import annotations

from mlops.contracts import models_pb2
from mlops.definitions.labels import LabelRow

from services.monitor.core import LabelEvent, Prediction, RetrainDecision

REQUESTED_BY = "monitor"


def prediction_from_pb(msg: models_pb2.PredictionRecord) -> Prediction:
    return Prediction(
        request_id=msg.request_id, entity_id=msg.entity_id, model_name=msg.model_name,
        model_version=msg.model_version, inputs=dict(msg.inputs), score=msg.score,
        predicted_label=msg.predicted_label, timestamp_ms=msg.timestamp_ms,
        features_as_of_ms=msg.features_as_of_ms, trace_id=msg.trace_id, span_id=msg.span_id,
    )


def label_from_row(row: LabelRow) -> LabelEvent:
    return LabelEvent(entity_id=row.entity_id, event_time_ms=row.event_time_ms, label=row.value,
                      request_id=row.request_id)


def retrain_to_pb(
    d: RetrainDecision, requested_at_ms: int, trace_id: str, span_id: str
) -> models_pb2.RetrainRequest:
    return models_pb2.RetrainRequest(
        model_name=d.model_name, request_id=d.request_id, reason=d.reason, detector=d.detector,
        statistic=d.statistic, feature=d.feature, value=d.value, window_start_ms=d.window_start_ms,
        window_end_ms=d.window_end_ms, requested_at_ms=requested_at_ms, requested_by=REQUESTED_BY,
        trace_id=trace_id, span_id=span_id,
    )


def request_time_ms(msg: models_pb2.RetrainRequest) -> int:
    """The stream time an earlier request's cool-down runs from (its window end; older requests lack one)."""
    return msg.window_end_ms or msg.requested_at_ms
