"""What judges a candidate: its model's declaration in the revision in force (gate and rollout policy), and the
offline gate run on its holdout against the champion's predictions on the same rows."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from mlops.definitions.labels import LabelError, check_label
from mlops.definitions.model import Model, RolloutPolicy
from mlops.definitions.revision import Revision
from mlops.evaluation import scores

from services.registry.core import gate
from services.registry.core.slices import SliceReport, slice_report
from services.registry.core.state import CandidateInfo, Holdout, VersionState
from services.registry.errors import ArtifactRejected, InvalidCandidate

__all__ = ["FetchArtifact", "declared", "judge", "rollout_of"]

log = logging.getLogger("mlops.registry")

FetchArtifact = Callable[[str], bytes]  # sha256 → verified bytes; raises ArtifactRejected


def declared(revision: Revision | None, name: str) -> Model | None:
    if revision is None:
        return None
    return next((m for m in revision.definitions.models if m.name == name), None)


def rollout_of(revision: Revision | None, name: str) -> RolloutPolicy:
    """The model's declared rollout; an undeclared model gets the default (offline, with a rollback guard)."""
    model = declared(revision, name)
    return model.rollout if model is not None else RolloutPolicy()


def judge(fetch: FetchArtifact, cand: CandidateInfo, holdout: Holdout, champ: VersionState | None,
          revision: Revision) -> tuple[dict[str, float], dict[str, float] | None, gate.GateDecision,
                                       SliceReport | None]:
    """Judge the candidate by its model's declared policy: score it and the champion on the same holdout rows,
    overall and per slice, and decide. An undeclared model, or inputs other than the declared features, is
    rejected unscored; a champion that cannot be scored leaves the challenger judged alone, and the reason
    says so."""
    model = declared(revision, cand.model_name)
    if model is None:
        return {}, None, gate.undeclared(cand.model_name, [m.name for m in revision.definitions.models],
                                         revision.number), None
    if tuple(cand.feature_names) != model.features:
        return {}, None, gate.mismatched(model.name, cand.feature_names, model.features, revision.number), None
    _check_labels(model, holdout)
    policy = gate.GatePolicy.of(model, revision.number, revision.definitions.slices(model))
    onnx = fetch(cand.sha256)
    try:
        cand_out = gate.predict(onnx, cand.feature_names, holdout, policy.task, policy.classes)
    except Exception as exc:
        raise ArtifactRejected(cand.sha256, f"cannot be scored with onnxruntime: {exc}") from exc
    cand_metrics = scores(policy.task, holdout.y, cand_out, policy.classes)
    champ_out: np.ndarray | None = None
    if champ is not None:
        try:
            champ_out = gate.predict(fetch(champ.candidate.sha256), champ.candidate.feature_names,
                                     holdout, policy.task, policy.classes)
        except Exception as exc:
            log.warning("champion cannot be scored", extra={"fields": {"error": str(exc)}})
    champ_metrics = None if champ_out is None else scores(policy.task, holdout.y, champ_out, policy.classes)
    slices = slice_report(policy.attributes, policy.slices, policy.task, policy.metric,
                          policy.higher_is_better, holdout.feature_names, holdout.X, holdout.y, cand_out,
                          champ_out, champ.version if champ else "", policy.classes)
    decision = gate.decide(policy, cand_metrics, champ_metrics, champ.version if champ else "", slices)
    if champ is not None and champ_metrics is None:
        decision = gate.GateDecision(decision.promote, f"{decision.reason} (champion v{champ.version} "
                                     "could not be scored on this holdout)")
    return cand_metrics, champ_metrics, decision, slices


def _check_labels(model: Model, holdout: Holdout) -> None:
    """Holdout labels must fit the model's task (0/1, a declared class, a finite number), or nothing is judged."""
    for value in np.unique(holdout.y):
        try:
            check_label(model, float(value))
        except LabelError as exc:
            raise InvalidCandidate(f"holdout label {exc}") from None
