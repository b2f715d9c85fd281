"""Window aggregates are idempotent under replay: after a crash faust restores state that may already hold events
it then consumes again; every view skips an event id it has folded, so each aggregate equals the reference computed
on the de-duplicated stream (the demo views, all window kinds). And a Redis outage holds the batch instead of failing
it (a failed batch's events would be skipped as replays, its views left stale)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import redis
from mlops import definitions as d
from mlops.bus import MemoryBus
from mlops.online_store import MemoryOnlineStore, OnlineStoreUnavailable, ViewUpdate

from services.features.core import Event, FeaturesConfig, Limits, ReferenceFeatures, fold

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000


def _config(example: str, limits: Limits | None = None) -> FeaturesConfig:
    revision = d.plan(None, d.load(ROOT / "examples" / example / "definitions.yaml"), "test").revision
    assert revision is not None
    return FeaturesConfig.of(revision, limits)


def _stream(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    out, t = [], T0
    for i in range(n):
        t += rng.randrange(0, 20_000)
        late = rng.randrange(0, 60_000) if rng.random() < 0.1 else 0
        values = {"x0": rng.uniform(0, 10), "x1": rng.uniform(0, 10), "x2": rng.uniform(0, 10),
                  "amount": rng.uniform(0, 100), "items": float(rng.randint(1, 5)), "express": 1.0}
        cats = {"channel": rng.choice(["web", "app", "store"]), "payment": rng.choice(["card", "cash"])}
        out.append(Event(f"ev{i}", "", f"ent{rng.randrange(5)}", t - late, 0, values, cats))
    return out


def _with_replays(events: list[Event], seed: int, reach: int) -> list[Event]:
    """`events` with crashes: at random points, up to `reach` already processed events are delivered again."""
    rng = random.Random(seed)
    out: list[Event] = []
    for i, event in enumerate(events):
        out.append(event)
        if i > 0 and rng.random() < 0.05:
            out.extend(events[max(0, i - rng.randrange(1, reach)):i + 1])  # consumed again from an older offset
    return out


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(x) and math.isnan(b[k])) or math.isclose(x, b[k], rel_tol=1e-9, abs_tol=1e-9)
        for k, x in a.items())


def test_replayed_events_do_not_change_any_aggregate() -> None:
    for example in ("sea", "delivery"):
        events = _stream(600, seed=1)
        replayed = _with_replays(events, seed=2, reach=40)
        assert len(replayed) > len(events) + 100  # the replays are really there
        reference, under_replay = ReferenceFeatures(_config(example)), ReferenceFeatures(_config(example))
        want = [reference.update(e) for e in events]
        got, seen = [], set()
        for e in replayed:
            vectors = under_replay.update(e)
            if e.event_id in seen:
                assert vectors == {}, (example, e.event_id)  # a replay yields no vector either
            else:
                got.append(vectors)
            seen.add(e.event_id)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.keys() == w.keys() and all(_same(g[v], w[v]) for v in w), example
        for view in (v.name for v in reference.config.views):
            for entity in (f"ent{i}" for i in range(5)):
                a, b = reference.online(view, entity), under_replay.online(view, entity)
                assert (a is None and b is None) or (a and b and a[0] == b[0] and _same(a[1], b[1]))


def test_remembered_ids_are_bounded_and_zero_turns_deduplication_off() -> None:
    config = _config("sea", Limits(remembered_events=3))
    ref = ReferenceFeatures(config)
    for i in range(10):
        ref.update(Event(f"ev{i}", "", "e", T0 + i, 0, {"x0": 1.0, "x1": 1.0, "x2": 1.0}))
    assert len(ref.state.get("entity_activity:e")["ids"]) == 3
    assert ref.update(Event("ev9", "", "e", T0 + 9, 0, {"x0": 1.0, "x1": 1.0, "x2": 1.0})) == {}
    assert ref.update(Event("ev0", "", "e", T0, 0, {"x0": 1.0, "x1": 1.0, "x2": 1.0})) != {}  # forgotten: folded

    off = ReferenceFeatures(_config("sea", Limits(remembered_events=0)))
    twice = Event("a", "", "e", T0, 0, {"x0": 1.0, "x1": 1.0, "x2": 1.0})
    assert off.update(twice) != {} and off.update(twice) != {}
    nameless = ReferenceFeatures(config)  # an event without an id cannot be recognised: always folded
    anon = Event("", "", "e", T0, 0, {"x0": 1.0, "x1": 1.0, "x2": 1.0})
    assert nameless.update(anon) != {} and nameless.update(anon) != {}
    assert fold(config, nameless.state, anon) is not None


class FlakyStore(MemoryOnlineStore):
    """An online store whose Redis is unavailable for the first `outages` writes."""

    def __init__(self, outages: int) -> None:
        super().__init__()
        self.outages, self.attempts = outages, 0

    async def write_many(self, updates: Sequence[ViewUpdate]) -> None:
        self.attempts += 1
        if self.attempts <= self.outages:
            raise OnlineStoreUnavailable("write", redis.ConnectionError("Connection refused"))
        await super().write_many(updates)


async def test_a_batch_waits_out_a_redis_outage_instead_of_failing() -> None:
    """A failed batch would be consumed again, but its events are folded already (and so skipped as replays): the
    views would stay stale. The batch's write is retried until Redis answers."""
    from test_features_edge import SEA, Tables, featurizer, layout, sea

    bus, store = MemoryBus(), FlakyStore(outages=2)
    f = featurizer(bus, store)  # type: ignore[arg-type]
    await f.handle([sea(0, "a", T0, 1.0)], Tables())
    assert store.attempts == 3
    [a] = await store.read_many(layout(SEA, "entity_activity"), ["a"])
    assert a is not None and a.as_of_ms == T0
