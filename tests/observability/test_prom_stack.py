"""The local stack's Prometheus (mlops_tools.stack.prometheus), for real: started and stopped idempotently in its
own run folder on a free port, scraping targets named in a file, evaluating deploy/prometheus/rules.yml — a drift
detection counted by the monitor's own metric turns into a firing DriftDetected alert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlops_tools.procs import free_port
from mlops_tools.stack import StackSettings
from mlops_tools.stack.prometheus import Prometheus
from prometheus_client import start_http_server
from testkit import wait_until

from services.monitor import metrics as monitor_metrics

pytestmark = pytest.mark.slow


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    prom = Prometheus(StackSettings(run_dir=tmp_path, prometheus_port=free_port()))
    yield prom
    prom.stop()


def test_scrapes_its_targets_and_fires_the_drift_alert(prometheus: Prometheus) -> None:
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")  # this process plays the monitor
    try:
        prometheus.write_targets({"monitor": port})
        assert prometheus.start() == "started"
        assert prometheus.status().state == "running"
        assert prometheus.start() == "already running"  # idempotent: re-reads its configuration instead

        def monitor_up() -> bool:
            targets = prometheus.active_targets()
            return [(t["labels"]["job"], t["health"]) for t in targets] == [("monitor", "up")]

        wait_until(monitor_up, 60, 0.5, message=lambda: str(prometheus.active_targets()))
        groups = {g["name"] for g in prometheus.api("rules")["groups"]}
        assert {"mlops-inference", "mlops-streaming", "mlops-services", "mlops-models"} <= groups

        monitor_metrics.DETECTIONS.labels("sea-test", "data", "KS", "retrain").inc()

        def drift_alert() -> list[dict[str, Any]]:
            return [a for a in prometheus.firing_alerts()
                    if a["labels"]["alertname"] == "DriftDetected" and a["labels"].get("model") == "sea-test"]

        wait_until(drift_alert, 60, 0.5, message=lambda: str(prometheus.firing_alerts()))
        assert drift_alert()[0]["labels"]["kind"] == "data", prometheus.firing_alerts()

        prometheus.remove_targets("services")  # dropped and marked stale: gone, not down
        assert prometheus.active_targets() == []
        # its series end with stale markers (a couple of scrape intervals later), not with a failed scrape
        wait_until(lambda: prometheus.api("query?query=up")["result"] == [], 30, 0.5,
                   message=lambda: str(prometheus.api("query?query=up")))
    finally:
        server.shutdown()
        thread.join(5)
    assert prometheus.stop() is True
    assert prometheus.stop() is False  # stops only what it started, once
    assert prometheus.status().state == "stopped"
