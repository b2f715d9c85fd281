"""One metric vocabulary: consumer lag is only the bus's `mlops_consumer_lag_records{topic,partition,group}` (its
series dropped when a partition is no longer assigned), inference requests and latency carry model and version,
trainings carry the model, and the monitor's realised metric follows the serving version."""

from __future__ import annotations

import importlib

from mlops.bus import CONSUMER_LAG, LagSeries
from mlops.definitions import load
from mlops_tools.cli.services_cmd import SERVICES
from mlops_tools.examples import definitions_path
from prom_helpers import exported_series
from prometheus_client import REGISTRY

from services.inference import metrics as inference
from services.monitor import metrics as monitor
from services.trainer import metrics as trainer


def _lag_series(group: str) -> set[tuple[str, str]]:
    return {(s.labels["topic"], s.labels["partition"]) for m in CONSUMER_LAG.collect() for s in m.samples
            if s.labels["group"] == group}


def test_consumer_lag_is_one_metric() -> None:
    lag_like = {n for n in exported_series() if "lag" in n}
    # the monitor's event lag is stream time in seconds (wall clock minus the last prediction's timestamp), not
    # records behind a partition's high watermark
    assert lag_like == {"mlops_consumer_lag_records", "mlops_monitor_event_lag_seconds"}
    assert CONSUMER_LAG._labelnames == ("topic", "partition", "group")


def test_lag_series_of_a_revoked_partition_is_removed() -> None:
    series = LagSeries("vocab-test")
    series.update({("events", 0): 5, ("events", 1): 7})
    assert _lag_series("vocab-test") == {("events", "0"), ("events", "1")}
    series.update({("events", 1): 3})  # partition 0 revoked
    assert _lag_series("vocab-test") == {("events", "1")}
    series.clear()
    assert _lag_series("vocab-test") == set()


def test_inference_and_trainer_labels() -> None:
    assert inference.REQUESTS._labelnames == ("code", "model", "version")
    assert inference.LATENCY._labelnames == ("model", "version")
    assert trainer.TRAININGS._labelnames == ("model", "outcome")
    inference.observe_request("OK", "vocab", "3", 0.002)
    assert REGISTRY.get_sample_value("mlops_inference_requests_total",
                                     {"code": "OK", "model": "vocab", "version": "3"}) == 1
    assert REGISTRY.get_sample_value("mlops_inference_request_seconds_count", {"model": "vocab", "version": "3"}) == 1


def test_gate_floors_follow_the_definitions() -> None:
    models = {m.name: m for name in ("sea", "delivery") for m in load(definitions_path(name)).models}
    monitor.show_gate_floors(models.values())
    assert REGISTRY.get_sample_value("mlops_monitor_gate_floor",
                                     {"model": "sea", "metric": "logloss", "higher_is_better": "false"}) == 0.6
    assert REGISTRY.get_sample_value("mlops_monitor_gate_floor",
                                     {"model": "delivery_time", "metric": "mae", "higher_is_better": "false"}) == 12.0
    monitor.show_gate_floors([models["sea"]])  # a revision without delivery_time: its floor disappears
    assert REGISTRY.get_sample_value("mlops_monitor_gate_floor",
                                     {"model": "delivery_time", "metric": "mae", "higher_is_better": "false"}) is None


def test_every_service_metrics_module_imports() -> None:
    for name in SERVICES:
        importlib.import_module(f"services.{name}.metrics")
