"""The drift loop in process, with the services' own cores: the monitor's decisions (`DriftMonitor`), the trainer's
post-change window (`since_change`) and training (`train_model`), the registry's gate (`score`, `decide`).

Pure concept drift (SEA 1 → 2: the same inputs, a new boundary) with 10 % label noise and no covariate shift, 100
predictions/s, labels 1 s late: exactly one retrain, trained on the rows after the monitor's change point, its
challenger promoted, and better than the old champion on what follows. The noisy control asks for no retrain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from mlops.definitions import Task, load
from mlops_tools.datagen import StreamConfig, generate

from services.monitor.core import DriftMonitor, LabelEvent, MonitorConfig, Prediction
from services.monitor.settings import MonitorSettings
from services.registry.core.gate import GatePolicy, decide, score
from services.registry.core.state import Holdout
from services.trainer.core import TrainConfig, onnx_output, since_change, train_model

pytestmark = [pytest.mark.slow]

SEA = load(Path(__file__).resolve().parents[2] / "examples" / "sea" / "definitions.yaml")
NAMES = ("x0", "x1", "x2")
LABEL_DELAY = 100  # records: 1 s at 100 predictions/s
DEPLOY_DELAY = 200  # records from a promotion to the new version serving
MIN_ROWS = 500  # rows after the change point the trainer waits for


@dataclass
class _Rows:
    """The labelled rows the trainer reads (the offline store's TrainingSet shape)."""

    X: np.ndarray  # noqa: N815
    y: np.ndarray
    label_times_ms: np.ndarray
    entity_ids: list[str]
    feature_names: tuple[str, ...] = NAMES
    feature_log_ranges: list = field(default_factory=list)
    label_ranges: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Loop:
    decisions: list = field(default_factory=list)
    gate: list = field(default_factory=list)
    v2_from: int | None = None  # record index from which v2 serves
    change_point_ms: int = 0
    correct: dict = field(default_factory=dict)  # (version, after v2 serves) -> list of right/wrong


def _run(drift_at: int | None, count: int = 20_000, seed: int = 7) -> tuple[Loop, list]:
    cfg = StreamConfig(count=count, drift_at=drift_at, noise=0.1, covariate_shift=False, variant_before=1,
                       variant_after=2, seed=seed)
    recs = list(generate(cfg))
    X = np.array([[r.values[n] for n in NAMES] for r in recs], dtype=np.float32)  # noqa: N806
    y = np.array([float(r.label) for r in recs])
    t = np.array([r.event_time_ms for r in recs], dtype=np.int64)
    config = TrainConfig(params={"max_iter": 50}, min_rows=200, seed=42)
    boot = 2_000  # v1 learns the old concept from the first rows, as the demo's bootstrap does
    v1 = train_model(_Rows(X[:boot], y[:boot], t[:boot], [r.entity_id for r in recs[:boot]]), config, NAMES)
    scores = {"1": onnx_output(v1.onnx_bytes, X, Task.BINARY)[:, 1]}
    policy = GatePolicy.of(SEA.model("sea"), 1)
    monitor = DriftMonitor(MonitorSettings(), config=MonitorConfig.unconfigured())
    loop, pending = Loop(), None
    serving = "1"
    for i in range(boot, count):
        if loop.v2_from is not None and i >= loop.v2_from:
            serving = "2"
        s = float(scores[serving][i])
        ds = monitor.observe_prediction(Prediction(f"r{i}", recs[i].entity_id, "sea", serving, {
            n: float(v) for n, v in zip(NAMES, X[i], strict=True)}, s, float(s >= 0.5), int(t[i])))
        j = i - LABEL_DELAY
        if j >= boot:
            ds += monitor.observe_label("sea", LabelEvent(recs[j].entity_id, int(t[j]), y[j], request_id=f"r{j}"))
        loop.decisions += ds
        pending = ds[-1] if ds else pending
        if pending is not None and i % 100 == 0:  # the trainer re-reads its data while it waits for rows
            known = slice(0, j + 1)
            post = since_change(_Rows(X[known], y[known], t[known], [r.entity_id for r in recs[known]]),
                                pending.change_point_ms)
            if len(post) >= MIN_ROWS:
                loop.change_point_ms = pending.change_point_ms
                challenger = train_model(post, config, NAMES)
                holdout = Holdout(NAMES, challenger.holdout_X, challenger.holdout_y)
                verdict = decide(policy, score(challenger.onnx_bytes, NAMES, holdout, Task.BINARY),
                                 score(v1.onnx_bytes, NAMES, holdout, Task.BINARY), "1")
                loop.gate.append(verdict)
                if verdict.promote:
                    scores["2"] = onnx_output(challenger.onnx_bytes, X, Task.BINARY)[:, 1]
                    loop.v2_from = i + DEPLOY_DELAY
                pending = None
        after = loop.v2_from is not None and i >= loop.v2_from
        for version in scores:
            loop.correct.setdefault((version, after), []).append(float(scores[version][i] >= 0.5) == y[i])
    return loop, recs


def test_pure_concept_drift_with_label_noise_gives_one_retrain_and_the_challenger_is_promoted():
    drift_at = 8_000
    loop, recs = _run(drift_at)
    assert len(loop.decisions) == 1, [d.reason for d in loop.decisions]
    [d] = loop.decisions
    assert d.statistic == "error_rate" and d.model_version == "1"
    assert [v.promote for v in loop.gate] == [True], [v.reason for v in loop.gate]
    drift_ms = recs[drift_at].event_time_ms
    assert abs(loop.change_point_ms - drift_ms) <= 500 * 10  # within 500 records (5 s) of the true change
    assert loop.v2_from is not None
    loop_s = (recs[loop.v2_from].event_time_ms - drift_ms) / 1000
    assert loop_s <= 40.0, loop_s  # drift → v2 serving, stream time
    acc = {k: float(np.mean(v)) for k, v in loop.correct.items()}
    assert acc[("2", True)] > acc[("1", True)] + 0.05, acc  # on the same records after v2 serves


def test_noisy_control_asks_for_no_retrain():
    loop, _ = _run(None)
    assert loop.decisions == [] and loop.gate == [] and loop.v2_from is None
    assert 0.8 < float(np.mean(loop.correct[("1", False)])) < 0.95  # 10 % label noise: the control is noisy
