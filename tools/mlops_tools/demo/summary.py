"""The demo's figures and closing summary: what the loop did (`DemoResult`) and the table `mlops demo` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DemoResult", "TimelineEvent"]


@dataclass(frozen=True)
class TimelineEvent:
    t_s: float  # seconds since the stream started
    what: str


@dataclass
class DemoResult:
    tag: str
    drift_at: int | None
    records_produced: int = 0
    labels_sent: int = 0
    dlq: int = 0
    drift_t_s: float | None = None
    detections: list[tuple[float, int, str]] = field(default_factory=list)  # (t_s, records since drift, reason)
    false_alarms: int = 0  # monitor requests before the drift point (or in a no-drift run)
    retrains: int = 0  # trainings that answered a monitor request (candidates)
    monitor_requests: int = 0
    candidates: int = 0
    training_failures: list[str] = field(default_factory=list)
    gate: list[tuple[str, str, str]] = field(default_factory=list)  # (version, decision, reason)
    promoted: list[tuple[float, str]] = field(default_factory=list)  # (t_s, version)
    serving: dict[str, float] = field(default_factory=dict)  # version → t_s of its first response
    requests: int = 0
    failed_requests: int = 0
    last_error: str = ""
    accuracy: dict[tuple[str, bool], list[int]] = field(default_factory=dict)  # (version, drifted) → [hits, n]
    example_trace_id: str = ""
    traces_file: str = ""
    timeline: list[TimelineEvent] = field(default_factory=list)
    elapsed_s: float = 0.0
    interrupted: bool = False
    error: str = ""

    # --- derived figures ----------------------------------------------------------------------------------------
    def acc(self, version: str, drifted: bool) -> float | None:
        hits, n = self.accuracy.get((version, drifted), (0, 0))
        return hits / n if n else None

    def count(self, version: str, drifted: bool) -> int:
        return self.accuracy.get((version, drifted), (0, 0))[1]

    @property
    def detection_delay_s(self) -> float | None:
        if self.drift_t_s is None or not self.detections:
            return None
        return self.detections[0][0] - self.drift_t_s

    @property
    def detection_delay_records(self) -> int | None:
        return self.detections[0][1] if self.detections and self.drift_t_s is not None else None

    @property
    def v1(self) -> str | None:
        """The version the demo bootstrapped (the first one promoted)."""
        return self.promoted[0][1] if self.promoted else None

    @property
    def v2(self) -> str | None:
        """The first version promoted after the drift point."""
        if self.drift_t_s is None:
            return None
        return next((v for t, v in self.promoted if t >= self.drift_t_s), None)

    @property
    def loop_time_s(self) -> float | None:
        """Drift injected → the first response served by the new version."""
        v2 = self.v2
        if v2 is None or v2 not in self.serving or self.drift_t_s is None:
            return None
        return self.serving[v2] - self.drift_t_s

    def table(self) -> str:
        def pct(v: float | None, n: int) -> str:
            return f"{v * 100:6.2f} %  (n={n})" if v is not None else "    -"

        def sec(v: float | None) -> str:
            return f"{v:.1f} s" if v is not None else "-"

        v1, v2 = self.v1 or "1", self.v2
        rows = [
            ("records produced / DLQ'd", f"{self.records_produced} / {self.dlq}  ({self.labels_sent} labels)"),
            ("drift injected", "none (control run)" if self.drift_at is None else
             f"record {self.drift_at} at {sec(self.drift_t_s)}" if self.drift_t_s is not None else
             f"record {self.drift_at} (not reached)"),
            (f"v{v1} accuracy, pre-drift" if self.drift_at is not None else f"v{v1} accuracy",
             pct(self.acc(v1, False), self.count(v1, False))),
        ]
        if self.drift_at is not None:
            rows.append((f"v{v1} accuracy, post-drift", pct(self.acc(v1, True), self.count(v1, True))))
        if v2 is not None:
            rows.append((f"v{v2} accuracy, post-drift", pct(self.acc(v2, True), self.count(v2, True))))
        det = (f"{sec(self.detection_delay_s)} / {self.detection_delay_records} records"
               if self.detection_delay_s is not None else "not detected" if self.drift_at is not None else "-")
        rows += [
            ("detection delay", det),
            ("false alarms", str(self.false_alarms)),
            ("retrains (monitor-requested)", f"{self.retrains} ({self.monitor_requests} requests)"),
            ("gate decisions", "; ".join(f"v{v} {d}" for v, d, _ in self.gate) or "-"),
            (f"loop time drift → v{v2 or '2'} serving", f"{sec(self.loop_time_s)} (target <= 20 s)"
             if self.drift_at is not None else "-"),
            ("inference requests / failed", f"{self.requests} / {self.failed_requests}"),
            ("run time", sec(self.elapsed_s) + ("  (interrupted: partial)" if self.interrupted else "")),
        ]
        width = max(len(k) for k, _ in rows)
        lines = ["", "summary " + "─" * (width + 40)]
        lines += [f"  {k:<{width}}  {v}" for k, v in rows]
        if self.last_error:
            lines.append(f"  last request error: {self.last_error}")
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.traces_file:
            lines.append(f"  traces: {self.traces_file}")
            if self.example_trace_id:
                lines.append(f"  one prediction's trace: mlops trace {self.example_trace_id} "
                             f"--file {self.traces_file}")
        return "\n".join(lines)
