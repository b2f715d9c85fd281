"""The online store's contract, run against every backend (Redis, the real server; memory), then what only the
Redis layout promises (operator hashes, key prefix, the blocking client)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import redis
from mlops import definitions as d
from mlops.online_store import (
    MemoryOnlineStore,
    MissingFeatures,
    OnlineStore,
    RedisOnlineStore,
    SyncRedisOnlineStore,
    TraceparentTooLong,
    ViewLayout,
    ViewUpdate,
    view_layouts,
)
from mlops.settings import RedisSettings

ROOT = Path(__file__).resolve().parents[2]
SEA = d.load(ROOT / "examples" / "sea" / "definitions.yaml")
DELIVERY = d.load(ROOT / "examples" / "delivery" / "definitions.yaml")
LAYOUT = ViewLayout.of(SEA, "entity_activity", 1)
VALUES = {n: float(i) + 0.25 for i, n in enumerate(LAYOUT.columns)}
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
V2 = replace(LAYOUT, version=LAYOUT.version + 1)


def up(entity: str, values: dict[str, float], as_of_ms: int, tp: str = "", layout: ViewLayout = LAYOUT) -> ViewUpdate:
    return ViewUpdate(layout, entity, values, as_of_ms, tp)


@dataclass
class Backend:
    """Stores of one backend that share data (like two clients of one server), and a way to let time pass."""

    make: Callable[[], OnlineStore]
    advance: Callable[[float], Awaitable[None]]  # real sleep for Redis, a fake clock for memory


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["redis", "memory"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    made: list[OnlineStore] = []
    if request.param == "redis":
        settings: RedisSettings = request.getfixturevalue("redis_settings")

        def make() -> OnlineStore:
            made.append(RedisOnlineStore(settings))
            return made[-1]

        yield Backend(make, asyncio.sleep)
    else:
        records: dict[str, tuple[bytes, float]] = {}
        clock = _Clock()

        def make() -> OnlineStore:
            made.append(MemoryOnlineStore(records=records, clock=clock))
            return made[-1]

        yield Backend(make, clock.advance)
    for store in made:
        await store.close()


# --- the contract: every backend -------------------------------------------------------------------------------


async def test_write_and_read_many(backend: Backend) -> None:
    store = backend.make()
    await store.write_many([up("a", VALUES, 1234), up("b", VALUES, 99, TP)])
    got = await store.read_many(LAYOUT, ["a", "missing", "a", "b"])
    assert got[1] is None and got[0] == got[2]
    a, b = got[0], got[3]
    assert a is not None and a.entity_id == "a" and a.values == VALUES and a.as_of_ms == 1234
    assert a.view_version == LAYOUT.version and a.traceparent == ""
    assert b is not None and b.values == VALUES and b.as_of_ms == 99 and b.traceparent == TP
    assert await store.read_many(LAYOUT, []) == []
    assert await backend.make().read_many(LAYOUT, ["b"]) == [b]  # another client sees the write


async def test_one_write_holds_several_views_and_each_reads_by_its_layout(backend: Backend) -> None:
    orders = ViewLayout.of(DELIVERY, "customer_orders", 3)
    order_values = dict.fromkeys(orders.columns, math.nan) | {"channel=web": 1.0, "amount_last": 12.5}
    store = backend.make()
    await store.write_many([up("a", VALUES, 5), up("a", order_values, 7, layout=orders)])
    [sea] = await store.read_many(LAYOUT, ["a"])
    [cust] = await store.read_many(orders, ["a"])
    assert sea is not None and sea.values == VALUES and sea.as_of_ms == 5
    assert cust is not None and cust.view_version == 3 and cust.as_of_ms == 7
    assert list(cust.values) == list(orders.columns) and cust.values["channel=web"] == 1.0
    assert math.isnan(cust.values["amount_std_1h"])  # no value yet reads back as NaN


async def test_write_replaces_the_view_and_an_untraced_update_clears_the_traceparent(backend: Backend) -> None:
    store = backend.make()
    await store.write_many([up("a", VALUES, 10, TP)])
    newer = {n: v + 1.0 for n, v in VALUES.items()}
    await store.write_many([up("a", newer, 12)])
    [again] = await store.read_many(LAYOUT, ["a"])
    assert again is not None and again.values == newer and again.as_of_ms == 12 and again.traceparent == ""


async def test_values_read_back_as_float32(backend: Backend) -> None:
    store = backend.make()
    await store.write_many([up("a", dict.fromkeys(LAYOUT.columns, 0.1), 1)])
    [got] = await store.read_many(LAYOUT, ["a"])
    assert got is not None and set(got.values.values()) == {float(np.float32(0.1))}


async def test_each_version_reads_its_own_views(backend: Backend) -> None:
    """A reader of version 2 misses what version 1 wrote, and may read it again with version 1's layout (what
    inference does for entities not yet updated since a view changed)."""
    store = backend.make()
    await store.write_many([up("a", VALUES, 1)])
    assert await store.read_many(V2, ["a"]) == [None]
    wider = replace(V2, columns=(*LAYOUT.columns, "x9_last"))
    await store.write_many([up("b", VALUES | {"x9_last": 9.0}, 2, layout=wider)])
    got = await store.read_many(wider, ["a", "b"])
    assert got[0] is None and got[1] is not None and got[1].values["x9_last"] == 9.0
    [old] = await store.read_many(LAYOUT, ["a"])
    assert old is not None and old.view_version == 1 and old.values == VALUES


async def test_a_bad_view_writes_nothing_of_its_batch(backend: Backend) -> None:
    store = backend.make()
    partial = {n: v for n, v in VALUES.items() if n != LAYOUT.columns[-1]}
    with pytest.raises(MissingFeatures, match=LAYOUT.columns[-1]):
        await store.write_many([up("good", VALUES, 1), up("bad", partial, 1)])
    with pytest.raises(TraceparentTooLong, match="traceparent longer"):
        await store.write_many([up("good", VALUES, 1), up("bad", VALUES, 1, TP + "-extra")])
    assert await store.read_many(LAYOUT, ["good", "bad"]) == [None, None]


async def test_a_view_expires_ttl_s_after_its_last_write(backend: Backend) -> None:
    short = replace(LAYOUT, ttl_s=1)
    store = backend.make()
    await store.write_many([up("a", VALUES, 1, layout=short)])
    await backend.advance(0.5)
    await store.write_many([up("a", VALUES, 2, layout=short)])  # re-arms the TTL
    await backend.advance(0.5)  # past the first write's TTL
    [got] = await store.read_many(short, ["a"])
    assert got is not None and got.as_of_ms == 2
    await backend.advance(0.7)
    assert await store.read_many(short, ["a"]) == [None]


# --- layouts from the definitions -----------------------------------------------------------------------------


def test_layouts_come_from_the_definitions_and_the_revision() -> None:
    assert LAYOUT.columns == SEA.feature_names(SEA.feature_view("entity_activity")) and LAYOUT.ttl_s == 86400
    revision = d.plan(None, DELIVERY, "test").revision
    assert revision is not None
    [orders] = view_layouts(revision).values()
    assert orders.name == "customer_orders" and orders.version == revision.view_versions["customer_orders"]
    assert orders.ttl_s == 604800 and orders.columns[3:6] == ("channel=web", "channel=app", "channel=store")


# --- the Redis layout -----------------------------------------------------------------------------------------


def test_redis_keeps_an_operator_hash_beside_the_record(redis_settings: RedisSettings) -> None:
    store = SyncRedisOnlineStore(redis_settings)
    try:
        store.write(LAYOUT, "a", VALUES, 1234)
        assert store.read_many(LAYOUT, ["a"])[0] is not None
        raw = redis.Redis.from_url(redis_settings.url)
        key = store.key(LAYOUT, "a")
        assert key == f"{redis_settings.key_prefix}:online:entity_activity:v1:a"
        fields = raw.hgetall(key)
        assert fields[b"x0_last"] == b"0.25" and fields[b"view_version"] == b"1" and fields[b"as_of_ms"] == b"1234"
        assert 0 < raw.ttl(key) <= LAYOUT.ttl_s
        vec_key = key.replace(":online:", ":online-vec:")
        assert 0 < raw.ttl(vec_key) <= LAYOUT.ttl_s
    finally:
        store.close()


async def test_sync_and_async_redis_clients_read_each_other(redis_settings: RedisSettings) -> None:
    store, sync = RedisOnlineStore(redis_settings), SyncRedisOnlineStore(redis_settings)
    try:
        await store.write_many([up("b", VALUES, 99)])
        sync.write(LAYOUT, "c", VALUES, 100, TP)
        got = await store.read_many(LAYOUT, ["b", "c", "nope"])
        assert got[0] is not None and got[0].values == VALUES and got[2] is None
        assert sync.read_many(LAYOUT, ["b", "c"]) == got[:2]
    finally:
        await store.close()
        sync.close()
