"""Retrain requests and bring-your-own registrations as plain values, coalesced into jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, is_dataclass, replace
from typing import TypeVar

import numpy as np

from services.trainer.errors import TrainerError

__all__ = ["RetrainAsk", "RetrainJob", "coalesce", "failure_reason", "rows_since", "since_change"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetrainAsk:
    """One retrain request (or, with `artifact_sha256`, a registration of a team's own ONNX model), decoupled from
    its protobuf."""

    model_name: str
    request_id: str
    reason: str = ""
    detector: str = ""
    requested_at_ms: int = 0
    requested_by: str = ""
    seed: int | None = None  # None: the model's declared training.seed
    artifact_sha256: str = ""  # bring your own: the ONNX bytes on model.artifacts to check, score and propose
    change_point_ms: int = 0  # the monitor's estimate of when the new concept began (0: unknown)

    @property
    def byo(self) -> bool:
        return bool(self.artifact_sha256)


@dataclass(frozen=True)
class RetrainJob:
    """One training (or one registration) that answers every request in `request_ids`; `primary` is the latest."""

    model_name: str
    seed: int | None
    primary: RetrainAsk
    request_ids: tuple[str, ...]

    @property
    def byo(self) -> bool:
        return self.primary.byo


def coalesce(asks: Sequence[RetrainAsk], default_model: str) -> list[RetrainJob]:
    """Group requests by (model, seed, artifact) in order of first appearance; each group runs once, recorded under
    its latest request (by request time, then arrival) with every request id kept for lineage. A registration only
    ever joins registrations of the same bytes for the same model (same outcome)."""
    groups: dict[tuple[str, int | None, str], list[RetrainAsk]] = {}
    for ask in asks:
        key = (ask.model_name or default_model, ask.seed, ask.artifact_sha256)
        groups.setdefault(key, []).append(ask)
    jobs = []
    for (model, seed, _sha), members in groups.items():
        latest = max(enumerate(members), key=lambda im: (im[1].requested_at_ms, im[0]))[1]
        ids = tuple(dict.fromkeys(m.request_id for m in members if m.request_id))
        jobs.append(RetrainJob(model, seed, latest, ids))
    return jobs


def rows_since(label_times_ms: np.ndarray, change_point_ms: int) -> np.ndarray:
    """Indices of the rows labelled at or after the change point (every row when it is unknown)."""
    if change_point_ms <= 0:
        return np.arange(len(label_times_ms))
    return np.flatnonzero(np.asarray(label_times_ms) >= change_point_ms)


def since_change(data: T, change_point_ms: int) -> T:
    """The training set restricted to the new concept: rows labelled at or after the change point. A retrain after
    a concept drift must not learn the old concept again from the rows before it (its gate would then reject it)."""
    if change_point_ms <= 0:
        return data
    assert is_dataclass(data) and not isinstance(data, type)
    keep = rows_since(data.label_times_ms, change_point_ms)  # type: ignore[attr-defined]
    ids = data.entity_ids  # type: ignore[attr-defined]
    return replace(data, X=data.X[keep], y=data.y[keep], label_times_ms=data.label_times_ms[keep],  # type: ignore
                   entity_ids=[ids[i] for i in keep])


def failure_reason(exc: Exception) -> str:
    """What a TrainingFailed says: our own errors carry a complete message; anything else is named by type."""
    return str(exc) if isinstance(exc, TrainerError) else f"{type(exc).__name__}: {exc}"
