"""The demo's challengers without a broker: its definitions declare the shadow rollout (and nothing else changes),
the worse-challenger scenario's stream has a transient episode, the candidate such an episode makes passes the
registry's offline gate yet is worse on representative rows (the trainer's and the gate's own code), and the
watcher turns announcements, verdicts and audit entries into the timeline and the summary's figures."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from mlops import definitions as d
from mlops.bus import MemoryBus
from mlops.contracts import models_pb2
from mlops.definitions import RolloutMode, Task
from mlops.topics import CHALLENGER_VERDICTS, MODEL_PROMOTED, REGISTRY_LOG
from mlops_tools.datagen import sea_label
from mlops_tools.demo import DemoConfig, DemoResult
from mlops_tools.demo.loop import Traffic
from mlops_tools.demo.timeline import Timeline
from mlops_tools.demo.watch import watch
from mlops_tools.examples import definitions_path

from services.registry.core.gate import GatePolicy, decide, score
from services.registry.core.state import Holdout
from services.trainer.core import TrainConfig, onnx_output, train_model


def test_the_demo_declares_the_shadow_rollout_and_nothing_else_differs_from_the_example() -> None:
    cfg = DemoConfig(shadow=True)
    shadow = d.load(cfg.definitions_file("sea"))
    example = d.load(definitions_path("sea"))
    model = shadow.model("sea")
    assert model.rollout.mode is RolloutMode.SHADOW and model.rollout.traffic_fraction == 1.0
    assert model.rollout.rollback_margin is not None  # a promotion is guarded
    assert shadow.model_copy(update={"models": tuple(m.model_copy(update={"rollout": example.model(m.name).rollout})
                                                     for m in shadow.models)}) == example
    assert DemoConfig(shadow=False).definitions_file("sea") == definitions_path("sea")
    assert DemoConfig(example="all", shadow=True).definitions_file("delivery") == definitions_path("delivery")
    assert DemoConfig().definitions_file("sea") == definitions_path("sea")  # the other loop tests: offline gate


def test_worse_challenger_needs_the_shadowed_sea_model_and_a_drift_point() -> None:
    for bad in ({"drift_at": None}, {"shadow": False}, {"example": "all"}):
        with pytest.raises(ValueError, match="worse_challenger"):
            DemoConfig(worse_challenger=True, **({"shadow": True} | bad))  # type: ignore[arg-type]


def _traffic(out: io.StringIO, bus: MemoryBus | None = None, **overrides: object) -> Traffic:
    settings = {"records": 300, "rate": 100_000, "drift_at": 100, "bootstrap_rows": 5, "entities": 5,
                "label_delay_ms": 0, "shadow": True} | overrides
    result = DemoResult("demo-test")
    timeline = Timeline(result, out)
    timeline.start_clock()
    return Traffic(DemoConfig(**settings), bus or MemoryBus(), 0, result, timeline)  # type: ignore[arg-type]


def test_the_episode_follows_the_new_concept_until_its_candidate_is_trained_then_the_old_one() -> None:
    out = io.StringIO()
    traffic = _traffic(out, worse_challenger=True, episode_max_records=10_000)
    s = traffic.streams["sea"]
    config = s.example.config(count=300, drift_at=100, entities=5, seed=3, interval_ms=10.0)
    records = []
    for rec in traffic._drifting(s, config):
        records.append(rec)
        if rec.index == 180:
            traffic.episode_over.set()  # what the watcher does when the episode's candidate is a challenger
    assert [r.index for r in records] == list(range(300))
    episode = [r for r in records if r.drifted]
    assert [r.index for r in episode] == list(range(100, 181))  # the record after the signal is normal again
    assert all(r.label == sea_label(r.values, 3) for r in episode)
    assert all(r.label == sea_label(r.values, 2) for r in records if not r.drifted)
    assert min(r.values["x2"] for r in episode) < 5  # no covariate shift (it would move x2 to [5, 10])
    plain = list(s.example.generate(s.example.config(count=300, drift_at=None, entities=5, seed=3, interval_ms=10.0)))
    assert [(r.entity_id, r.event_time_ms, r.event_id) for r in records] == \
        [(r.entity_id, r.event_time_ms, r.event_id) for r in plain]
    assert "EPISODE over at record 181 (81 records)" in out.getvalue()
    assert "EPISODE begins at record 100" not in out.getvalue()  # _on_produced says it, called by produce()
    capped = _traffic(io.StringIO(), worse_challenger=True, episode_max_records=50)
    assert sum(r.drifted for r in capped._drifting(capped.streams["sea"], config)) == 50


class _Rows:
    """A training set of the demo's model shape: six inputs, the label by x0 + x1 against the SEA threshold."""

    def __init__(self, n: int, variant: int, seed: int, t0: int = 0):
        rng = np.random.default_rng(seed)
        self.X = rng.uniform(0, 10, (n, 6)).astype(np.float32)
        self.y = (self.X[:, 0] + self.X[:, 1] > {2: 7.0, 3: 9.5}[variant]).astype(np.float64)
        self.label_times_ms = np.arange(n, dtype=np.int64) * 10 + t0
        self.feature_names = tuple(f"f{i}" for i in range(6))
        self.entity_ids = [f"e{i}" for i in range(n)]
        self.feature_log_ranges, self.label_ranges = [], []


