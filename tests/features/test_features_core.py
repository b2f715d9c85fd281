"""Unit tests of the features core (no broker): the fold against an independent oracle written plainly here, over
random streams for every aggregation × window kind (categorical fields included), then routing, reconfiguration,
and the bounds on state.

The oracle recomputes each feature from the raw events every time (no state, no accumulators): for the event i of
entity e, the events of e that arrived so far (j <= i) holding the field, filtered by the window as of t_i —
whole: all; tumbling: the same [k*size, (k+1)*size) bucket; hopping: the oldest window [s, s + size) holding t_i,
s the smallest multiple of step above t_i - size; sliding: (t_i - size, t_i] — then aggregated with the standard
library.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from mlops import definitions as d
from mlops.definitions import Aggregation, FieldType
from mlops.definitions.model import AGGREGATIONS_FOR

from services.features.core import DictState, Event, FeaturesConfig, Limits, ReferenceFeatures, fold

T0 = 1_700_000_000_000
VOCAB = ["web", "app", "store"]
FIELDS = [  # (name, type, required)
    {"name": "amount", "type": "float", "required": False},
    {"name": "items", "type": "int"},
    {"name": "express", "type": "bool"},
    {"name": "seen_at", "type": "timestamp", "required": False},
    {"name": "channel", "type": "categorical", "vocabulary": VOCAB, "unknown": "other", "required": False},
]
ROOT = Path(__file__).resolve().parents[2]
WINDOWS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "tumbling": {"kind": "tumbling", "size_s": 10},
    "hopping": {"kind": "hopping", "size_s": 10, "step_s": 4},  # a step that does not divide the size
    "sliding": {"kind": "sliding", "size_s": 7.5},
}


def definitions(features: list[dict[str, Any]], sources: int = 1) -> d.Definitions:
    return d.parse({
        "entities": [{"name": "customer", "id_field": "customer_id"}],
        "sources": [{"name": f"orders{i or ''}", "topic": f"orders{i}.raw", "entity": "customer", "fields": FIELDS}
                    for i in range(sources)],
        "feature_views": [{"name": "v", "entity": "customer", "source": "orders", "features": features}],
    })


def config_of(defs: d.Definitions, limits: Limits | None = None, prior: d.Revision | None = None) -> FeaturesConfig:
    revision = d.plan(prior, defs, "test").revision
    assert revision is not None
    return FeaturesConfig.of(revision, limits)


def random_events(rng: random.Random, n: int = 300, entities: int = 3, disorder_ms: int = 20_000) -> list[Event]:
    """Events a few hundred ms apart, shuffled by up to `disorder_ms` (late events), optional fields sometimes
    absent, the categorical sometimes `__other__`, and repeated event times."""
    out = []
    for i in range(n):
        t = T0 + i * 250 + rng.randrange(-disorder_ms, 1) if rng.random() < 0.2 else T0 + i * 250
        if rng.random() < 0.05 and out:
            t = out[-1].event_time_ms  # a tie
        values: dict[str, float] = {"items": float(rng.randint(1, 9)), "express": float(rng.random() < 0.5)}
        if rng.random() < 0.8:
            values["amount"] = round(rng.uniform(0, 500), 2)
        if rng.random() < 0.7:
            values["seen_at"] = float(T0 + rng.randrange(0, 10**7))
        categories = {}
        if rng.random() < 0.85:
            categories["channel"] = rng.choice([*VOCAB, "__other__"])
        out.append(Event(f"ev{i}", "orders", f"c{rng.randrange(entities)}", t, 0, values, categories))
    return out


# --- the oracle ----------------------------------------------------------------------------------------------


def in_window(window: dict[str, Any] | None, t: int, tj: int) -> bool:
    if window is None:
        return True
    size = round(window["size_s"] * 1000)
    if window["kind"] == "tumbling":
        return tj // size == t // size
    if window["kind"] == "hopping":
        step = round(window["step_s"] * 1000)
        holding = [s for s in range((t - size) // step * step, t + 1, step) if s <= t < s + size]
        start = min(holding)  # the oldest window holding t
        return start <= tj < start + size
    return t - size < tj <= t


def oracle(feature: dict[str, Any], history: list[Event], t: int,
           vocabularies: dict[str, list[str]] | None = None) -> list[float]:
    """One feature's columns over `history` (arrival order) as of time t; `vocabularies` of categorical fields."""
    vocabularies = {"channel": VOCAB} if vocabularies is None else vocabularies
    name = feature["field"]
    categorical = name in vocabularies
    vocab = vocabularies.get(name, [])
    picked = [(e.event_time_ms, j, (e.categories if categorical else e.values).get(name))
              for j, e in enumerate(history)]
    xs = [(tj, j, x) for tj, j, x in picked if x is not None and in_window(feature.get("window"), t, tj)]
    agg = feature["aggregation"]
    if agg == "one_hot":
        if not xs:
            return [math.nan] * len(vocab)
        newest = max(xs, key=lambda p: (p[0], p[1]))[2]
        return [1.0 if v == newest else 0.0 for v in vocab]
    if agg == "count":
        return [float(len(xs))]
    if agg == "distinct_count":
        return [float(len({x for _, _, x in xs}))]
    if not xs:
        return [math.nan]
    values = [x for _, _, x in xs]
    if agg == "last":
        newest = max(xs, key=lambda p: (p[0], p[1]))[2]
        return [float(vocab.index(newest)) if newest in vocab else -1.0] if categorical else [float(newest)]
    return [{"sum": math.fsum, "mean": statistics.fmean, "min": min, "max": max,
             "std": statistics.pstdev}[agg](values)]


