"""The monitor's Prometheus observer: every drift deferred by a cool-down is counted, but the log names a persisting
one once per model, version and kind per interval (a long cool-down would otherwise flood the log)."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from services.monitor.core import Detection
from services.monitor.metrics import PrometheusObserver


def deferred() -> float:
    return REGISTRY.get_sample_value("mlops_monitor_deferred_drifts_total", {"model": "obs", "kind": "concept"}) or 0.0


def test_deferred_drifts_are_all_counted_and_logged_once_per_interval(caplog) -> None:  # noqa: ANN001
    observer = PrometheusObserver()
    v1 = Detection("obs", "1", "concept", "ErrorWindows", "error_rate", "", 0.3, 0, 0, strong=True)
    v2 = Detection("obs", "2", "concept", "ErrorWindows", "error_rate", "", 0.3, 0, 0, strong=True)
    before = deferred()
    with caplog.at_level(logging.WARNING, logger="mlops.monitor"):
        for _ in range(5):
            observer.on_detection(v1, "deferred")
        observer.on_detection(v2, "deferred")  # another version: its own first line
        observer.on_detection(v1, "cooldown")  # not deferred: counted as detections only, not logged here
    assert deferred() - before == 6
    lines = [r for r in caplog.records if "cool-down" in r.getMessage()]
    assert [r.fields["version"] for r in lines] == ["1", "2"]  # type: ignore[attr-defined]

    observer.DEFERRED_LOG_EVERY_S = 0.0  # the interval over: the next deferral of v1 is logged again
    with caplog.at_level(logging.WARNING, logger="mlops.monitor"):
        observer.on_detection(v1, "deferred")
    assert len([r for r in caplog.records if "cool-down" in r.getMessage()]) == 3
