"""The champion/challenger gate: score ONNX models on the same holdout rows and decide."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.registry.core.state import Holdout

__all__ = ["LOWER_IS_BETTER", "METRICS", "GateDecision", "GatePolicy", "decide", "score"]

LOWER_IS_BETTER = frozenset({"logloss"})
METRICS = ("auc", "accuracy", "logloss")


def score(onnx_bytes: bytes, feature_names: tuple[str, ...], holdout: Holdout) -> dict[str, float]:
    """auc / accuracy / logloss of the model on `holdout`; columns are picked by the model's feature names."""
    import onnxruntime as ort
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    missing = [n for n in feature_names if n not in holdout.feature_names]
    if missing:
        raise ValueError(f"holdout lacks features {missing}")
    cols = [holdout.feature_names.index(n) for n in feature_names]
    X = np.ascontiguousarray(holdout.X[:, cols], dtype=np.float32)  # noqa: N806
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    outputs = [o.name for o in sess.get_outputs()]
    out_name = "probabilities" if "probabilities" in outputs else outputs[-1]
    proba = np.asarray(sess.run([out_name], {input_name: X})[0])
    p = np.clip(proba[:, 1].astype(np.float64), 1e-15, 1 - 1e-15)
    y = holdout.y
    return {
        "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan"),
        "accuracy": float(accuracy_score(y, (p >= 0.5).astype(np.float64))),
        "logloss": float(log_loss(y, p, labels=[0.0, 1.0])),
    }


@dataclass(frozen=True)
class GatePolicy:
    metric: str = "auc"
    margin: float = 0.0
    floor: float = 0.6

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"gate metric must be one of {METRICS}, not {self.metric!r}")


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def decide(policy: GatePolicy, candidate: dict[str, float], champion: dict[str, float] | None,
           champion_version: str = "") -> GateDecision:
    m = policy.metric
    c = candidate.get(m, float("nan"))
    lower = m in LOWER_IS_BETTER
    if np.isnan(c):
        return GateDecision(False, f"candidate {m} is undefined on its holdout")
    if champion is None:
        ok = c <= policy.floor if lower else c >= policy.floor
        rel = "<=" if lower else ">="
        return GateDecision(ok, f"first model: {m} {c:.4f} {'passes' if ok else 'fails'} the floor "
                                f"({m} {rel} {policy.floor:g})")
    h = champion.get(m, float("nan"))
    if np.isnan(h):
        return GateDecision(True, f"champion v{champion_version} {m} is undefined on this holdout; "
                                  f"candidate {m} {c:.4f}")
    gain = (h - c) if lower else (c - h)
    ok = gain > policy.margin
    verdict = "beats" if ok else "does not beat"
    return GateDecision(ok, f"candidate {m} {c:.4f} {verdict} champion v{champion_version} {m} {h:.4f} "
                            f"by more than the margin {policy.margin:g} (gain {gain:+.4f}) on the same "
                            "holdout rows")
