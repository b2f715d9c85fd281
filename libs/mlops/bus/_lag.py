"""The one consumer-lag gauge of the platform: records behind the high watermark, per topic, partition and group."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Gauge

__all__ = ["CONSUMER_LAG", "LagSeries", "set_lag"]

CONSUMER_LAG = Gauge(
    "mlops_consumer_lag_records",
    "High watermark minus the consumer's position, per assigned partition.",
    ["topic", "partition", "group"],
)


def set_lag(group: str, topic: str, partition: int, lag: int | None) -> None:
    """Set one partition's lag; `None` removes its series (the partition is no longer assigned here)."""
    labels = (topic, str(partition), group)
    if lag is None:
        try:
            CONSUMER_LAG.remove(*labels)
        except KeyError:  # never set: nothing to remove
            pass
    else:
        CONSUMER_LAG.labels(*labels).set(max(0, lag))


class LagSeries:
    """The lag series one consumer owns: `update` sets the current partitions and removes those it lost."""

    def __init__(self, group: str):
        self.group = group
        self._shown: set[tuple[str, int]] = set()

    def update(self, lags: Mapping[tuple[str, int], int]) -> None:
        for topic, partition in self._shown - lags.keys():
            set_lag(self.group, topic, partition, None)
        for (topic, partition), lag in lags.items():
            set_lag(self.group, topic, partition, lag)
        self._shown = set(lags)

    def clear(self) -> None:
        self.update({})
