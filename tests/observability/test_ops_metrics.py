"""Integration: the trainer, registry and inference processes serve their key Prometheus metrics on their ops
port (ingest, features and monitor are scraped by test_trace_end_to_end.py while they carry a trace)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlops.settings import KafkaSettings, RedisSettings
from obs_helpers import ServiceProcess, metric_names, running, wait_for

KEY_METRICS = {
    "trainer": {"mlops_trainer_trainings_total", "mlops_trainer_training_seconds", "mlops_trainer_requests_total"},
    "registry": {"mlops_registry_candidates_total", "mlops_registry_promotions_total"},
    "inference": {"mlops_inference_request_seconds", "mlops_inference_batch_rows", "mlops_inference_model_in_service",
                  "mlops_inference_requests_total"},
}

pytestmark = pytest.mark.slow


@pytest.fixture
def processes(kafka_settings: KafkaSettings, redis_settings: RedisSettings,
              tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    with running(KEY_METRICS, kafka_settings, redis_settings, tmp_path) as procs:
        yield procs


def test_each_service_serves_its_key_metrics(processes: dict[str, ServiceProcess]) -> None:
    for name, wanted in KEY_METRICS.items():
        proc = processes[name]

        def scrape(proc: ServiceProcess = proc) -> str | None:
            assert proc.proc.poll() is None, f"{proc.name} exited:\n{proc.log_tail()}"
            status, body = proc.get("/metrics")
            return body if status == 200 else None

        body = wait_for(scrape, 60.0, 0.3)
        assert isinstance(body, str), f"{name}: no /metrics within 60 s:\n{proc.log_tail()}"
        assert wanted <= metric_names(body), f"{name} lacks {wanted - metric_names(body)}"
        assert proc.get("/healthz")[0] == 200
