"""The champion/challenger gate, by each model's declared policy: score ONNX models on the same holdout rows
through the task's output, with the task's metrics (`mlops.evaluation`, shared with the trainer and the monitor),
then decide by the declared metric, margin and floor — and, when the model declares slice checks, per slice of
the holdout (`slices.py`): a challenger better overall but worse on one slice is refused, naming the slice."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from mlops.definitions.model import Model, SliceAttribute, SlicePolicy, Task
from mlops.evaluation import ONNX_OUTPUT, better, scores

from services.registry.core.slices import SliceReport, check_slices
from services.registry.core.state import Holdout

__all__ = ["GateDecision", "GatePolicy", "decide", "mismatched", "predict", "score", "undeclared"]


@dataclass(frozen=True)
class GatePolicy:
    """One model's gate as the revision in force declares it (`models[].gate`, the task's default metric)."""

    model: str
    task: Task
    metric: str
    higher_is_better: bool
    margin: float = 0.0
    floor: float | None = None  # a minimum when higher is better, a maximum otherwise
    classes: tuple[int, ...] | None = None
    revision: int = 0  # the definitions revision the policy comes from, named in every decision
    slices: SlicePolicy | None = None  # the declared slice checks (none: slices reported, not judged)
    attributes: tuple[SliceAttribute, ...] = ()  # what the holdout is sliced by (declared and sensitive)

    @classmethod
    def of(cls, model: Model, revision: int, attributes: Sequence[SliceAttribute] = ()) -> GatePolicy:
        return cls(model.name, model.task, model.metric, model.higher_is_better, model.gate.margin,
                   model.gate.floor, model.classes, revision, model.gate.slices, tuple(attributes))

    def passes_floor(self, value: float) -> bool:
        if self.floor is None:
            return True
        return value >= self.floor if self.higher_is_better else value <= self.floor

    def describe(self) -> str:
        floor = "none" if self.floor is None else f"{self.metric} {'>=' if self.higher_is_better else '<='} " \
                                                  f"{self.floor:g}"
        s = self.slices
        checks = "" if s is None else "".join(
            f", {k} {v:g}" for k, v in (("max_slice_loss", s.max_slice_loss), ("slice_floor", s.slice_floor),
                                        ("max_slice_gap", s.max_slice_gap)) if v is not None)
        sliced = f", slices by {', '.join(a.name for a in self.attributes)}{checks}" if self.attributes else ""
        return (f"{self.task.value} model, {self.metric} ({'higher' if self.higher_is_better else 'lower'} is "
                f"better), margin {self.margin:g}, floor {floor}{sliced}, definitions revision {self.revision}")


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def score(onnx_bytes: bytes, feature_names: Sequence[str], holdout: Holdout, task: Task,
          classes: Sequence[int] | None = None) -> dict[str, float]:
    """Every metric of `task` for the model on `holdout` (see `predict`)."""
    return scores(task, holdout.y, predict(onnx_bytes, feature_names, holdout, task, classes), classes)


def predict(onnx_bytes: bytes, feature_names: Sequence[str], holdout: Holdout, task: Task,
            classes: Sequence[int] | None = None) -> np.ndarray:
    """The model's task output on `holdout`; columns are picked by the model's feature names and the task's output
    (`ONNX_OUTPUT`) is read. Raises ValueError naming what does not fit."""
    import onnxruntime as ort

    missing = [n for n in feature_names if n not in holdout.feature_names]
    if missing:
        raise ValueError(f"holdout lacks features {missing}")
    cols = [holdout.feature_names.index(n) for n in feature_names]
    X = np.ascontiguousarray(holdout.X[:, cols], dtype=np.float32)  # noqa: N806
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"expected one input tensor, the model has {[i.name for i in inputs]}")
    wanted, outputs = ONNX_OUTPUT[task], [o.name for o in sess.get_outputs()]
    if wanted not in outputs:
        raise ValueError(f"a {task.value} model must have the output {wanted!r}; this one has {outputs}")
    out = np.asarray(sess.run([wanted], {inputs[0].name: X})[0])
    if task is Task.REGRESSION:
        if out.size != len(X):
            raise ValueError(f"output {wanted!r} has shape {list(out.shape)}, expected [{len(X)}, 1]")
    else:
        width = 2 if task is Task.BINARY else len(classes or ())
        if out.ndim != 2 or out.shape != (len(X), width):
            raise ValueError(f"output {wanted!r} has shape {list(out.shape)}, expected [{len(X)}, {width}]")
    return out


def decide(policy: GatePolicy, candidate: dict[str, float], champion: dict[str, float] | None,
           champion_version: str = "", slices: SliceReport | None = None) -> GateDecision:
    """The overall decision (`decide_overall`), then the declared slice checks: a challenger that passes overall
    but fails a slice is refused, the reason naming that slice with its figures and the overall verdict."""
    overall = decide_overall(policy, candidate, champion, champion_version)
    if not overall.promote:
        return overall
    failing = check_slices(policy.slices, slices, policy.task)
    if failing is None:
        return overall
    return GateDecision(False, f"refused on a slice: {failing}; overall it passed: {overall.reason}")


def decide_overall(policy: GatePolicy, candidate: dict[str, float], champion: dict[str, float] | None,
                   champion_version: str = "") -> GateDecision:
    """The floor first (it holds with or without a champion), then the margin over the champion on the same
    rows. Every reason names the metric, the values and the policy they were judged by."""
    m = policy.metric
    c = candidate.get(m, math.nan)
    policy_text = f"gate: {policy.describe()}"
    if math.isnan(c):
        return GateDecision(False, f"candidate {m} is undefined on its holdout; {policy_text}")
    if not policy.passes_floor(c):
        return GateDecision(False, f"candidate {m} {c:.4f} fails the floor "
                                   f"({m} {'>=' if policy.higher_is_better else '<='} {policy.floor:g}); "
                                   f"{policy_text}")
    if champion is None:
        floor = "passes the floor" if policy.floor is not None else "no floor declared"
        return GateDecision(True, f"first model: {m} {c:.4f} {floor}; {policy_text}")
    h = champion.get(m, math.nan)
    if math.isnan(h):
        return GateDecision(True, f"champion v{champion_version} {m} is undefined on this holdout; "
                                  f"candidate {m} {c:.4f}; {policy_text}")
    gain = better(policy.task, m, c, h)
    ok = gain > policy.margin
    verdict = "beats" if ok else "does not beat"
    return GateDecision(ok, f"candidate {m} {c:.4f} {verdict} champion v{champion_version} {m} {h:.4f} "
                            f"by more than the margin {policy.margin:g} (gain {gain:+.4f}) on the same "
                            f"holdout rows; {policy_text}")


def undeclared(model: str, declared: Sequence[str], revision: int) -> GateDecision:
    """The decision for a candidate of a model the revision in force does not declare: nothing to judge it by."""
    return GateDecision(False, f"model {model!r} is not declared in definitions revision {revision}; "
                               f"declared models: {sorted(declared) or 'none'}")


def mismatched(model: str, features: Sequence[str], declared: Sequence[str], revision: int) -> GateDecision:
    """The decision for a candidate whose inputs are not the model's declared features: served, it would be fed
    other columns than it was trained on."""
    return GateDecision(False, f"candidate features {list(features)} are not the features model {model!r} "
                               f"declares in definitions revision {revision}: {list(declared)}")
