"""Hot entities do not break the false-alarm budget: with the online join, an entity asked for again before its
next event repeats its inputs and score, and the KS windows (whose level assumes independent values) take each
state of an entity once (`core/repeats.py`). A stationary stream whose 100 entities are asked for about 20 times
per state made hundreds of KS false alarms per 60,000 predictions when every row counted; the budget allows 0.01
per 100,000."""

from __future__ import annotations

import math
import random

from test_monitor_core import Recorder, monitor

from services.monitor import Prediction
from services.monitor.core.repeats import RepeatFilter

T0 = 1_700_000_000_000


def hot_entities(seed: int, count: int, shift_at: int | None = None) -> list[Prediction]:
    """Requests for 100 entities at random; an entity's features change with probability 1/20 per request to it
    (x0, x1, x2 uniform on [0, 10]; from `shift_at` on, new states have x2 on [5, 10])."""
    rng = random.Random(seed)
    states: dict[str, tuple[dict[str, float], int]] = {}
    out = []
    for i in range(count):
        entity, t = f"e{rng.randrange(100)}", T0 + i * 10
        if entity not in states or rng.random() < 0.05:
            low = 5.0 if shift_at is not None and i >= shift_at else 0.0
            states[entity] = ({"x0": rng.uniform(0, 10), "x1": rng.uniform(0, 10), "x2": rng.uniform(low, 10)}, t)
        inputs, as_of = states[entity]
        score = 1.0 / (1.0 + math.exp(-(inputs["x0"] + inputs["x1"] - 8.0)))
        out.append(Prediction(f"r{i}", entity, "sea", "1", inputs, score, float(score > 0.5), t, as_of))
    return out


def ks_detections(predictions: list[Prediction], **settings: object) -> list[tuple]:
    rec = Recorder()
    m = monitor(rec, cooldown_ms=0, retrain_timeout_ms=0, **settings)
    for p in predictions:
        m.observe_prediction(p)
    return [d for d in rec.detections if d[0] == "KS"]


def test_a_stationary_stream_of_hot_entities_makes_no_ks_false_alarm() -> None:
    for seed in (1, 2):
        assert ks_detections(hot_entities(seed, 60_000)) == []


def test_every_row_counted_the_same_stream_false_alarms_by_the_hundred() -> None:
    assert len(ks_detections(hot_entities(1, 60_000), distinct_state_entities=0)) > 50  # what the filter prevents


def test_a_shift_of_hot_entities_states_is_still_seen() -> None:
    found = ks_detections(hot_entities(3, 40_000, shift_at=20_000))
    assert found and {feature for _, feature, _, _ in found} <= {"x2"}
    assert min(t for _, _, t, _ in found) > T0 + 20_000 * 10


def test_the_filter_remembers_the_last_state_of_the_entities_seen_last() -> None:
    f = RepeatFilter(capacity=2)
    assert f.fresh("a", 10, 0.5) and not f.fresh("a", 10, 0.5)
    assert f.fresh("a", 20, 0.5) and f.fresh("a", 20, 0.6)  # newer features, or a new score (another input)
    assert f.fresh("", 20, 0.5) and f.fresh("", 20, 0.5)  # no entity: the inputs came with the request
    assert f.fresh("x", 0, 0.5) and f.fresh("x", 0, 0.5)  # no as-of time: the same
    assert f.fresh("b", 10, 0.5) and f.fresh("c", 10, 0.5)  # "a" forgotten: the least recently seen
    assert f.fresh("a", 20, 0.6) and not f.fresh("c", 10, 0.5)
    assert all(RepeatFilter(0).fresh("a", 10, 0.5) for _ in range(3))  # 0: every row counts
