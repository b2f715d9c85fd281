"""Prometheus metrics of the inference service (process-wide, like the default registry they live in)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# model and version: the version that answered; a failed request names the model it asked for when that model is
# loaded ("unknown" otherwise: a client's typo must not mint a series) and version "" (none answered)
REQUESTS = Counter("mlops_inference_requests_total", "ModelInfer requests by gRPC status code, model and version",
                   ["code", "model", "version"])
LATENCY = Histogram(
    "mlops_inference_request_seconds", "ModelInfer latency in the server, by model and version",
    ["model", "version"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
BATCH_ROWS = Histogram(
    "mlops_inference_batch_rows", "Rows per onnxruntime call (after adaptive batching)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
MODEL_IN_SERVICE = Gauge(
    "mlops_inference_model_in_service", "1 for the champion version each model serves", ["model", "version"]
)
PROMOTIONS_REFUSED = Counter(
    "mlops_inference_promotions_refused_total", "model.promoted records not applied: unsigned or badly signed "
    "while MLOPS_SECURITY_PROMOTION_KEY is set (no model label: a forged record must not mint series)"
)
MODEL_SWAPS = Counter("mlops_inference_model_swaps_total", "Champion changes applied", ["model"])
CHALLENGER_TRAFFIC = Gauge(
    "mlops_inference_challenger_traffic_fraction", "Share of requests each model's second version is mirrored "
    "(role shadow, guard) or answers (role canary); 0 once withdrawn", ["model", "version", "role"]
)
CHALLENGER_REQUESTS = Counter(
    "mlops_inference_challenger_requests_total", "Requests a second version answered (canary) or scored off the "
    "response path (shadow, guard)", ["model", "version", "role"]
)
MIRROR_DROPPED = Counter(
    "mlops_inference_mirror_dropped_total", "Mirrored requests (shadow, guard) not scored: queue_full (clients never "
    "wait for the mirror), inputs (the second version reads features the request did not bring), failed",
    ["model", "role", "reason"],
)
MIRROR_QUEUE_ROWS = Gauge("mlops_inference_mirror_queue_rows", "Rows waiting for their second version")
PREDICTIONS_LOGGED = Counter("mlops_inference_prediction_logs_total",
                             "Served rows the prediction log delivered to Kafka (acknowledged)")
PREDICTIONS_DROPPED = Counter(
    "mlops_inference_prediction_logs_dropped_total",
    "Served rows the prediction log dropped: buffer_full, delivery_failed (not acknowledged in time), failed",
    ["reason"],
)


def observe_request(code: str, model: str, version: str, seconds: float) -> None:
    """One ModelInfer request answered with gRPC status `code` after `seconds`."""
    REQUESTS.labels(code, model, version).inc()
    LATENCY.labels(model, version).observe(seconds)
