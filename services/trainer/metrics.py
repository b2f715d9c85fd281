"""Prometheus metrics of the trainer (one definition per process)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TRAININGS = Counter("mlops_trainer_trainings_total", "Trainings run, by model and outcome (candidate, failed)",
                    ["model", "outcome"])
REQUESTS = Counter("mlops_trainer_requests_total", "Retrain requests consumed")
COALESCED = Counter("mlops_trainer_requests_coalesced_total", "Retrain requests answered by another's training")
LABELS_INVALID = Counter("mlops_trainer_labels_invalid_total",
                         "Labels skipped because they do not fit their model (decode_label), by model", ["model"])
DURATION = Histogram("mlops_trainer_training_seconds", "Wall time of one training (data → candidate)",
                     buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160))
