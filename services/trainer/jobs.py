"""Retrain requests as plain values, and how a burst of them becomes one training per (model, seed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetrainAsk:
    """One retrain request, decoupled from its protobuf."""

    model_name: str
    request_id: str
    reason: str = ""
    detector: str = ""
    requested_at_ms: int = 0
    requested_by: str = ""
    seed: int | None = None


@dataclass(frozen=True)
class RetrainJob:
    """One training that answers every request in `request_ids`; `primary` is the latest of them."""

    model_name: str
    seed: int
    primary: RetrainAsk
    request_ids: tuple[str, ...]


def coalesce(asks: Sequence[RetrainAsk], default_model: str, default_seed: int) -> list[RetrainJob]:
    """Group requests by (model, seed) in order of first appearance; each group trains once, recorded under its
    latest request (by request time, then arrival) with every request id kept for lineage."""
    groups: dict[tuple[str, int], list[RetrainAsk]] = {}
    for ask in asks:
        key = (ask.model_name or default_model, default_seed if ask.seed is None else ask.seed)
        groups.setdefault(key, []).append(ask)
    jobs = []
    for (model, seed), members in groups.items():
        latest = max(enumerate(members), key=lambda im: (im[1].requested_at_ms, im[0]))[1]
        ids = tuple(dict.fromkeys(m.request_id for m in members if m.request_id))
        jobs.append(RetrainJob(model, seed, latest, ids))
    return jobs
