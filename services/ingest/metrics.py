"""Prometheus metrics of the ingest service (one definition per process). Its consumer lag is the bus's
`mlops_consumer_lag_records{topic,partition,group}`, kept by `mlops.bus.run_loop`."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Published once per batch when it is handled (the bus loop then flushes and commits it) — not per record (hot path).
RECORDS_IN = Counter("mlops_ingest_records_in_total", "Raw records consumed from raw.events and handled.")
RECORDS_OUT = Counter("mlops_ingest_records_out_total", "Validated Event records produced to events.")
RECORDS_DLQ = Counter(
    "mlops_ingest_records_dlq_total", "Rejected records produced to events.dlq, by error type.", ["error_type"]
)
PROCESSING = Histogram(
    "mlops_ingest_processing_seconds",
    "Mean time to validate, convert and queue one record, observed once per batch.",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25),
)
BATCH = Histogram(
    "mlops_ingest_batch_seconds", "Time to handle one batch: validate, convert and queue every record.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