def test_the_episodes_candidate_passes_the_offline_gate_on_its_holdout_and_is_worse_on_live_rows() -> None:
    config = TrainConfig(params={"max_iter": 50}, min_rows=50, max_rows=600)
    names = tuple(f"f{i}" for i in range(6))
    champion = train_model(_Rows(600, variant=2, seed=1), config, names)
    # the retrain after the episode's change point: its window, and so its holdout, is the episode
    candidate = train_model(_Rows(600, variant=3, seed=2, t0=10_000_000), config, names)
    rows = Holdout(names, candidate.holdout_X, candidate.holdout_y)  # what travels with the candidate
    policy = GatePolicy("sea", Task.BINARY, "auc", True, margin=0.0, floor=0.6)
    gate = decide(policy, score(candidate.onnx_bytes, names, rows, Task.BINARY),
                  score(champion.onnx_bytes, names, rows, Task.BINARY), "1")
    assert gate.promote, gate.reason
    live = _Rows(4_000, variant=2, seed=9)  # traffic back to the usual concept

    def accuracy(onnx: bytes) -> float:
        return float(np.mean((onnx_output(onnx, live.X, Task.BINARY)[:, 1] >= 0.5) == live.y))

    assert accuracy(candidate.onnx_bytes) < accuracy(champion.onnx_bytes) - 0.10


def _verdict(**fields: object) -> models_pb2.ChallengerVerdict:
    base = {"model_name": "sea", "metric": "accuracy", "test": "paired mSPRT", "confidence": 0.95}
    return models_pb2.ChallengerVerdict(**(base | fields))  # type: ignore[arg-type]


