"""Prometheus metrics of the features service (its consumer lag is the shared `mlops.bus.CONSUMER_LAG`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPDATES = Counter("mlops_features_updates_total", "View updates (one per event and view of its source) written to "
                  "features.log.", ["view"])
REJECTED = Counter("mlops_features_rejected_total", "Event records skipped: undecodable, of no declared source "
                   "(unknown_source, or no_source: unnamed while several sources are declared), or duplicate (an "
                   "event id its views have folded already: a replay after a crash).", ["reason"])
REVISION = Gauge("mlops_features_definitions_revision", "The definitions revision in force (0: none yet).")
PROCESSING = Histogram(
    "mlops_features_processing_seconds",
    "Time per event to fold a batch into the tables and write the online view (batch time / batch size).",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
BATCH_SIZE = Histogram(
    "mlops_features_batch_size", "Events per processed batch.", buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
)
STORE_RETRIES = Counter("mlops_features_store_retries_total", "Batch writes to the online store retried because "
                        "Redis was unavailable (the batch waits, unacked).")
ONLINE_REBUILDS = Counter("mlops_features_online_rebuilds_total", "Rebuilds of the online store from "
                          "features.log after its marker key was found gone (a Redis that lost its data).")
FRESHNESS = Histogram(
    "mlops_features_freshness_seconds",
    "Event ingest time → online view written in Redis.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
