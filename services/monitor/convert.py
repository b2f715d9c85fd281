"""Protobuf ↔ domain: logged predictions and labels in, RetrainRequest and ChallengerVerdict out (the only module
besides the edge that touches generated contracts). A record of `predictions` (a columnar PredictionBatch, or a
per-row PredictionRecord written before it) is decoded into arrays (`mlops.prediction_log.read_predictions`, the
batch's role included), and `block_from_columns` hands them to the core as one `PredictionBlock` (the arrays as they
are: no object per row); `predictions_from_columns` makes the per-row `Prediction`s instead. Labels arrive as `Label`
protobufs or JSON on each model's declared topic; `mlops.definitions.labels.decode_label` reads both and checks them
per task, and `label_from_row` takes it on."""

from __future__ import annotations

from mlops.contracts import models_pb2
from mlops.definitions.labels import LabelRow
from mlops.prediction_log import PredictionColumns

from services.monitor.core import LabelEvent, Prediction, PredictionBlock, RetrainDecision, Verdict

REQUESTED_BY = "monitor"


def block_from_columns(c: PredictionColumns) -> PredictionBlock:
    """The core's block of one logged request: the arrays as decoded, the per-row ids as lists."""
    return PredictionBlock(
        model_name=c.model_name, model_version=c.model_version, timestamp_ms=c.timestamp_ms,
        feature_names=c.feature_names, x=c.x, scores=c.scores, predicted_labels=c.predicted_labels,
        request_ids=c.request_ids(), entity_ids=c.entity_list(), as_of_ms=c.as_of_list(), trace_id=c.trace_id,
        span_id=c.span_id, role=c.role,
    )


def predictions_from_columns(c: PredictionColumns) -> list[Prediction]:
    """The core's predictions of one logged request: every array turned into Python values with one call each,
    then one `Prediction` (inputs by feature name) per row."""
    names = c.feature_names
    xs, scores, labels = c.x.tolist(), c.scores.tolist(), c.predicted_labels.tolist()
    ids, entities, as_of = c.request_ids(), c.entity_list(), c.as_of_list()
    model, version, t, trace_id, span_id, role = (c.model_name, c.model_version, c.timestamp_ms, c.trace_id,
                                                  c.span_id, c.role)
    return [
        Prediction(request_id=ids[i], entity_id=entities[i], model_name=model, model_version=version,
                   inputs=dict(zip(names, xs[i], strict=True)), score=scores[i], predicted_label=labels[i],
                   timestamp_ms=t, features_as_of_ms=as_of[i], trace_id=trace_id, span_id=span_id, role=role)
        for i in range(c.rows)
    ]


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
        trace_id=trace_id, span_id=span_id, change_point_ms=d.change_point_ms, attempt=d.attempt,
    )


def verdict_to_pb(v: Verdict, decided_at_ms: int, trace_id: str, span_id: str) -> models_pb2.ChallengerVerdict:
    return models_pb2.ChallengerVerdict(
        model_name=v.model_name, champion_version=v.champion_version, challenger_version=v.challenger_version,
        phase=v.phase, verdict=v.verdict, metric=v.metric, champion_metric=v.champion_metric,
        challenger_metric=v.challenger_metric, difference=v.difference, ci_low=v.ci_low, ci_high=v.ci_high,
        labelled_rows=v.labelled_rows, test=v.test, confidence=v.confidence, reason=v.reason,
        decided_at_ms=decided_at_ms, verdict_id=v.verdict_id, trace_id=trace_id, span_id=span_id,
    )


def request_time_ms(msg: models_pb2.RetrainRequest) -> int:
    """The stream time an earlier request's cool-down runs from (its window end; older requests lack one)."""
    return msg.window_end_ms or msg.requested_at_ms
