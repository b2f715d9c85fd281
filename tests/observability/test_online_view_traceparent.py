"""Integration (real Redis): an online view stores the traceparent of the feature update that wrote it and
read_many returns it, still in one round trip; an untraced update clears it; a record that is not ours reads as
missing instead of as garbage."""

from __future__ import annotations

import pytest
import redis
from mlops.online_store import (
    TRACEPARENT_FIELD,
    AsyncOnlineStore,
    OnlineStoreError,
    SyncRedisOnlineStore,
    ViewLayout,
    ViewUpdate,
    pack,
)
from mlops.settings import RedisSettings

LAYOUT = ViewLayout("entity_activity", 1, ("x0_last", "x1_last", "x2_last", "x0_mean_60s", "x1_mean_60s",
                                           "events_30s"))
VALUES = {n: float(i) + 0.5 for i, n in enumerate(LAYOUT.columns)}
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_traceparent_round_trip_and_clear(redis_settings: RedisSettings) -> None:
    store = SyncRedisOnlineStore(redis_settings)
    try:
        store.write(LAYOUT, "a", VALUES, 10, TP)
        store.write(LAYOUT, "b", VALUES, 11)
        a, b, missing = store.read_many(LAYOUT, ["a", "b", "nope"])
        assert a is not None and a.traceparent == TP and a.values == VALUES and a.as_of_ms == 10
        assert b is not None and b.traceparent == "" and b.values == VALUES and missing is None
        store.write(LAYOUT, "a", VALUES, 12)  # an untraced update must not keep the older update's traceparent
        again = store.read_many(LAYOUT, ["a"])[0]
        assert again is not None and again.traceparent == "" and again.as_of_ms == 12
        raw = redis.Redis.from_url(redis_settings.url)
        store.write(LAYOUT, "c", VALUES, 13, TP)
        assert raw.hget(store.key(LAYOUT, "c"), TRACEPARENT_FIELD) == TP.encode()  # operators see it with HGETALL
    finally:
        store.close()


def test_record_of_another_shape_or_version_reads_as_missing(redis_settings: RedisSettings) -> None:
    store = SyncRedisOnlineStore(redis_settings)
    try:
        raw = redis.Redis.from_url(redis_settings.url)
        vec_key = store.key(LAYOUT, "odd").replace(":online:", ":online-vec:")
        good = pack(LAYOUT, VALUES, 5, TP)
        raw.set(vec_key, good[:-1])  # truncated: not a record of this feature set
        assert store.read_many(LAYOUT, ["odd"]) == [None]
        raw.set(vec_key, good[:8] + (LAYOUT.version + 1).to_bytes(4, "little") + good[12:])  # other version
        assert store.read_many(LAYOUT, ["odd"]) == [None]
        raw.set(vec_key, good)
        got = store.read_many(LAYOUT, ["odd"])[0]
        assert got is not None and got.values == VALUES and got.as_of_ms == 5 and got.traceparent == TP
        with pytest.raises(OnlineStoreError, match="traceparent longer"):
            pack(LAYOUT, VALUES, 5, TP + "-extra")
    finally:
        store.close()


async def test_async_store_returns_traceparent(redis_settings: RedisSettings) -> None:
    store = AsyncOnlineStore(redis_settings)
    try:
        await store.write_many([ViewUpdate(LAYOUT, "x", VALUES, 20, TP)])
        got = await store.read_many(LAYOUT, ["x", "y"])
        assert got[0] is not None and got[0].traceparent == TP and got[1] is None
    finally:
        await store.close()
