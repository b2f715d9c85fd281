"""What one demo run does: which examples (and so which models), stream size and pace, the drift point, the
services' settings for the loop, timeouts. Every example streams `records` at `rate`/s with its drift at
`drift_at`; with `example="all"` they stream side by side and one inference server serves every model.

With `shadow` (as `mlops demo` runs) the SEA model is declared with a shadow rollout
(`examples/sea/shadow/definitions.yaml`): a candidate that passes the offline gate is judged on live labels before
it is promoted. `worse_challenger` turns
the drift into a transient episode (concept only, no covariate shift) that ends once a retrain it causes has put
its candidate on live traffic: that candidate's training window and holdout are the episode, an unrepresentative
sample on which it beats the champion offline, so it passes the gate — and live traffic, back to normal, retires
it. `end_when_done` ends the streams once the story is complete (the tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlops_tools.examples import EXAMPLES_DIR, definitions_path

__all__ = ["DemoConfig"]

EXAMPLES = ("sea", "delivery")
# the examples whose model the demo declares with a shadow rollout: examples/<name>/shadow/definitions.yaml
SHADOWED = ("sea",)


@dataclass(frozen=True)
class DemoConfig:
    example: str = "sea"  # sea, delivery or all
    records: int = 12_000
    rate: float = 100.0  # records per second into raw.events
    drift_at: int | None = 6_000  # index of the first record of the new concept; None: a no-drift control run
    seed: int = 42
    entities: int = 100
    label_delay_ms: int = 1_000
    predict_rate: float = 50.0  # gRPC requests per second once v1 serves
    # event time between two records (the wall clock does 1000 / rate); None: the example's own (Example)
    event_interval_ms: float | None = None
    bootstrap_rows: int = 600  # labels sent before v1 is requested
    train_window_rows: int = 600  # MLOPS_TRAINER_MAX_ROWS: the trainer's sliding window (0: every row)
    train_max_iter: int = 50  # MLOPS_TRAINER_MAX_ITER
    monitor_window: int = 500  # MLOPS_MONITOR_WINDOW_SIZE (predictions per reference / current window)
    monitor_min_records: int = 1_000  # MLOPS_MONITOR_MIN_RECORDS (predictions of a version before a retrain)
    default_ports: bool = True  # the conventional ports when free (else free ones); False: always free ones
    process_dir: Path | None = None  # None: pids/logs in the stack's run folder like `mlops up`; else there
    run_dir: Path | None = None  # traces and the faust data of this run (default .run/demo-<ts>)
    ready_timeout_s: float = 120.0
    v1_timeout_s: float = 120.0
    v2_wait_s: float = 30.0  # after the stream ends, how long to wait for a pending v2
    # Prometheus (alert rules) and Jaeger (OTLP traces; built once from the Go module proxy) for the run; off: spans
    # go to the run's OTLP/JSON file and no Prometheus is started
    ops: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)  # more MLOPS_* settings for every service
    # the SEA model declared with `rollout: {mode: shadow}` (`mlops demo` does; False: the example's own file,
    # offline gate only — what the other end-to-end tests of the loop run)
    shadow: bool = False
    # the drift is a transient episode from `drift_at` (concept only) that ends once a retrain it caused has put
    # its candidate on live traffic as a challenger, or after `episode_max_records`: a candidate that looks good
    # only on the episode
    worse_challenger: bool = False
    episode_max_records: int = 12_000
    # the drift waits, from `drift_at` on, until the monitor is armed (v1 has answered monitor_min_records
    # requests), at most halfway to the end: a slow bootstrap on a busy machine would leave it unwatched
    wait_for_monitor: bool = False
    # the streams end as soon as every model's loop has told its story (ModelLoop.done: the new version serves and
    # has answered `done_after_requests` post-drift predictions, or every live challenger is decided) instead of
    # after `records`; the end-to-end tests' claims need no more, `mlops demo` streams them all
    end_when_done: bool = False
    done_after_requests: int = 200
    # a control run (no drift) has told its story once the monitor, armed, has judged this many more requests: two
    # of its windows after its warm-up
    done_watched_windows: int = 2
    # a guard still undecided after mirroring this many requests (twice the shadow definitions' guard_labels)
    # does not hold the end back: it did not roll the promotion back in that time
    done_guard_rows: int = 1_000

    @property
    def watched_requests(self) -> int:
        """A control run's v1 requests before it ends (end_when_done): the monitor's warm-up, then its windows."""
        return self.monitor_min_records + self.done_watched_windows * self.monitor_window

    @property
    def examples(self) -> tuple[str, ...]:
        return EXAMPLES if self.example == "all" else (self.example,)

    def definitions_file(self, example: str) -> Path:
        """What the run applies for `example`: its shadow-rollout definitions, or its own."""
        if self.shadow and example in SHADOWED:
            return EXAMPLES_DIR / example / "shadow" / "definitions.yaml"
        return definitions_path(example)

    def __post_init__(self) -> None:
        if self.example not in (*EXAMPLES, "all"):
            raise ValueError(f"example must be one of {', '.join(EXAMPLES)} or all, got {self.example!r}")
        if self.records < 1 or self.rate <= 0 or self.predict_rate <= 0:
            raise ValueError("records, rate and predict_rate must be positive")
        if self.drift_at is not None and not 0 < self.drift_at < self.records:
            raise ValueError(f"drift_at must lie in (0, {self.records}), got {self.drift_at}")
        if self.bootstrap_rows >= (self.drift_at if self.drift_at is not None else self.records):
            raise ValueError("bootstrap_rows must come before the drift point (and the end of the stream)")
        if self.worse_challenger:
            if self.drift_at is None or self.example != "sea" or not self.shadow:
                raise ValueError("worse_challenger needs the sea example, a drift point (the episode's start) and "
                                 "the shadow rollout")
