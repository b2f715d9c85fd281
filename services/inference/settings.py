"""The inference service's settings (env prefix MLOPS_INFERENCE_)."""

from __future__ import annotations

import math
import os
from enum import StrEnum
from pathlib import Path

from mlops.settings import settings_config
from pydantic import Field
from pydantic_settings import BaseSettings

DEFAULT_METRICS_PORT = 9105


class PredictionOverflow(StrEnum):
    """What the prediction log does with a served batch when its buffer is full (Kafka slow or down)."""

    DROP_NEWEST = "drop-newest"
    DROP_OLDEST = "drop-oldest"


class InferenceSettings(BaseSettings):
    model_config = settings_config("MLOPS_INFERENCE_")

    host: str = Field("0.0.0.0", description="Address the gRPC server binds.")
    port: int = Field(8001, description="gRPC port (Triton's conventional 8001); 0 picks a free one.")
    rest: bool = Field(True, description="Serve KServe v2 REST (HTTP/JSON) beside gRPC, on rest_port.")
    rest_port: int = Field(8000, description="REST port (KServe's and Triton's conventional 8000); 0 picks a free "
                           "one.")
    server_name: str = Field("mlops-inference", description="Name reported by ServerMetadata.")
    default_model: str = Field("sea", description="Declared model served when a request names none; the name "
                               "model_path is served under.")
    definitions_file: Path | None = Field(
        None, description="A definitions YAML served as it is (standalone use, no Kafka); unset: the revision in "
        "force on the `definitions` topic, followed at run time."
    )
    model_path: Path | None = Field(None, description="ONNX file served as default_model's champion at start "
                                    "(standalone use, no Kafka).")
    model_version: str = Field("local", description="Version label of the model loaded from model_path.")
    watch_promotions: bool = Field(True, description="Follow model.promoted on Kafka and hot-swap champions.")
    retain_versions: int = Field(3, ge=1, description="Versions kept per model (requests may name any of them).")
    batching: bool = Field(True, description="Merge concurrent requests into one onnxruntime call.")
    max_batch_size: int = Field(256, ge=1, description="Most rows in one merged onnxruntime call.")
    max_batch_wait_ms: float = Field(
        0.0, ge=0.0, description="How long a batch waits for more rows; 0 merges only what queued meanwhile."
    )
    ort_workers: int = Field(2, ge=1, description="Threads running onnxruntime calls (merged batches in flight).")
    inline_max_rows: int | None = Field(
        None, ge=0, description="Merged batches of at most this many rows run on the event-loop thread (no thread "
        "hop); larger ones go to the ort_workers pool. 0: always the pool. Unset: max_batch_size where the "
        "process has fewer than 3 usable CPUs (a pool thread has no core of its own there and only adds thread "
        "hops and GIL hand-offs), else 16."
    )
    workers: int = Field(
        1, ge=1, description="Server processes sharing the gRPC port (SO_REUSEPORT; the kernel spreads connections, "
        "not requests, across them). Each loads its own model copy; worker i > 0 serves its ops endpoint on the "
        "metrics port + i."
    )
    worker_index: int = Field(
        0, ge=0, description="Set by worker 0 for the workers it starts (leave 0): a worker > 0 binds the port "
        "worker 0 bound and starts no workers of its own."
    )
    gil_switch_interval_ms: float = Field(
        1.0, gt=0.0, description="How long a Python thread may hold the GIL while another waits for it (Python's "
        "default is 5 ms). The request path shares the GIL with the prediction log, the span exporter and the "
        "mirror: each of their turns can hold a request that long. Set once per process at start."
    )
    ort_intra_op_threads: int = Field(1, ge=0, description="onnxruntime intra-op threads per call (0: default).")
    use_cuda: bool = Field(True, description="Try CUDAExecutionProvider first; falls back to CPU when it fails.")
    allow_nan: bool = Field(False, description="Accept NaN/Inf in an `input` tensor (online features may hold NaN: "
                            "a value not computed yet, or a missing entity's defaults).")
    max_request_rows: int = Field(8192, ge=1, description="Larger requests are refused (RESOURCE_EXHAUSTED).")
    max_message_bytes: int = Field(8 * 1024 * 1024, description="Largest gRPC message accepted or sent.")
    online_join: bool = Field(True, description="Accept entity ids and read their features from Redis (what a "
                              "model does with an unknown entity is its declared serving.missing_entity).")
    log_predictions: bool = Field(True, description="Send each served request to `predictions` as one columnar "
                                  "PredictionBatch (one per partition its entities hash to).")
    prediction_buffer_rows: int = Field(
        100_000, ge=1, description="Served rows waiting for the producer (Kafka slow or down) before "
        "prediction_overflow applies; every dropped row is counted in mlops_inference_prediction_logs_dropped_total."
    )
    prediction_overflow: PredictionOverflow = Field(
        PredictionOverflow.DROP_NEWEST, description="When the buffer is full: drop-newest refuses new batches "
        "(the log keeps the start of an outage), drop-oldest evicts the oldest queued ones (it keeps the latest); "
        "either way counted, and requests never wait."
    )
    prediction_log_interval_ms: float = Field(
        20.0, ge=0.0, description="While requests flow, the prediction log's thread wakes once per this interval "
        "and hands everything queued to the producer (not once per request: a thread wake-up costs more than a "
        "request's record). The log runs up to this much behind the responses."
    )
    prediction_linger_ms: float = Field(
        100.0, ge=0.0, description="How long the prediction log's producer gathers records into one produce request "
        "(librdkafka linger.ms; the services' 5 ms cost its network thread several times the CPU under load)."
    )
    prediction_delivery_timeout_s: float = Field(
        120.0, gt=0, description="How long a record may wait in the producer for the broker's acknowledgement "
        "(librdkafka message.timeout.ms); one not acknowledged by then is dropped and counted."
    )
    prediction_queue_records: int = Field(
        100_000, ge=1, description="Records (requests) the producer holds unacknowledged (librdkafka "
        "queue.buffering.max.messages); when full, served batches wait in the buffer."
    )
    shadow_queue_rows: int = Field(
        10_000, ge=1, description="Rows of mirrored requests (a shadow's or guard's share) waiting to be scored off "
        "the response path; a request that finds it full is not mirrored, counted in "
        "mlops_inference_mirror_dropped_total{reason=\"queue_full\"} (clients never wait for a second version)."
    )
    shadow_interval_ms: float = Field(
        50.0, ge=0.0, description="While mirrored requests flow, the mirror's thread wakes once per this interval, "
        "scores everything queued per version in one onnxruntime call and logs it as one batch (not once per "
        "request: fewer wake-ups and GIL hand-overs beside the event loop; 10 ms cost more CPU per request at 1k "
        "req/s). Shadow rows reach the log up to this much after the champion's."
    )
    shadow_nice: int = Field(
        10, ge=0, le=19, description="How much lower the mirror thread's CPU priority is than the request path's "
        "(its Linux nice value is raised by this much; the challenger's onnxruntime call runs on that thread): a "
        "shadow or guard costs clients less on a busy host, and when the host has no CPU to spare the mirror falls "
        "behind until its queue is full and drops (counted). 0: the same priority.",
    )
    artifact_timeout_s: float = Field(60.0, description="How long to wait for a promoted model's artifact bytes.")


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (a Kubernetes CPU limit)."""
    n = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def effective_inline_max_rows(settings: InferenceSettings, cpus: int | None = None) -> int:
    """`inline_max_rows`, or its default for this machine. Requests above max_batch_size still go to the pool, so
    one huge request does not stall the event loop for everyone else."""
    if settings.inline_max_rows is not None:
        return settings.inline_max_rows
    if cpus is None:
        cpus = usable_cpus()
    return settings.max_batch_size if cpus < 3 else 16
