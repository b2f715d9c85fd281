"""The batch path (`DriftMonitor.observe_block`: a logged batch as columns) against the per-row path
(`observe_prediction` on each of its rows) on the same stream: the same decisions, detections, windows, estimates,
joins and verdicts, in the same order — with labels after and before their predictions, online detectors, a
version change with rows of the old version still in flight, a regression model, and a shadow challenger."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from mlops.definitions import Task
from mlops.definitions.model import RolloutPolicy
from mlops_tools.datagen import SEA_THRESHOLDS, StreamConfig, SyntheticRecord, generate

from services.monitor import DriftMonitor, LabelEvent, ModelPolicy, MonitorConfig, MonitorSettings, PredictionBlock
from services.monitor.core import LabelJoiner

SIZES = (1, 7, 64, 33, 250, 2, 8, 9)  # rows per logged batch, in turn (below 8 the batch path goes row by row)
FEATURES = ("x0", "x1", "x2")


class Recorder:
    """Every observer call, as comparable values."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_detection(self, d, suppressed):  # noqa: ANN001, ANN201
        self.events.append(("detection", d, suppressed))

    def on_window(self, model_name, feature, r):  # noqa: ANN001, ANN201
        self.events.append(("window", model_name, feature, r.psi, r.ks, r.ks_critical, r.window_start_ms))

    def on_version(self, model_name, version, previous):  # noqa: ANN001, ANN201
        self.events.append(("version", model_name, version, previous))

    def on_estimate(self, model_name, version, expected, realised):  # noqa: ANN001, ANN201
        self.events.append(("estimate", model_name, version, repr(expected), repr(realised)))


@dataclass(frozen=True)
class Step:
    block: PredictionBlock | None = None
    label: LabelEvent | None = None


def _block(chunk: list[SyntheticRecord], version: str, role: str = "", variant: int = 2,
           regression: bool = False, as_of: dict[int, int] | None = None) -> PredictionBlock:
    """The logged batch of `chunk`; a row's features are as of its event, or of `as_of[index]`."""
    x = np.array([[r.values[f] for f in FEATURES] for r in chunk], dtype=np.float32)  # as the log carries them
    s = x[:, 0].astype(np.float64) + x[:, 1]
    scores = 1.0 / (1.0 + np.exp(-(s - SEA_THRESHOLDS[variant])))
    predicted = (30.0 * scores) if regression else (scores > 0.5).astype(np.float64)
    t = chunk[0].event_time_ms
    return PredictionBlock(
        model_name="sea", model_version=version, timestamp_ms=t, feature_names=FEATURES, x=x,
        scores=scores.astype(np.float32), predicted_labels=predicted.astype(np.float32),
        request_ids=[f"r{r.index}" for r in chunk], entity_ids=[r.entity_id for r in chunk],
        as_of_ms=[(as_of or {}).get(r.index, r.event_time_ms) for r in chunk], trace_id=f"{t:032x}",
        span_id=f"{len(chunk):016x}", role=role)