def oracle_columns(features: list[dict[str, Any]], history: list[Event], t: int) -> list[float]:
    return [x for f in features for x in oracle(f, history, t)]


class JsonState(DictState):
    """Dict state that stores what a faust table would: every value through JSON and back."""

    def put(self, key: str, value: Any) -> None:
        super().put(key, json.loads(json.dumps(value)))


def same(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all((math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-6)
                                         for a, b in zip(got, want, strict=True))


# --- the fold against the oracle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("aggregation", [a.value for a in Aggregation])
def test_fold_matches_the_oracle(aggregation: str, window: str) -> None:
    features = [{"name": f"{f['name']}_{aggregation}", "field": f["name"], "aggregation": aggregation,
                 **({"window": WINDOWS[window]} if WINDOWS[window] else {})}
                for f in FIELDS if Aggregation(aggregation) in AGGREGATIONS_FOR[FieldType(f["type"])]
                and (aggregation != "one_hot" or f["type"] == "categorical")]
    assert features
    config = config_of(definitions(features))
    rng = random.Random(f"{aggregation}-{window}")
    events = random_events(rng)
    ref = ReferenceFeatures(config)
    ref.state = JsonState()
    seen: dict[str, list[Event]] = {}
    for ev in events:
        history = seen.setdefault(ev.entity_id, [])
        history.append(ev)
        got = list(ref.update(ev)["v"].values())
        want = oracle_columns(features, history, ev.event_time_ms)
        assert same(got, want), (ev, dict(zip(ref.config.views[0].layout.columns, zip(got, want, strict=True),
                                             strict=True)))
    for entity, history in seen.items():  # the online view: as of the entity's newest event
        online = ref.online("v", entity)
        newest = max(e.event_time_ms for e in history)
        assert online is not None and online[0] == newest
        assert same(list(online[1].values()), oracle_columns(features, history, newest))


def test_the_demo_views_match_the_oracle() -> None:
    """The declared examples, whole: SEA's view (last, tumbling mean, hopping count) and delivery's (one_hot,
    sliding mean/std/count, tumbling sum, hopping distinct_count over an optional categorical)."""
    for example, view_name in (("sea", "entity_activity"), ("delivery", "customer_orders")):
        defs = d.load(ROOT / "examples" / example / "definitions.yaml")
        view = defs.feature_view(view_name)
        vocabularies = {f.name: list(f.vocabulary) for f in defs.source(view.source).fields if f.vocabulary}
        features = [f.model_dump(mode="json", exclude_none=True) for f in view.features]
        ref = ReferenceFeatures(config_of(defs))
        rng = random.Random(example)
        history: list[Event] = []
        t = T0
        for i in range(400):
            t += rng.randrange(0, 600_000)
            vals = {"x0": rng.uniform(0, 10), "x1": rng.uniform(0, 10), "x2": rng.uniform(0, 10),
                    "amount": rng.uniform(0, 100), "items": float(rng.randint(1, 5)), "express": 1.0}
            cats = {"channel": rng.choice(["web", "app", "store", "__other__"])}
            if rng.random() < 0.5:
                cats["payment"] = rng.choice(["card", "cash", "voucher"])
            ev = Event(f"e{i}", "", "one", t, 0, vals, cats)
            history.append(ev)
            got = list(ref.update(ev)[view_name].values())
            want = [x for f in features for x in oracle(f, history, t, vocabularies)]
            assert same(got, want), (example, i)


# --- routing, reconfiguration, bounds --------------------------------------------------------------------------


def ev(t: int, amount: float | None = 1.0, source: str = "orders", entity: str = "c1", **categories: str) -> Event:
    values = {"items": 1.0, "express": 0.0} | ({"amount": amount} if amount is not None else {})
    return Event(f"e{t}", source, entity, T0 + t, 0, values, categories)


def test_events_are_routed_by_source_and_an_unnamed_one_belongs_to_the_only_source() -> None:
    one = config_of(definitions([{"name": "n", "field": "amount", "aggregation": "count"}]))
    state = DictState()
    assert [v.view.name for v in fold(one, state, ev(0, source="")) or ()] == ["v"]  # the only source
    assert fold(one, state, ev(1, source="elsewhere")) is None
    two = config_of(definitions([{"name": "n", "field": "amount", "aggregation": "count"}], sources=2))
    assert fold(two, state, ev(2, source="")) is None  # unnamed among several: skipped
    assert fold(two, state, ev(3, source="orders1")) == []  # a declared source without views: nothing to fold
    assert [v.values for v in fold(two, state, ev(4)) or ()] == [{"n": 2.0}]


def test_a_new_view_version_keeps_the_state_of_unchanged_features_only() -> None:
    v1 = definitions([{"name": "n", "field": "amount", "aggregation": "count"},
                      {"name": "s", "field": "amount", "aggregation": "sum"}])
    r1 = d.plan(None, v1, "test").revision
    assert r1 is not None
    ref = ReferenceFeatures(FeaturesConfig.of(r1))
    for t in range(3):
        ref.update(ev(t, amount=2.0))
    v2 = definitions([{"name": "n", "field": "amount", "aggregation": "count"},  # unchanged: keeps counting
                      {"name": "s", "field": "amount", "aggregation": "sum",  # redefined: starts again
                       "window": {"kind": "tumbling", "size_s": 3600}},
                      {"name": "m", "field": "amount", "aggregation": "max"}])  # new
    r2 = d.plan(r1, v2, "test").revision
    assert r2 is not None and r2.view_versions["v"] == 2
    ref.config = FeaturesConfig.of(r2)
    assert ref.config.views[0].layout.version == 2
    assert ref.update(ev(3, amount=5.0))["v"] == {"n": 4.0, "s": 5.0, "m": 5.0}
    assert len(ref.state.get("v:c1")["u"]) == 3  # the old sum's state is gone with this update


def test_sliding_buffer_is_bounded() -> None:
    features = [{"name": "n", "field": "amount", "aggregation": "count", "window": {"kind": "sliding", "size_s": 60}}]
    ref = ReferenceFeatures(config_of(definitions(features), Limits(sliding_max_events=3)))
    assert [ref.update(ev(t))["v"]["n"] for t in range(5)] == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_state_past_the_lateness_bound_is_dropped() -> None:
    features = [{"name": "n", "field": "amount", "aggregation": "count", "window": {"kind": "tumbling", "size_s": 1}},
                {"name": "w", "field": "amount", "aggregation": "count", "window": {"kind": "sliding", "size_s": 1}}]
    ref = ReferenceFeatures(config_of(definitions(features), Limits(grace_ms=2_000)))
    ref.update(ev(0))
    ref.update(ev(10_000))
    units = ref.state.get("v:c1")["u"]
    assert all(len(s) == 1 for s in units.values())  # the bucket and the buffered event of t=0 are gone
    assert ref.update(ev(9_000))["v"] == {"n": 1.0, "w": 1.0}  # 1 s late: within the bound, counted alone
    assert ref.update(ev(9_500))["v"] == {"n": 2.0, "w": 2.0}
    assert ref.update(ev(100))["v"] == {"n": 1.0, "w": 1.0}  # too late: folded alone, then dropped
    ref.update(ev(10_500))  # ... on the next update
    buffered = ref.state.get("v:c1")["u"]["orders.amount|sliding:1000"]
    assert [t - T0 for t, _ in buffered] == [9_000, 9_500, 10_000, 10_500]


def test_missing_values_are_skipped_and_an_empty_window_reads_nan_or_zero() -> None:
    features = [{"name": "n", "field": "amount", "aggregation": "count"},
                {"name": "m", "field": "amount", "aggregation": "mean"},
                {"name": "c", "field": "channel", "aggregation": "one_hot"},
                {"name": "k", "field": "channel", "aggregation": "distinct_count"}]
    ref = ReferenceFeatures(config_of(definitions(features)))
    got = ref.update(ev(0, amount=None))["v"]
    assert got["n"] == 0.0 and got["k"] == 0.0 and math.isnan(got["m"]) and math.isnan(got["c=web"])
    got = ref.update(ev(1, amount=3.0, channel="__other__"))["v"]
    assert got == {"n": 1.0, "m": 3.0, "c=web": 0.0, "c=app": 0.0, "c=store": 0.0, "k": 1.0}


def test_batch_settings_refuse_a_wait_that_would_stall() -> None:
    from pydantic import ValidationError

    from services.features.settings import FeaturesSettings

    assert FeaturesSettings(batch_wait_s=0.001, batch_max=1).batch_max == 1
    with pytest.raises(ValidationError, match="batch_wait_s"):
        FeaturesSettings(batch_wait_s=0)
    with pytest.raises(ValidationError, match="batch_max"):
        FeaturesSettings(batch_max=0)
