"""The explainability report (mlops.evaluation.Explainability) as it travels on Kafka: the trainer sends it with the
candidate, the registry keeps it on its compacted topic. One converter each way, shared by both services."""

from __future__ import annotations

from mlops.contracts import models_pb2
from mlops.evaluation import Calibration, Dependence, Explainability, Importance

__all__ = ["explainability_from_proto", "explainability_to_proto"]


def explainability_to_proto(e: Explainability | None) -> models_pb2.Explainability | None:
    """The report as a message (a few hundred numbers); None stays None."""
    if e is None:
        return None
    out = models_pb2.Explainability(
        metric=e.metric, rows=e.rows, feature_means=e.feature_means,
        importances=[models_pb2.FeatureImportance(feature=i.feature, mean=i.mean, std=i.std) for i in e.importances],
        partial_dependence=[models_pb2.PartialDependence(feature=d.feature, grid=d.grid, average=d.average)
                            for d in e.dependence])
    if e.calibration is not None:
        c = e.calibration
        out.calibration.CopyFrom(models_pb2.CalibrationCurve(prob_pred=c.prob_pred, prob_true=c.prob_true,
                                                             counts=c.counts))
    return out


def explainability_from_proto(e: models_pb2.Explainability) -> Explainability:
    calibration = None
    if e.HasField("calibration"):
        c = e.calibration
        calibration = Calibration(tuple(c.prob_pred), tuple(c.prob_true), tuple(c.counts))
    return Explainability(
        e.metric, e.rows, tuple(Importance(i.feature, i.mean, i.std) for i in e.importances),
        tuple(Dependence(d.feature, tuple(d.grid), tuple(d.average)) for d in e.partial_dependence), calibration,
        dict(e.feature_means))