def stream(count: int = 6_000, *, label_lag: int = 60, by_request: bool = False, version_at: int | None = None,
           shadow: bool = False, regression: bool = False, repeats: bool = False) -> list[Step]:
    """Logged batches of a SEA stream (concept drift and covariate shift at 3,000) and each row's label `label_lag`
    rows after its prediction (negative: before it). `version_at`: v2 serves from that row on, and the next batch
    of v1 is still in flight after it. `shadow`: every batch mirrored to a shadow version. `repeats`: two rows in
    three carry their entity's last features again (a hot entity asked for before its next event)."""
    records = list(generate(StreamConfig(count=count, drift_at=count // 2, seed=3)))
    as_of: dict[int, int] = {}  # record index → as-of time of the features it carries, when not its own
    if repeats:
        held: dict[str, tuple[dict[str, float], int]] = {}
        for i, r in enumerate(records):
            if i % 3 and r.entity_id in held:
                values, as_of[r.index] = held[r.entity_id]
                records[i] = replace(r, values=values)
            else:
                held[r.entity_id] = (r.values, r.event_time_ms)
    steps: list[Step] = []
    i = k = 0
    labelled = 0  # records whose label was sent

    def label(r: SyntheticRecord) -> Step:
        value = 30.0 * r.label + (r.index % 5) if regression else float(r.label)
        return Step(label=LabelEvent(r.entity_id, r.event_time_ms, value,
                                     request_id=f"r{r.index}" if by_request else ""))

    while i < count:
        chunk = records[i:i + SIZES[k % len(SIZES)]]
        k += 1
        if label_lag < 0:  # labels first: everything up to -label_lag rows ahead of this batch
            ahead = min(count, i + len(chunk) - label_lag)
            steps += [label(r) for r in records[labelled:ahead]]
            labelled = ahead
        version = "2" if version_at is not None and i >= version_at else "1"
        steps.append(Step(_block(chunk, version, regression=regression, as_of=as_of)))
        if version_at is not None and version == "2" and chunk[0].index - version_at < 64:
            steps.append(Step(_block(chunk, "1", regression=regression, as_of=as_of)))  # v1's rows still in flight
        if shadow:
            steps.append(Step(_block(chunk, "s", role="shadow", variant=3, regression=regression, as_of=as_of)))
        i += len(chunk)
        if label_lag >= 0:
            due = max(0, i - label_lag)
            steps += [label(r) for r in records[labelled:due]]
            labelled = max(labelled, due)
    return steps


def monitor(policy: ModelPolicy, **settings) -> tuple[DriftMonitor, Recorder]:  # noqa: ANN003
    rec = Recorder()
    base = {"window_size": 200, "data_window_step": 100, "min_records": 400, "retrain_timeout_ms": 5_000}
    return DriftMonitor(MonitorSettings(**(base | settings)), rec, config=MonitorConfig(
        policies={"sea": policy}, revision=1)), rec


def replay(m: DriftMonitor, steps: list[Step], batched: bool) -> list[tuple]:
    """Everything the monitor put out, in order (decisions without their random request id, and verdicts)."""
    out: list[tuple] = []
    for step in steps:
        if step.block is not None:
            b = step.block
            decisions = m.observe_block(b) if batched else [
                d for i in range(b.rows) for d in m.observe_prediction(b.row(i))]
        else:
            assert step.label is not None
            decisions = m.observe_label("sea", step.label)
        out += [("decision", replace(d, request_id="")) for d in decisions]
        out += [("verdict", v) for v in m.judge.take_verdicts()]
    return out


def _same(policy: ModelPolicy, steps: list[Step], **settings) -> tuple[list[tuple], list[tuple]]:  # noqa: ANN003
    runs = []
    for batched in (False, True):
        m, rec = monitor(policy, **settings)
        out = replay(m, steps, batched)
        counters = (m.predictions, m.labels, m.stale_predictions, m.stale_labels, m.unwatched, m.detections,
                    m.suppressed, m.join_counts(), m.join_buffered(), m.judge.counts)
        runs.append((out, rec.events, counters))
    (row_out, row_events, row_counters), (out, events, counters) = runs
    assert counters == row_counters
    assert events == row_events
    assert out == row_out
    return out, events


BINARY = ModelPolicy("sea", cooldown_ms=5_000)  # stream time: 10 ms a row, so requests are deferred and asked again


@pytest.mark.parametrize("label_lag", [60, -300], ids=["labels after", "labels first"])
@pytest.mark.parametrize("by_request", [False, True], ids=["by entity", "by request"])
def test_the_batch_path_decides_exactly_as_the_per_row_path(label_lag, by_request):
    out, events = _same(BINARY, stream(label_lag=label_lag, by_request=by_request))
    kinds = {d.kind for e in events if e[0] == "detection" for d in [e[1]]}
    assert kinds >= {"data", "concept"}  # the stream drifts: there is something to agree on
    assert [o for o in out if o[0] == "decision"]
    assert sum(e[0] == "estimate" for e in events) > 10


@pytest.mark.parametrize("detector", ["adwin", "pagehinkley"])
def test_online_detectors_fire_at_the_same_rows_in_the_same_order(detector):
    _, events = _same(BINARY, stream(4_000), data_detector=detector, score_detector=detector)
    assert any(e[0] == "detection" and e[1].detector != "KS" and e[2] == "reported_only" for e in events)


def test_a_version_change_with_rows_of_the_old_version_in_flight():
    _, events = _same(BINARY, stream(version_at=2_000))
    assert ("version", "sea", "2", "1") in events


def test_a_regression_model_and_a_feature_set_that_changes():
    policy = ModelPolicy("sea", task=Task.REGRESSION, cooldown_ms=5_000)
    steps = stream(4_000, regression=True)
    at = len(steps) // 2  # from here on the batches carry one feature less (a new stream of the same version)
    steps[at:] = [Step(replace(s.block, feature_names=FEATURES[:2], x=s.block.x[:, :2]) if s.block else None,
                       s.label) for s in steps[at:]]
    _same(policy, steps)


def test_rows_repeating_their_entity_state_are_left_out_of_the_windows_alike():
    steps = stream(repeats=True)
    _, events = _same(BINARY, steps)
    _, every_row = _same(BINARY, steps, distinct_state_entities=0)
    windows = sum(e[0] == "window" for e in events)
    assert 0 < windows < sum(e[0] == "window" for e in every_row)  # fewer values taken: fewer windows filled


def test_a_shadow_challenger_gets_the_same_verdict():
    policy = ModelPolicy("sea", cooldown_ms=5_000, rollout=RolloutPolicy(mode="shadow", min_labels=100))
    out, _ = _same(policy, stream(4_000, by_request=True, shadow=True))
    assert [o[1].verdict for o in out if o[0] == "verdict"] == ["retire"]  # variant 3 is worse before the drift


def test_a_batch_of_an_undeclared_model_is_counted_and_ignored():
    m, _ = monitor(BINARY)
    block = replace(first_block(), model_name="other")
    assert m.observe_block(block) == [] and m.unwatched == block.rows and m.predictions == block.rows


def test_thousands_of_labels_before_their_predictions_join_with_a_few_matches_per_prediction(monkeypatch):
    """Labels first, in shuffled order: each prediction tries only the labels it can join (the old join tried every
    waiting label of the entity, each against the entity's waiting predictions: 16k rows took minutes)."""
    records = list(generate(StreamConfig(count=4_000, drift_at=None, seed=1)))
    calls = 0
    match = LabelJoiner._match

    def counted(self, label):  # noqa: ANN001, ANN202
        nonlocal calls
        calls += 1
        return match(self, label)

    monkeypatch.setattr(LabelJoiner, "_match", counted)
    j: LabelJoiner = LabelJoiner(600_000, 2_000, 200_000, 50_000)
    for i in np.random.default_rng(0).permutation(len(records)):
        r = records[i]
        j.add_label(LabelEvent(r.entity_id, r.event_time_ms, float(r.label)))
    calls = 0
    joined = sum(len(j.add_prediction(stream_row(r))) for r in records)
    assert joined > 3_600  # most join (a shuffled label may take a neighbour's prediction within the tolerance)
    assert calls < 5 * len(records), calls  # the old join: hundreds per prediction


def stream_row(r: SyntheticRecord):  # noqa: ANN201
    return _block([r], "1").row(0)


def first_block(rows: int = 64) -> PredictionBlock:
    return _block(list(generate(StreamConfig(count=rows, drift_at=None, seed=3))), "1")


def test_a_label_naming_its_request_joins_when_that_prediction_arrives_whatever_its_entity():
    j: LabelJoiner = LabelJoiner(600_000, 2_000, 1_000, 1_000)
    assert j.add_label(LabelEvent("e-label", 1_000, 1.0, request_id="r7")) is None
    p = replace(stream_row(next(iter(generate(StreamConfig(count=1, drift_at=None))))), request_id="r7")
    assert [(q.request_id, lab.request_id) for q, lab in j.add_prediction(p)] == [("r7", "r7")]
    assert j.counts.labels_waiting == 0 and not j._labels_by_request and not j._labels_by_entity


def test_rows_held_by_the_join_become_predictions_only_when_joined():
    j: LabelJoiner = LabelJoiner(600_000, 2_000, 1_000, 1_000)
    block = first_block()
    assert j.add_rows(block, 0, block.rows) == [] and len(j) == block.rows
    joined = j.add_label(LabelEvent(block.entity_ids[3], block.join_times_ms[3], 1.0, request_id="r3"))
    assert joined == block.row(3) and math.isclose(joined.score, float(block.scores[3]))


@pytest.mark.parametrize("capacity, window_ms", [(40, 600_000), (1_000, 300)], ids=["by capacity", "by window"])
def test_held_rows_are_evicted_as_one_by_one_when_no_label_waits(capacity, window_ms):
    """Rows held a block at a time (`add_rows`) and evicted by capacity or by window: the same rows go, and every
    later label meets the same prediction, as when each row came alone (times go back and forth, entities repeat)."""
    records = list(generate(StreamConfig(count=700, drift_at=None, seed=5)))
    rng = np.random.default_rng(5)
    blocks, start = [], 0
    for size in SIZES * 6:
        chunk = records[start:start + size]
        if not chunk:
            break
        blocks.append(_block(chunk, "1", as_of={r.index: r.event_time_ms + int(rng.integers(-400, 400))
                                                for r in chunk}))
        start += size
    together: LabelJoiner = LabelJoiner(window_ms, 500, capacity, 1_000)
    alone: LabelJoiner = LabelJoiner(window_ms, 500, capacity, 1_000)
    for b in blocks:
        assert together.add_rows(b, 0, b.rows) == []
        assert [j for i in range(b.rows) for j in alone.add_prediction(b.row(i))] == []
        assert (len(together), together.counts) == (len(alone), alone.counts)
    assert together.counts.predictions_evicted > 100  # eviction is what this test is about
    labels = [LabelEvent(b.entity_ids[i], b.join_times_ms[i], 1.0, request_id=f"r{i}" if i % 2 else "")
              for b in blocks for i in range(0, b.rows, 3)]
    met = [tuple(getattr(j.add_label(lab), "request_id", None) for j in (together, alone)) for lab in labels]
    assert [a for a, _ in met] == [b for _, b in met] and sum(a is not None for a, _ in met) >= 5