def test_the_watcher_shows_shadow_verdict_promotion_guard_and_audit_with_the_requests_at_each_switch() -> None:
    bus, out = MemoryBus(), io.StringIO()
    traffic = _traffic(out, bus)
    s = traffic.streams["sea"]
    r = s.loop
    r.requests = 1234
    p = bus.producer(client_id="test")
    promoted, verdicts, log = bus.topic(MODEL_PROMOTED), bus.topic(CHALLENGER_VERDICTS), bus.topic(REGISTRY_LOG)
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="1", action="promote"), key="sea")
    p.send(log, models_pb2.RegistryEvent(model_name="sea", version="2", record_kind="state", status="challenger",
                                         role="shadow", traffic_fraction=1.0, gate_decision="challenger",
                                         gate_reason="candidate auc 0.97 beats champion v1 auc 0.90"))
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="2", action="promote", role="shadow",
                                              traffic_fraction=1.0), key="sea/challenger")
    shadow = _verdict(verdict_id="sea/2/shadow", phase="shadow", verdict="promote", champion_version="1",
                      challenger_version="2", champion_metric=0.80, challenger_metric=0.98, difference=0.18,
                      ci_low=0.09, ci_high=0.27, labelled_rows=143)
    p.send(verdicts, shadow, key="sea")
    p.send(log, models_pb2.RegistryEvent(model_name="sea", version="2", record_kind="audit", action="promote",
                                         actor="monitor", status="champion", why=shadow.reason, evidence=shadow))
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="2", previous_version="1",
                                              action="promote"), key="sea")
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="1", action="promote", role="guard",
                                              traffic_fraction=1.0), key="sea/challenger")
    p.send(verdicts, _verdict(verdict_id="sea/2/guard", phase="guard", verdict="keep", champion_version="2",
                              challenger_version="1", champion_metric=0.98, challenger_metric=0.79,
                              difference=-0.19, ci_low=-0.24, ci_high=-0.14, labelled_rows=500), key="sea")
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="1", action="retire", role="guard"),
           key="sea/challenger")
    p.flush()
    watcher = threading.Thread(target=watch, args=(traffic,), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 10
    while (r.live.judging or len(r.live.verdicts) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    traffic.stop.set()
    watcher.join(5)
    text = out.getvalue()
    c = r.live.challengers[0]
    assert (c.version, c.role, c.outcome) == ("2", "shadow", "promoted") and c.verdict is not None
    assert c.guard is not None and c.guard.verdict == "keep" and not r.live.guard_version
    assert [v for _, v in r.promoted] == ["1", "2"] and r.v1 == "1"
    assert "gate: v2 PASSED → challenger (shadow)" in text
    assert "v2 → SHADOW: challenger on 100 % of requests (mirrored, answers logged, never returned); champion v1" \
           "  [requests 1234, failed 0]" in text
    assert "LIVE VERDICT PROMOTE (shadow phase, v2 vs champion v1): 143 labelled rows, accuracy v2 98.0 % vs v1 " \
           "80.0 %, difference +18.0 pts [+9.0, +27.0] (95 %, paired mSPRT)" in text
    assert "audit: v2 promote by monitor → champion (evidence sea/2/shadow: 143 labelled rows)" in text
    assert "v2 PROMOTED to champion on live evidence (previous v1)  [requests 1234, failed 0]" in text
    assert "v1 kept as GUARD" in text and "v1 WITHDRAWN from live traffic (guard retired)" in text
    assert [a.verdict_id for a in r.live.audit] == ["sea/2/shadow"]
    assert all(sw.failed == 0 and sw.requests == 1234 for sw in r.live.switches) and len(r.live.switches) == 5
    rows = r.row()
    assert rows["challenger"] == "v2 shadow 100 % → promoted" and rows["rollout"] == "shadow 100 %"
    assert rows["live verdict"].startswith("promote on 143 labels") and "keep on 500 labels" in rows["guard"]
    assert "live verdict" in traffic.result.table()


def test_a_retired_challenger_is_never_a_champion_and_a_newer_one_replaces_an_undecided_one() -> None:
    bus, out = MemoryBus(), io.StringIO()
    traffic = _traffic(out, bus)
    r = traffic.streams["sea"].loop
    p = bus.producer(client_id="test")
    promoted = bus.topic(MODEL_PROMOTED)
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="1", action="promote"), key="sea")
    for v in ("2", "3"):
        p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version=v, action="promote", role="shadow",
                                                  traffic_fraction=1.0), key="sea/challenger")
    p.send(bus.topic(CHALLENGER_VERDICTS), _verdict(
        verdict_id="sea/3/shadow", phase="shadow", verdict="retire", champion_version="1", challenger_version="3",
        champion_metric=0.99, challenger_metric=0.80, difference=-0.19, ci_low=-0.26, ci_high=-0.12,
        labelled_rows=120), key="sea")
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="3", action="retire", role="shadow",
                                              reason="live verdict: retire"), key="sea/challenger")
    p.flush()
    watcher = threading.Thread(target=watch, args=(traffic,), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 10
    while (len(r.live.challengers) < 2 or r.live.judging) and time.monotonic() < deadline:
        time.sleep(0.05)
    traffic.stop.set()
    watcher.join(5)
    assert [(c.version, c.outcome) for c in r.live.challengers] == [("2", "replaced"), ("3", "retired")]
    assert r.live.champions == ["1"] and r.v2 is None
    assert "LIVE VERDICT RETIRE" in out.getvalue() and "-19.0 pts [-26.0, -12.0]" in out.getvalue()
    assert "v3 WITHDRAWN from live traffic (shadow retired): live verdict: retire" in out.getvalue()


def test_shadow_rows_count_for_the_challenger_and_not_as_served() -> None:
    from mlops.prediction_log import PredictionColumns, read_predictions, to_batch
    from mlops.topics import PREDICTIONS

    bus, out = MemoryBus(), io.StringIO()
    traffic = _traffic(out, bus)
    traffic.stream()
    s = traffic.streams["sea"]
    r = s.loop
    (entity, as_of), (_, label, drifted) = next(iter(s.truth.items()))
    p = bus.producer(client_id="test")
    p.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(model_name="sea", version="2", action="promote",
                                                               role="shadow", traffic_fraction=1.0))
    p.flush()

    def rows(version: str, role: str) -> PredictionColumns:
        return PredictionColumns("r1", "sea", version, ("f",), np.zeros((1, 1)), np.zeros((1, 2)), np.zeros(1),
                                 np.array([label]), [entity], np.array([as_of]), role=role)

    for version, role in (("1", ""), ("2", "shadow")):
        batch = to_batch(rows(version, role))
        assert batch.role == role
        p.send(bus.topic(PREDICTIONS), batch)
    p.flush()
    assert sorted(read_predictions(rec).role for rec in bus.records(bus.topic(PREDICTIONS))) == ["", "shadow"]
    watcher = threading.Thread(target=watch, args=(traffic,), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 10
    while not r.live.shadow_rows and time.monotonic() < deadline:
        time.sleep(0.05)
    traffic.stop.set()
    watcher.join(5)
    assert r.live.shadow_rows == 1 and r.live.challengers[0].rows == 1
    assert r.quality == {("1", drifted): [1.0, 1]}  # only the champion's row was served


def test_with_wait_for_monitor_the_drift_begins_once_the_model_has_answered_enough_requests() -> None:
    out = io.StringIO()
    traffic = _traffic(out, wait_for_monitor=True, monitor_min_records=50)
    s = traffic.streams["sea"]
    config = s.example.config(count=300, drift_at=100, entities=5, seed=3, interval_ms=10.0)
    records = []
    for rec in traffic._drifting(s, config):
        records.append(rec)
        traffic._on_produced(s, rec)
        if rec.index == 140:  # v1 serves and has answered enough requests from here on
            s.serving.set()
            s.loop.requests = 150
    drifted = [r.index for r in records if r.drifted]
    assert drifted == list(range(141, 300)) and s.loop.drift_at == 141
    assert all(r.label == sea_label(r.values, 3) for r in records[141:])
    assert min(r.values["x2"] for r in records[141:]) >= 5  # the permanent drift keeps its covariate shift
    assert "DRIFT injected at record 141" in out.getvalue()
    never = _traffic(io.StringIO(), wait_for_monitor=True)  # never armed: the drift comes halfway to the end
    assert next(r.index for r in never._drifting(never.streams["sea"], config) if r.drifted) == 200


def test_the_episode_ends_when_its_candidate_goes_on_live_traffic_not_when_one_is_refused() -> None:
    bus, out = MemoryBus(), io.StringIO()
    traffic = _traffic(out, bus, worse_challenger=True)
    r = traffic.streams["sea"].loop
    r.drift_t_s = 0.0  # the episode has begun
    p = bus.producer(client_id="test")
    p.send(bus.topic(REGISTRY_LOG), models_pb2.RegistryEvent(
        model_name="sea", version="2", record_kind="state", status="rejected", gate_decision="rejected",
        gate_reason="candidate auc 0.9984 does not beat champion v1 auc 0.9996"))
    p.flush()
    watcher = threading.Thread(target=watch, args=(traffic,), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 10
    while not r.gate and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.gate and not traffic.episode_over.is_set()  # trained too early to see the episode: it goes on
    p.send(bus.topic(MODEL_PROMOTED), models_pb2.ModelPromoted(model_name="sea", version="3", action="promote",
                                                               role="shadow", traffic_fraction=1.0))
    p.flush()
    assert traffic.episode_over.wait(10)
    traffic.stop.set()
    watcher.join(5)


def test_a_newer_challenger_ends_the_guard_of_a_promotion() -> None:
    bus, out = MemoryBus(), io.StringIO()
    traffic = _traffic(out, bus)
    r = traffic.streams["sea"].loop
    p = bus.producer(client_id="test")
    promoted = bus.topic(MODEL_PROMOTED)
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="2", previous_version="1",
                                              action="promote"), key="sea")
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="1", action="promote", role="guard",
                                              traffic_fraction=1.0), key="sea/challenger")
    p.flush()
    watcher = threading.Thread(target=watch, args=(traffic,), daemon=True)
    watcher.start()
    deadline = time.monotonic() + 10
    while not r.live.guard_version and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.live.guard_version == "1"
    # the registry's one second version per model: a later retrain's challenger takes the guard's place (no retire
    # announcement for the guard)
    p.send(promoted, models_pb2.ModelPromoted(model_name="sea", version="3", action="promote", role="shadow",
                                              traffic_fraction=1.0), key="sea/challenger")
    p.flush()
    while not any(c.version == "3" for c in r.live.challengers) and time.monotonic() < deadline:
        time.sleep(0.05)
    traffic.stop.set()
    watcher.join(5)
    assert [c.version for c in r.live.challengers] == ["3"] and r.live.guard_version == ""
