"""Challenger rows through the monitor: the DriftMonitor hands shadow / canary / guard rows to the judge and keeps
them from the champion's drift detectors, while one label reaches the champion's row and the challenger's row of the
same request; the service publishes one ChallengerVerdict on challenger.verdicts (on MemoryBus and, integration, on
the real broker: prediction batches with roles + labels in, the verdict out) and, restarted, does not judge the
same challenger again."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest
from mlops.bus import Bus, StopFlag
from mlops.contracts import events_pb2, models_pb2
from mlops.definitions import load
from mlops.definitions.model import RolloutPolicy
from mlops.prediction_log import PredictionColumns, to_batch
from mlops.topics import CHALLENGER_VERDICTS, LABELS, PREDICTIONS
from monitor_helpers import SEA, apply_definitions
from prometheus_client import REGISTRY
from testkit import wait_until

from services.monitor import DriftMonitor, LabelEvent, MonitorConfig, MonitorSettings, Prediction
from services.monitor.core import ModelPolicy
from services.monitor.edge import MonitorService

SHADOW = RolloutPolicy(mode="shadow", min_labels=100)


def config(rollout: RolloutPolicy = SHADOW, signals: frozenset[str] | None = None) -> MonitorConfig:
    policy = ModelPolicy("m", rollout=rollout)
    if signals is not None:
        policy = ModelPolicy("m", signals=signals, rollout=rollout)
    return MonitorConfig(policies={"m": policy}, revision=1)


def row(i: int, version: str, role: str, right: bool, label: int) -> Prediction:
    predicted = float(label if right else 1 - label)
    t = 1_000_000 + i * 100
    return Prediction(f"r{i}", f"e{i % 7}", "m", version, {"x": float(i % 13)}, predicted, predicted, t, t,
                      role=role)


def feed(m: DriftMonitor, rows: int, second: str = "shadow", second_version: str = "2", champion: str = "1",
         seed: int = 0) -> None:
    """Requests scored by the champion (right 70 %) and `second` (always right), each labelled right after."""
    rng = np.random.default_rng(seed)
    for i in range(rows):
        y = int(rng.integers(0, 2))
        m.observe_prediction(row(i, champion, "champion", rng.random() < 0.7, y))
        m.observe_prediction(row(i, second_version, second, True, y))
        m.observe_label("m", LabelEvent(f"e{i % 7}", 1_000_000 + i * 100, float(y), request_id=f"r{i}"))


def test_shadow_rows_are_judged_and_never_reach_the_champions_drift_detectors():
    m = DriftMonitor(MonitorSettings(), config=config())
    feed(m, 300)
    state = m.models["m"]
    assert state.version == "1" and state.records == 300  # the shadow's rows (v2) neither reset nor fed it
    assert m.joiners["m"].counts.joined == 300  # every label reached the champion's row ...
    [verdict] = m.judge.take_verdicts()  # ... and the shadow's row of the same request: judged, decided
    assert (verdict.verdict, verdict.phase, verdict.verdict_id) == ("promote", "shadow", "m/1/2/shadow")
    assert (verdict.champion_version, verdict.challenger_version) == ("1", "2")
    assert verdict.labelled_rows == 100 and verdict.challenger_metric == 1.0
    assert m.judge.counts.rows == {"shadow": 300}


def test_one_verdict_per_challenger_and_phase_then_promotion_then_guard():
    rollout = RolloutPolicy(mode="shadow", min_labels=100, rollback_margin=0.02, guard_labels=200)
    m = DriftMonitor(MonitorSettings(), config=config(rollout))
    feed(m, 400)
    assert [v.verdict_id for v in m.judge.take_verdicts()] == ["m/1/2/shadow"]  # once, though rows went on
    # v2 promoted: it serves as champion, v1 (the previous champion) is the guard, here the better one
    feed(m, 400, second="guard", second_version="1", champion="2", seed=1)
    [guard] = m.judge.take_verdicts()
    assert (guard.verdict, guard.champion_version, guard.challenger_version) == ("rollback", "2", "1")
    assert m.models["m"].version == "2"  # the champion's drift path follows the promotion as before


def test_the_guards_own_champion_rows_still_in_flight_do_not_end_its_trial():
    """Right after a promotion the old champion's last served rows can come after its first mirrored (guard) rows:
    they are late, not a sign the guard was promoted, and the guard is still judged."""
    rollout = RolloutPolicy(mode="shadow", min_labels=100, rollback_margin=0.02, guard_labels=200)
    m = DriftMonitor(MonitorSettings(), config=config(rollout))
    feed(m, 400)
    m.judge.take_verdicts()
    m.observe_prediction(row(5000, "1", "guard", True, 1))  # the guard's first mirrored row opens its trial
    m.observe_prediction(row(5001, "1", "champion", True, 1))  # v1's last served row, from before the promotion
    feed(m, 400, second="guard", second_version="1", champion="2", seed=1)
    [guard] = m.judge.take_verdicts()
    assert (guard.verdict, guard.phase, guard.champion_version, guard.challenger_version) == (
        "rollback", "guard", "2", "1")


def test_a_canary_arm_is_judged_apart_and_labels_join_the_arm_that_answered():
    m = DriftMonitor(MonitorSettings(), config=config(RolloutPolicy(mode="canary", min_labels=50)))
    rng = np.random.default_rng(2)
    champion_rows = 0
    for i in range(3000):
        y, canary = int(rng.integers(0, 2)), i % 5 == 0
        if canary:
            m.observe_prediction(row(i, "2", "canary", True, y))
        else:
            champion_rows += 1
            m.observe_prediction(row(i, "1", "champion", rng.random() < 0.7, y))
        m.observe_label("m", LabelEvent(f"e{i % 7}", 1_000_000 + i * 100, float(y), request_id=f"r{i}"))
        if verdicts := m.judge.take_verdicts():
            break
    [v] = verdicts
    assert (v.verdict, v.phase, v.labelled_rows) == ("promote", "canary", 50)
    assert m.models["m"].records == champion_rows  # canary rows are no part of the champion's statistics


def test_a_model_without_the_error_signal_is_still_judged():
    m = DriftMonitor(MonitorSettings(), config=config(signals=frozenset({"features"})))
    feed(m, 200)
    assert "m" not in m.joiners  # the champion's drift path joins nothing, as before
    assert [v.verdict for v in m.judge.take_verdicts()] == ["promote"]


def test_a_newer_challenger_replaces_the_trial_and_the_old_ones_rows_in_flight_do_not_displace_it():
    m = DriftMonitor(MonitorSettings(), config=config(RolloutPolicy(mode="shadow", min_labels=500)))
    feed(m, 50)
    feed(m, 30, second_version="3", seed=4)
    trial = m.judge.trials["m"]
    assert (trial.challenger_version, trial.labelled_rows) == ("3", 29)  # from r1: r0 came before v3's trial
    stale = m.judge.counts.stale
    m.observe_prediction(row(7, "2", "shadow", True, 1))  # v2, replaced, still in flight
    assert m.judge.trials["m"] is trial and m.judge.counts.stale == stale + 1


def test_a_revision_without_the_model_ends_its_trial():
    m = DriftMonitor(MonitorSettings(), config=config(RolloutPolicy(mode="shadow", min_labels=500)))
    feed(m, 50)
    assert "m" in m.judge.trials
    m.configure(MonitorConfig(revision=2))
    assert not m.judge.trials


def test_a_new_champion_restarts_the_evidence_and_the_previous_ones_rows_in_flight_are_ignored():
    m = DriftMonitor(MonitorSettings(), config=config(RolloutPolicy(mode="shadow", min_labels=150)))
    feed(m, 100)
    trial = m.judge.trials["m"]
    assert (trial.champion_version, trial.labelled_rows) == ("1", 99)  # r0's champion row came before the trial
    feed(m, 40, champion="3", seed=3)  # the champion changed (an operator's rollback, say): evidence restarts
    assert (trial.champion_version, trial.labelled_rows, trial.restarts) == ("3", 40, 1)
    stale = m.judge.counts.stale
    m.observe_prediction(row(999, "1", "champion", True, 1))  # in flight from v1
    assert m.judge.counts.stale == stale + 1 and trial.champion_version == "3"


# --- the service ----------------------------------------------------------------------------------------------

def send_requests(bus: Bus, first: int, count: int) -> None:
    """`count` one-row requests of SEA logged by the champion v1 (right 70 %) and mirrored to the shadow v2 (always
    right): two PredictionBatches per request with the same request id, keyed by entity."""
    p = bus.producer(client_id="t-inference")
    rng = np.random.default_rng(first)
    names = tuple(n.split(".")[1] for n in load(SEA).models[0].features)
    for i in range(first, first + count):
        y = i % 2
        entity, t = f"e{i % 11}", 1_700_000_000_000 + i * 10
        for version, role, right in (("1", "", rng.random() < 0.7), ("2", "shadow", True)):
            predicted = float(y if right else 1 - y)
            cols = PredictionColumns(
                request_id=f"req-{i}", model_name="sea", model_version=version, feature_names=names,
                x=rng.random((1, len(names))), outputs=np.array([[1 - predicted, predicted]]),
                scores=np.array([predicted]), predicted_labels=np.array([predicted]), entity_ids=[entity],
                as_of_ms=np.array([t]), timestamp_ms=t)
            msg = to_batch(cols)
            msg.role = role
            p.send(bus.topic(PREDICTIONS), msg, key=entity)
    p.flush()


def send_labels(bus: Bus, first: int, count: int) -> None:
    p = bus.producer(client_id="t-labels")
    for i in range(first, first + count):
        p.send(bus.topic(LABELS), events_pb2.Label(entity_id=f"e{i % 11}", event_time_ms=1_700_000_000_000 + i * 10,
                                                   label=float(i % 2), request_id=f"req-{i}"), key=f"e{i % 11}")
    p.flush()


def verdicts(bus: Bus) -> list[models_pb2.ChallengerVerdict]:
    reader = bus.reader([bus.topic(CHALLENGER_VERDICTS)], client_id="t-verdicts")
    try:
        return [r.decode(models_pb2.ChallengerVerdict) for r in reader.read_to_end(10)]
    finally:
        reader.close()


def serve(service: MonitorService, until, timeout: float = 120.0) -> None:  # noqa: ANN001
    stop = StopFlag(install_signals=False)
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(until, timeout=timeout)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_prediction_batches_with_roles_and_labels_in_one_verdict_on_challenger_verdicts_out(bus):
    sea = load(SEA).models[0].model_copy(update={"rollout": RolloutPolicy(mode="shadow", min_labels=100)})
    apply_definitions(bus, SEA, sea=sea)
    settings = MonitorSettings(group_id=f"monitor-{uuid.uuid4().hex[:6]}", poll_timeout_s=0.1)
    before = REGISTRY.get_sample_value("mlops_monitor_challenger_verdicts_total",
                                       {"model": "sea", "phase": "shadow", "verdict": "promote"}) or 0.0
    service = MonitorService(settings, bus)
    send_requests(bus, 0, 300)

    def labelled_after_rows() -> bool:  # the labels come once the rows are in: a label never waits for a trial
        if service.monitor.predictions >= 600 and not service.monitor.labels:
            send_labels(bus, 0, 300)
        return service.monitor.labels >= 300

    serve(service, labelled_after_rows)
    [v] = verdicts(bus)
    assert (v.model_name, v.champion_version, v.challenger_version, v.phase, v.verdict) == (
        "sea", "1", "2", "shadow", "promote")
    assert v.verdict_id == "sea/1/2/shadow" and v.metric == "accuracy" and v.labelled_rows == 100
    assert v.ci_low > 0 and v.difference == pytest.approx(v.challenger_metric - v.champion_metric)
    assert v.confidence == 0.95 and v.test.startswith("paired mSPRT") and v.decided_at_ms > 0
    assert v.reason.startswith("sea v2 (challenger, shadow) vs v1 (champion) on 100 labelled rows")
    assert service.monitor.models["sea"].records == 300  # the champion's rows only
    after = REGISTRY.get_sample_value("mlops_monitor_challenger_verdicts_total",
                                      {"model": "sea", "phase": "shadow", "verdict": "promote"})
    assert after == before + 1
    assert REGISTRY.get_sample_value("mlops_monitor_challenger_labelled_rows",
                                     {"model": "sea", "challenger": "2", "phase": "shadow"}) == 100

    # restarted: the verdict is read back, so more rows of the same challenger are not judged again
    again = MonitorService(settings, bus)
    send_requests(bus, 300, 200)
    send_labels(bus, 300, 200)
    # rows and labels come from two topics: wait for both (labels alone can be read before the rows)
    serve(again, lambda: again.monitor.predictions >= 400 and again.monitor.labels >= 200)
    assert again.monitor.judge.trials["sea"].done
    assert len(verdicts(bus)) == 1
