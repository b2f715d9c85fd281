"""Integration (real Redis): the online view stores the traceparent of the feature update that wrote it and
read_many returns it, still in one round trip; an untraced update clears it; a record that is not ours reads as
missing instead of as garbage."""

from __future__ import annotations

import pytest
import redis
from mlops.online_store import TRACEPARENT_FIELD, AsyncOnlineStore, OnlineStoreError, SyncRedisOnlineStore, pack
from mlops.schema import FEATURE_SET
from mlops.settings import RedisSettings

VALUES = {n: float(i) + 0.5 for i, n in enumerate(FEATURE_SET.names)}
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_traceparent_round_trip_and_clear(redis_settings: RedisSettings) -> None:
    store = SyncRedisOnlineStore(redis_settings)
    try:
        store.write("a", VALUES, 10, TP)
        store.write("b", VALUES, 11)
        a, b, missing = store.read_many(["a", "b", "nope"])
        assert a is not None and a.traceparent == TP and a.values == VALUES and a.as_of_ms == 10
        assert b is not None and b.traceparent == "" and b.values == VALUES and missing is None
        store.write("a", VALUES, 12)  # an untraced update must not keep the older update's traceparent
        again = store.read_many(["a"])[0]
        assert again is not None and again.traceparent == "" and again.as_of_ms == 12
        raw = redis.Redis.from_url(redis_settings.url)
        store.write("c", VALUES, 13, TP)
        assert raw.hget(store.key("c"), TRACEPARENT_FIELD) == TP.encode()  # operators see it with HGETALL
    finally:
        store.close()


def test_record_of_another_shape_or_version_reads_as_missing(redis_settings: RedisSettings) -> None:
    store = SyncRedisOnlineStore(redis_settings)
    try:
        raw = redis.Redis.from_url(redis_settings.url)
        vec_key = store.key("odd").replace(":online:", ":online-vec:")
        good = pack(FEATURE_SET, VALUES, 5, TP)
        raw.set(vec_key, good[:-1])  # truncated: not a record of this feature set
        assert store.read_many(["odd"]) == [None]
        raw.set(vec_key, good[:8] + (FEATURE_SET.version + 1).to_bytes(4, "little") + good[12:])  # other version
        assert store.read_many(["odd"]) == [None]
        raw.set(vec_key, good)
        got = store.read_many(["odd"])[0]
        assert got is not None and got.values == VALUES and got.as_of_ms == 5 and got.traceparent == TP
        with pytest.raises(OnlineStoreError, match="traceparent longer"):
            pack(FEATURE_SET, VALUES, 5, TP + "-extra")
    finally:
        store.close()


async def test_async_store_returns_traceparent(redis_settings: RedisSettings) -> None:
    store = AsyncOnlineStore(redis_settings)
    try:
        await store.write("x", VALUES, 20, TP)
        got = (await store.read_many(["x", "y"]))
        assert got[0] is not None and got[0].traceparent == TP and got[1] is None
    finally:
        await store.close()
