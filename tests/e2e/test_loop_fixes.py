"""Regression tests of the bugs the closed loop exposed (unit tests, except the offline-store one), and the demo's
own figures without a stack.

- monitor: a retrain decision caused by a label that waited for its prediction was drained and dropped;
- trainer: `max_rows` (a sliding window) lets a retrain follow a concept drift instead of being outvoted by history;
- offline store: labels newer than the feature log's watermark are left out (`labels_within_features`), so a label
  that overtook a lagging feature pipeline is not joined with an older, unrelated vector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mlops.bus import Producer
from mlops.contracts import events_pb2
from mlops.definitions import Task, load
from mlops.offline_store import TrainingSpec, build_training_set
from mlops.settings import KafkaSettings
from mlops.topics import FEATURES_LOG, LABELS, topic_name
from mlops_tools.demo import DemoConfig, DemoResult, ModelLoop

from services.monitor.core import DriftMonitor, LabelEvent, ModelPolicy, MonitorConfig, Prediction
from services.monitor.settings import MonitorSettings
from services.trainer.core import TrainConfig, onnx_output, train_model

SEA = load(Path(__file__).resolve().parents[2] / "examples" / "sea" / "definitions.yaml")
NAMES = SEA.model("sea").features  # the declared refs, in model-input order
COLUMNS = [column for _, column in SEA.model_inputs(SEA.model("sea"))]


def test_monitor_keeps_the_decision_of_a_label_that_arrived_before_its_prediction() -> None:
    settings = MonitorSettings(window_size=100, min_records=100, error_reference_labels=20, error_check_every=5,
                               data_detector="none", score_detector="none")
    monitor = DriftMonitor(settings, config=MonitorConfig(fallback=ModelPolicy("", cooldown_ms=0)))
    decisions = []
    for i in range(2_000):
        t = 1_000_000 + i * 10
        wrong = i >= 600  # the model is right, then always wrong: a concept drift
        # the label is consumed first (labels can overtake predictions on another topic); the join happens when
        # the prediction arrives, and the decision it causes must come back from observe_prediction
        decisions += monitor.observe_label("sea", LabelEvent(f"e{i}", t, 1.0))
        decisions += monitor.observe_prediction(Prediction(
            request_id="", entity_id=f"e{i}", model_name="sea", model_version="1", inputs={},
            score=0.1 if wrong else 0.9, predicted_label=0.0 if wrong else 1.0, timestamp_ms=t,
            features_as_of_ms=t))
    assert len(decisions) == 1, "exactly one retrain decision for the episode"
    assert decisions[0].detector == "ErrorWindows" and decisions[0].statistic == "error_rate"


class _Data:
    def __init__(self, n_old: int, n_new: int):
        rng = np.random.default_rng(0)
        n = n_old + n_new
        self.X = rng.uniform(0, 10, (n, len(NAMES))).astype(np.float32)
        s = self.X[:, 0] + self.X[:, 1]
        self.y = np.where(np.arange(n) < n_old, s > 7.0, s > 9.5).astype(np.float64)  # SEA 2, then SEA 3
        self.label_times_ms = np.arange(n, dtype=np.int64) * 10 + 1_700_000_000_000
        self.feature_names, self.entity_ids = NAMES, [f"e{i}" for i in range(n)]
        self.feature_log_ranges, self.label_ranges = [], []


def test_trainer_window_follows_the_new_concept() -> None:
    data = _Data(n_old=6_000, n_new=800)
    everything = train_model(data, TrainConfig(params={"max_iter": 30}, min_rows=50), NAMES)
    window = train_model(data, TrainConfig(params={"max_iter": 30}, min_rows=50, max_rows=1_000), NAMES)
    assert window.train_rows + window.holdout_rows == 1_000 and window.params["max_rows"] == "1000"
    assert window.data_start_ms == int(data.label_times_ms[-1_000])
    # on fresh rows of the new concept only the windowed model is right (history outvotes the new concept)
    X = np.random.default_rng(1).uniform(0, 10, (2_000, len(NAMES))).astype(np.float32)  # noqa: N806
    y = X[:, 0] + X[:, 1] > 9.5
    acc_window = float(np.mean((onnx_output(window.onnx_bytes, X, Task.BINARY)[:, 1] >= 0.5) == y))
    acc_everything = float(np.mean((onnx_output(everything.onnx_bytes, X, Task.BINARY)[:, 1] >= 0.5) == y))
    assert acc_window > 0.9 and acc_window > acc_everything + 0.05


def test_offline_store_leaves_out_labels_past_the_feature_watermark(kafka_settings: KafkaSettings) -> None:
    p = Producer(kafka_settings, client_id="loop-fix-test")
    flog, labels = topic_name(FEATURES_LOG, kafka_settings), topic_name(LABELS, kafka_settings)
    for i in range(30):  # 3 entities (spread over the partitions), vectors up to t=1290
        e = f"e{i % 3}"
        p.send(flog, events_pb2.FeatureVector(entity_id=e, feature_set="entity_activity", feature_set_version=1,
                                              as_of_ms=1000 + i * 10, values={c: float(i) for c in COLUMNS}), key=e)
    for i in range(40):  # labels up to t=1390: the last ones overtook their (not yet written) vectors
        e = f"e{i % 3}"
        p.send(labels, events_pb2.Label(entity_id=e, event_time_ms=1000 + i * 10, label=float(i % 2)), key=e)
    p.flush()
    spec = TrainingSpec.of(SEA, "sea")
    plain = build_training_set(kafka_settings, spec)
    safe = build_training_set(kafka_settings, spec, labels_within_features=True)
    assert len(plain) == 40
    watermark = max(safe.label_times_ms)
    assert len(safe) < 40 and watermark <= 1290
    assert safe.stats["labels_after_feature_watermark"] == 40 - len(safe)


def test_demo_result_figures_and_table() -> None:
    r = ModelLoop("sea", drift_at=100, records_produced=200, labels_sent=200, drift_t_s=10.0)
    r.promoted = [(2.0, "1"), (19.0, "2")]
    r.serving = {"1": 2.5, "2": 19.5}
    r.detections = [(14.0, 40, "concept drift")]
    r.quality = {("1", False): [95, 100], ("1", True): [40, 50], ("2", True): [90, 100]}
    assert (r.v1, r.v2) == ("1", "2")
    late = ModelLoop("sea", drift_at=100, drift_t_s=10.0, promoted=[(12.0, "1")])
    assert late.v2 is None and late.loop_time_s is None  # a v1 promoted after the drift is no v2
    assert r.detection_delay_s == 4.0 and r.detection_delay_records == 40 and r.loop_time_s == 9.5
    assert r.value("1", True) == 0.8 and r.value("2", True) == 0.9 and r.value("3", True) is None
    mae = ModelLoop("delivery_time", drift_at=100, task="regression", drift_t_s=10.0, promoted=[(2.0, "1")])
    mae.add("1", True, 30.0, 20.0)
    mae.add("1", True, 20.0, 24.0)
    assert mae.value("1", True) == 7.0 and mae.better(2.5, 7.0) and not r.better(0.5, 0.8)
    control = ModelLoop("sea", drift_at=None, promoted=[(2.0, "1")])
    assert control.v2 is None and control.loop_time_s is None
    table = DemoResult("demo-x", loops={"sea": r, "delivery_time": mae, "control": control}).table()
    lines = {line.split("  ")[1]: line for line in table.splitlines() if line.startswith("  ") and "  " in line[2:]}
    assert "9.5 s" in lines["loop time"] and "4.0 s / 40 rec" in lines["detection delay"]
    assert "90.0 % (n=100)" in lines["v2 post-drift"] and "7.00 (n=2)" in lines["v1 post-drift"]
    assert "accuracy" in lines["metric"] and "MAE" in lines["metric"] and "none" in lines["drift at"]


def test_demo_config_rejects_a_drift_point_outside_the_stream() -> None:
    import pytest

    with pytest.raises(ValueError):
        DemoConfig(records=1000, drift_at=1000)
    with pytest.raises(ValueError):
        DemoConfig(records=1000, drift_at=500, bootstrap_rows=600)


def test_demo_status_is_one_line_on_a_terminal_and_periodic_lines_otherwise() -> None:
    import io

    from mlops_tools.console import StatusLine

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    ui = StatusLine(tty)
    ui.status("[   1.0s] produced 10")
    ui.status("[   1.5s] produced 20")
    ui.event("[   2.0s] v1 promoted")
    text = tty.getvalue()
    assert "\n" not in text.split("v1 promoted")[0]  # status lines overwrite each other (\r), no scrolling
    assert text.endswith("[   2.0s] v1 promoted\n")
    plain = io.StringIO()
    ui = StatusLine(plain, every_s=60)
    for i in range(5):
        ui.status(f"status {i}")
    ui.event("event")
    assert plain.getvalue() == "status 0\nevent\n"  # periodic plain lines, no control characters
