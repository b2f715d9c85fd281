"""The monitor's realised metric (mlops_monitor_realised_metric): the serving version's accuracy (classification) or
MAE (regression) over its latest joined labels, published once the recent window is full, and dropped for a
version no longer served — what the RealisedMetricBelowFloor alert compares with the gate's floor."""

from __future__ import annotations

from mlops.definitions import load, merge
from monitor_helpers import DELIVERY, SEA, delivery_samples, interleave, sea_samples
from prometheus_client import REGISTRY

from services.monitor import DriftMonitor, MonitorConfig, MonitorSettings
from services.monitor.metrics import REALISED, CounterSync


def realised(model: str, version: str, metric: str) -> float | None:
    return REGISTRY.get_sample_value("mlops_monitor_realised_metric",
                                     {"model": model, "version": version, "metric": metric})


def feed(m: DriftMonitor, samples) -> None:  # noqa: ANN001
    for s in samples:  # each label right after its prediction
        m.observe_prediction(s.prediction)
        m.observe_label(s.prediction.model_name, s.label)


def test_realised_metric_per_serving_version() -> None:
    settings = MonitorSettings()
    m = DriftMonitor(settings, config=MonitorConfig.of(merge(load(SEA), load(DELIVERY)), revision=1))
    sync = CounterSync()
    REALISED.clear()  # the registry is process-wide: other tests' monitors published theirs
    few = settings.window_size // 2
    feed(m, interleave(sea_samples(few, None), delivery_samples(few, None)))
    sync.sync(m)
    assert realised("sea", "1", "accuracy") is None  # the recent window is not full yet

    feed(m, interleave(sea_samples(1_000, None, start_ms=10**12), delivery_samples(1_000, None, start_ms=10**12)))
    sync.sync(m)
    assert realised("sea", "1", "accuracy") == 1.0  # the model learned SEA's rule exactly
    assert 2.0 < realised("delivery_time", "1", "mae") < 3.0  # it misses only the noise (sigma 3 minutes)
    assert realised("sea", "1", "mae") is None

    feed(m, sea_samples(2 * settings.window_size, None, start_ms=2 * 10**12, version="2"))
    sync.sync(m)
    assert realised("sea", "1", "accuracy") is None  # v1 no longer serves: its series is gone
    assert realised("sea", "2", "accuracy") == 1.0
