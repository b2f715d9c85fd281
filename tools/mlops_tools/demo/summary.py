"""The demo's figures and closing summary: one `ModelLoop` per model (what its drift → retrain → promote loop did),
the run around them (`DemoResult`), and the table `mlops demo` prints — a row per model."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlops_tools.demo.challengers import LiveLoop

__all__ = ["DemoResult", "ModelLoop", "TimelineEvent"]


@dataclass(frozen=True)
class TimelineEvent:
    t_s: float  # seconds since the stream started
    what: str


@dataclass
class ModelLoop:
    """One model's loop: its stream (with its own drift point), detections, trainings, gate, versions served, and
    the quality of each version before and after the drift — accuracy (classification) or MAE (regression)."""

    model: str
    drift_at: int | None
    task: str = "binary"
    records_produced: int = 0
    labels_sent: int = 0
    drift_t_s: float | None = None
    detections: list[tuple[float, int, str]] = field(default_factory=list)  # (t_s, records since drift, reason)
    false_alarms: int = 0  # monitor requests before the drift point (or in a no-drift run)
    retrains: int = 0  # trainings that answered a monitor request (candidates)
    monitor_requests: int = 0
    outcomes_at_detection: int = 0  # gate decisions + training failures seen when the last detection came
    candidates: int = 0
    training_failures: list[str] = field(default_factory=list)
    gate: list[tuple[str, str, str]] = field(default_factory=list)  # (version, decision, reason)
    promoted: list[tuple[float, str]] = field(default_factory=list)  # (t_s, version)
    serving: dict[str, float] = field(default_factory=dict)  # version → t_s of its first response
    requests: int = 0  # answered requests (failed ones are counted apart)
    failed_requests: int = 0
    last_error: str = ""
    # (version, drifted) → [sum, n]: sum of hits (accuracy) or of absolute errors (MAE) over n served predictions
    quality: dict[tuple[str, bool], list[float]] = field(default_factory=dict)
    live: LiveLoop = field(default_factory=LiveLoop)  # challengers on live traffic, verdicts, audit, switches

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def metric(self) -> str:
        return "MAE" if self.regression else "accuracy"

    def score(self, prediction: float, label: float) -> float:
        """What one served prediction adds to `quality`: its absolute error, or 1 for a right class."""
        return abs(prediction - label) if self.regression else float(round(prediction) == round(label))

    def add(self, version: str, drifted: bool, prediction: float, label: float) -> None:
        q = self.quality.setdefault((version, drifted), [0.0, 0])
        q[0] += self.score(prediction, label)
        q[1] += 1

    def value(self, version: str, drifted: bool) -> float | None:
        """Accuracy (0..1) or MAE of `version` on pre- or post-drift records; None without predictions."""
        total, n = self.quality.get((version, drifted), (0.0, 0))
        return total / n if n else None

    def count(self, version: str, drifted: bool) -> int:
        return int(self.quality.get((version, drifted), (0.0, 0))[1])

    def better(self, a: float, b: float) -> bool:
        """`a` is a better figure than `b` (higher accuracy, lower MAE)."""
        return a < b if self.regression else a > b

    def show(self, v: float | None, n: int | None = None) -> str:
        if v is None:
            return "-"
        text = f"{v:.2f}" if self.regression else f"{v * 100:.1f} %"
        return text + (f" (n={n})" if n is not None else "")

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
        """The first version promoted after the drift point (not v1, which a slow bootstrap may promote late)."""
        if self.drift_t_s is None:
            return None
        return next((v for t, v in self.promoted[1:] if t >= self.drift_t_s and v != self.v1), None)

    @property
    def loop_time_s(self) -> float | None:
        """Drift injected → the first response served by the new version."""
        v2 = self.v2
        if v2 is None or v2 not in self.serving or self.drift_t_s is None:
            return None
        return self.serving[v2] - self.drift_t_s

    @property
    def pending(self) -> bool:
        """An outcome is still due: a retrain requested after the drift whose candidate the gate has not decided
        yet (an outcome before the last detection does not count), or v2 promoted but not served yet (a
        challenger's live judgement is waited for apart: it needs labels)."""
        if self.v2 is not None:
            return self.v2 not in self.serving
        if self.live.challengers or self.loop_time_s is not None or not self.detections:
            return False
        return len(self.gate) + len(self.training_failures) <= self.outcomes_at_detection

    def done(self, after_requests: int, guard_rows: int, watched_requests: int) -> bool:
        """The loop has told its story: after the drift, the new version serves and has answered `after_requests`
        predictions scored on post-drift records (the figures compare it with v1 on them) — on a live rollout with
        the verdict that promoted it in, and the guard of its promotion judged, replaced, or still undecided
        after mirroring `guard_rows` requests (it did not roll back in that time); or — no new version — the
        drift's challenger (the first) is decided, with its verdict in: a worse one, retired. A later retrain's
        challenger is not part of that story. A run without a drift (a control run) is done once v1 has answered
        `watched_requests`, with no retrain asked for."""
        if self.drift_at is None:
            return self.v1 is not None and self.count(self.v1, False) >= watched_requests and not self.monitor_requests
        if self.drift_t_s is None:
            return False
        if self.v2 is not None:
            c = self.live.challenger(self.v2)
            guarded = bool(self.live.guard_version) and (c is None or c.guard_rows < guard_rows)
            return self.v2 in self.serving and self.count(self.v2, True) >= after_requests and not guarded \
                and (c is None or c.verdict is not None)
        # its verdict too: verdicts and announcements come on topics of their own, in either order
        first = self.live.challengers[0] if self.live.challengers else None
        return first is not None and bool(first.outcome) and first.verdict is not None

    def row(self) -> dict[str, str]:
        """This model's row of the summary table."""
        v1, v2 = self.v1 or "1", self.v2
        delay = ("not detected" if self.drift_at is not None else "-") if self.detection_delay_s is None else \
            f"{self.detection_delay_s:.1f} s / {self.detection_delay_records} rec"
        return {
            "model": self.model,
            "metric": self.metric,
            "drift at": "none" if self.drift_at is None else str(self.drift_at),
            "v1 pre-drift": self.show(self.value(v1, False), self.count(v1, False)),
            "v1 post-drift": self.show(self.value(v1, True), self.count(v1, True)) if self.drift_at else "-",
            "v2 post-drift": self.show(self.value(v2, True), self.count(v2, True)) if v2 else "-",
            "detection delay": delay,
            "false alarms": str(self.false_alarms),
            "gate": "; ".join(f"v{v} {d}" for v, d, _ in self.gate) or "-",
            "loop time": f"{self.loop_time_s:.1f} s" if self.loop_time_s is not None else "-",
            **self.live.rows(),
            "requests / failed": f"{self.requests + self.failed_requests} / {self.failed_requests}",
        }


@dataclass
class DemoResult:
    """The whole run: a loop per model, and what belongs to the run (dead letters, traces, timeline, outcome)."""

    tag: str
    loops: dict[str, ModelLoop] = field(default_factory=dict)
    dlq: int = 0
    example_trace_id: str = ""
    traces_file: str = ""
    timeline: list[TimelineEvent] = field(default_factory=list)
    elapsed_s: float = 0.0
    interrupted: bool = False
    error: str = ""

    def loop(self, model: str | None = None) -> ModelLoop:
        """The loop of `model` (default: the first one, the only one of a single-example run)."""
        return self.loops[model] if model is not None else next(iter(self.loops.values()))

    @property
    def failed_requests(self) -> int:
        return sum(loop.failed_requests for loop in self.loops.values())

    @property
    def records_produced(self) -> int:
        return sum(loop.records_produced for loop in self.loops.values())

    @property
    def labels_sent(self) -> int:
        return sum(loop.labels_sent for loop in self.loops.values())

    def table(self) -> str:
        rows = [loop.row() for loop in self.loops.values()]
        lines = [""]
        if rows:
            # transposed (a column per model): the figures stay readable however many models there are
            keys = list(rows[0])
            width = max(len(k) for k in keys)
            cols = [max(len(r[k]) for k in keys) for r in rows]
            lines.append("summary " + "─" * (width + sum(c + 3 for c in cols)))
            for k in keys:
                lines.append(f"  {k:<{width}}  " + "   ".join(f"{r[k]:<{c}}" for r, c in zip(rows, cols, strict=True)))
        lines += [
            f"  records produced / DLQ'd: {self.records_produced} / {self.dlq}  ({self.labels_sent} labels)",
            f"  run time: {self.elapsed_s:.1f} s" + ("  (interrupted: partial)" if self.interrupted else ""),
            "  (accuracy: higher is better; MAE in the label's unit, lower is better; loop time = drift → v2 "
            "serving, target <= 20 s; the live verdict's difference is challenger − champion with its interval)",
        ]
        for loop in self.loops.values():
            if loop.last_error:
                lines.append(f"  last request error ({loop.model}): {loop.last_error}")
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.traces_file:
            lines.append(f"  traces: {self.traces_file}")
            if self.example_trace_id:  # traces_file is Jaeger's query URL when the spans went there
                where = f"--jaeger {self.traces_file}" if "://" in self.traces_file else f"--file {self.traces_file}"
                lines.append(f"  one prediction's trace: mlops trace {self.example_trace_id} {where}")
        return "\n".join(lines)
