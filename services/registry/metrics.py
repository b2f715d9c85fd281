"""Every Prometheus metric of the registry (consumer lag is the bus's one gauge, not ours)."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["CANDIDATES", "PROMOTIONS", "VERDICTS"]

CANDIDATES = Counter("mlops_registry_candidates_total", "Candidates consumed, by outcome", ["outcome"])
PROMOTIONS = Counter("mlops_registry_promotions_total", "Champion changes announced on model.promoted, by action",
                     ["model", "action"])
VERDICTS = Counter("mlops_registry_verdicts_total", "Challenger verdicts consumed from challenger.verdicts, by "
                   "verdict and outcome (applied | duplicate | stale | invalid)", ["model", "verdict", "outcome"])
