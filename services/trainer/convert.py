"""Protobuf ↔ the trainer's plain values: RetrainRequest or ModelRegistration → RetrainAsk; a trained (or
registered) model → ModelCandidate; a failure → TrainingFailed. With the edge, the only module of the trainer that
touches generated `mlops.contracts` messages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from mlops.contracts import common_pb2, models_pb2
from mlops.definitions import Revision
from mlops.explainability import explainability_to_proto

from services.trainer.core import RetrainAsk, RetrainJob, TrainedModel, TrainingSetLike

__all__ = ["ask_from_proto", "ask_from_registration", "candidate_to_proto",
           "failure_to_proto"]


def ask_from_proto(msg: models_pb2.RetrainRequest) -> RetrainAsk:
    return RetrainAsk(
        model_name=msg.model_name, request_id=msg.request_id, reason=msg.reason, detector=msg.detector,
        requested_at_ms=msg.requested_at_ms, requested_by=msg.requested_by,
        seed=msg.seed if msg.HasField("seed") else None, change_point_ms=msg.change_point_ms,
    )


def ask_from_registration(msg: models_pb2.ModelRegistration) -> RetrainAsk:
    """A bring-your-own model (`mlops models register`): checked and scored like a retrain, never trained."""
    return RetrainAsk(
        model_name=msg.model_name, request_id=msg.request_id,
        reason=msg.description or f"bring your own model, sha256={msg.artifact_sha256}", detector="byo",
        requested_at_ms=msg.requested_at_ms, requested_by=msg.requested_by, seed=None,
        artifact_sha256=msg.artifact_sha256,
    )


def _ranges(ranges: Iterable[Any]) -> list[common_pb2.OffsetRange]:
    return [common_pb2.OffsetRange(topic=r.topic, partition=r.partition, start_offset=r.start_offset,
                                   end_offset=r.end_offset) for r in ranges]


def candidate_to_proto(job: RetrainJob, model: TrainedModel, data: TrainingSetLike, version_of_code: str,
                       trace_ids: tuple[str, str], revision: Revision, views: Sequence[str], seed: int
                       ) -> models_pb2.ModelCandidate:
    """The candidate with its lineage (the data version: offsets read; the views and their versions; the
    definitions revision) and the holdout rows the registry's gate evaluates, in the model's declared feature
    order; `trace_ids` (trace id, span id) of the training, so the registry can link its decision to it."""
    trace_id, span_id = trace_ids
    ask = job.primary
    reason = ask.reason if not job.byo else f"bring your own model registered by {ask.requested_by or 'unknown'}"
    lineage = models_pb2.Lineage(
        feature_log_offsets=_ranges(data.feature_log_ranges), label_offsets=_ranges(data.label_ranges),
        # one field for the view(s): several are joined by ",", the version is the first view's (see params)
        feature_set=",".join(views), feature_set_version=revision.view_versions.get(views[0], 0),
        code_version=version_of_code, seed=0 if job.byo else seed,
        row_count=model.train_rows + model.holdout_rows, data_start_ms=model.data_start_ms,
        data_end_ms=model.data_end_ms, retrain_request_id=ask.request_id, retrain_reason=reason,
        coalesced_request_ids=list(job.request_ids),
        view_versions={v: revision.view_versions.get(v, 0) for v in views},
        definitions_revision=revision.number, requested_by=ask.requested_by,
    )
    holdout = models_pb2.Holdout(
        feature_names=list(model.feature_names), rows=len(model.holdout_y),
        features_f32=model.holdout_X.astype("<f4").tobytes(), labels=[float(v) for v in model.holdout_y],
    )
    # also in the lineage; kept in params for readers of candidates written before those fields existed
    params = dict(model.params) | {
        "definitions_revision": str(revision.number),
        "view_versions": ",".join(f"{v}:{revision.view_versions.get(v, 0)}" for v in views),
        "requested_by": ask.requested_by,
    }
    if job.byo:
        params["registered_by"] = ask.requested_by
    return models_pb2.ModelCandidate(
        model_name=job.model_name, candidate_id=uuid.uuid4().hex, artifact_sha256=model.sha256,
        artifact_size=len(model.onnx_bytes), framework=model.framework, metrics=model.metrics,
        params=params, lineage=lineage, feature_names=list(model.feature_names), holdout=holdout,
        created_at_ms=int(time.time() * 1000), trace_id=trace_id, span_id=span_id,
        explainability=explainability_to_proto(model.explainability),
    )


def failure_to_proto(job: RetrainJob, reason: str) -> models_pb2.TrainingFailed:
    return models_pb2.TrainingFailed(
        model_name=job.model_name, retrain_request_id=job.primary.request_id, reason=reason,
        failed_at_ms=int(time.time() * 1000),
    )
