"""The Redis online store against the real Redis: layout, TTL, version isolation, sync and async."""

from __future__ import annotations

import redis
from mlops.online_store import AsyncOnlineStore, OnlineStore
from mlops.schema import FEATURE_SET, FeatureSet
from mlops.settings import RedisSettings

VALUES = {n: float(i) + 0.25 for i, n in enumerate(FEATURE_SET.names)}


def test_write_and_read_many(redis_settings: RedisSettings) -> None:
    store = OnlineStore(redis_settings)
    store.write("a", VALUES, 1234)
    got = store.read_many(["a", "missing", "a"])
    assert got[1] is None and got[0] == got[2]
    assert got[0] is not None and got[0].values == VALUES and got[0].as_of_ms == 1234
    assert store.read_many([]) == []
    raw = redis.Redis.from_url(redis_settings.url)
    key = store.key("a")
    assert key.startswith(redis_settings.key_prefix + ":")
    fields = raw.hgetall(key)  # operator-readable fields beside the packed vector
    assert (
        fields[b"x0_last"] == b"0.25" and fields[b"feature_set_version"] == b"1" and fields[b"as_of_ms"] == b"1234"
    )
    assert 0 < raw.ttl(key) <= FEATURE_SET.ttl_seconds


def test_other_version_reads_nothing(redis_settings: RedisSettings) -> None:
    OnlineStore(redis_settings).write("a", VALUES, 1)
    v2 = FeatureSet(FEATURE_SET.name, FEATURE_SET.version + 1, FEATURE_SET.features)
    assert OnlineStore(redis_settings, v2).read_many(["a"]) == [None]


async def test_async_store(redis_settings: RedisSettings) -> None:
    store = AsyncOnlineStore(redis_settings)
    try:
        await store.write("b", VALUES, 99)
        got = await store.read_many(["b", "nope"])
        assert got[0] is not None and got[0].values == VALUES and got[1] is None
        assert OnlineStore(redis_settings).read_many(["b"])[0] == got[0]
    finally:
        await store.close()
