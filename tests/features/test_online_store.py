"""The online store's contract, run against every backend (Redis, the real server; memory), then what only the
Redis layout promises (operator hashes, key prefix, the blocking client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest
import redis
from mlops.online_store import (
    MemoryOnlineStore,
    MissingFeatures,
    OnlineStore,
    RedisOnlineStore,
    SyncRedisOnlineStore,
    TraceparentTooLong,
)
from mlops.schema import FEATURE_SET, FeatureSet
from mlops.settings import RedisSettings

VALUES = {n: float(i) + 0.25 for i, n in enumerate(FEATURE_SET.names)}
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
V2 = replace(FEATURE_SET, version=FEATURE_SET.version + 1)


@dataclass
class Backend:
    """Stores of one backend that share data (like two clients of one server), and a way to let time pass."""

    make: Callable[[FeatureSet], OnlineStore]
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

        def make(feature_set: FeatureSet = FEATURE_SET) -> OnlineStore:
            made.append(RedisOnlineStore(settings, feature_set))
            return made[-1]

        yield Backend(make, asyncio.sleep)
    else:
        records: dict[str, tuple[bytes, float]] = {}
        clock = _Clock()

        def make(feature_set: FeatureSet = FEATURE_SET) -> OnlineStore:
            made.append(MemoryOnlineStore(feature_set, records=records, clock=clock))
            return made[-1]

        yield Backend(make, clock.advance)
    for store in made:
        await store.close()


# --- the contract: every backend -------------------------------------------------------------------------------


async def test_write_and_read_many(backend: Backend) -> None:
    store = backend.make(FEATURE_SET)
    await store.write_many([("a", VALUES, 1234, ""), ("b", VALUES, 99, TP)])
    got = await store.read_many(["a", "missing", "a", "b"])
    assert got[1] is None and got[0] == got[2]
    a, b = got[0], got[3]
    assert a is not None and a.entity_id == "a" and a.values == VALUES and a.as_of_ms == 1234
    assert a.feature_set_version == FEATURE_SET.version and a.traceparent == ""
    assert b is not None and b.values == VALUES and b.as_of_ms == 99 and b.traceparent == TP
    assert await store.read_many([]) == []
    assert await backend.make(FEATURE_SET).read_many(["b"]) == [b]  # another client sees the write


async def test_write_replaces_the_view_and_an_untraced_update_clears_the_traceparent(backend: Backend) -> None:
    store = backend.make(FEATURE_SET)
    await store.write_many([("a", VALUES, 10, TP)])
    newer = {n: v + 1.0 for n, v in VALUES.items()}
    await store.write_many([("a", newer, 12, "")])
    [again] = await store.read_many(["a"])
    assert again is not None and again.values == newer and again.as_of_ms == 12 and again.traceparent == ""


async def test_values_read_back_as_float32(backend: Backend) -> None:
    store = backend.make(FEATURE_SET)
    await store.write_many([("a", dict.fromkeys(FEATURE_SET.names, 0.1), 1, "")])
    [got] = await store.read_many(["a"])
    assert got is not None and set(got.values.values()) == {float(np.float32(0.1))}


async def test_other_version_reads_nothing(backend: Backend) -> None:
    await backend.make(FEATURE_SET).write_many([("a", VALUES, 1, "")])
    assert await backend.make(V2).read_many(["a"]) == [None]


async def test_a_bad_view_writes_nothing_of_its_batch(backend: Backend) -> None:
    store = backend.make(FEATURE_SET)
    partial = {n: v for n, v in VALUES.items() if n != FEATURE_SET.names[-1]}
    with pytest.raises(MissingFeatures, match=FEATURE_SET.names[-1]):
        await store.write_many([("good", VALUES, 1, ""), ("bad", partial, 1, "")])
    with pytest.raises(TraceparentTooLong, match="traceparent longer"):
        await store.write_many([("good", VALUES, 1, ""), ("bad", VALUES, 1, TP + "-extra")])
    assert await store.read_many(["good", "bad"]) == [None, None]


async def test_a_view_expires_ttl_seconds_after_its_last_write(backend: Backend) -> None:
    short = replace(FEATURE_SET, ttl_seconds=1)
    store = backend.make(short)
    await store.write_many([("a", VALUES, 1, "")])
    await backend.advance(0.5)
    await store.write_many([("a", VALUES, 2, "")])  # re-arms the TTL
    await backend.advance(0.5)  # past the first write's TTL
    [got] = await store.read_many(["a"])
    assert got is not None and got.as_of_ms == 2
    await backend.advance(0.7)
    assert await store.read_many(["a"]) == [None]


# --- the Redis layout -----------------------------------------------------------------------------------------


def test_redis_keeps_an_operator_hash_beside_the_record(redis_settings: RedisSettings) -> None:
    store = SyncRedisOnlineStore(redis_settings)
    try:
        store.write("a", VALUES, 1234)
        assert store.read_many(["a"])[0] is not None
        raw = redis.Redis.from_url(redis_settings.url)
        key = store.key("a")
        assert key.startswith(redis_settings.key_prefix + ":")
        fields = raw.hgetall(key)
        assert (
            fields[b"x0_last"] == b"0.25" and fields[b"feature_set_version"] == b"1" and fields[b"as_of_ms"] == b"1234"
        )
        assert 0 < raw.ttl(key) <= FEATURE_SET.ttl_seconds
        vec_key = key.replace(":online:", ":online-vec:")
        assert 0 < raw.ttl(vec_key) <= FEATURE_SET.ttl_seconds
    finally:
        store.close()


async def test_sync_and_async_redis_clients_read_each_other(redis_settings: RedisSettings) -> None:
    store, sync = RedisOnlineStore(redis_settings), SyncRedisOnlineStore(redis_settings)
    try:
        await store.write("b", VALUES, 99)
        sync.write("c", VALUES, 100, TP)
        got = await store.read_many(["b", "c", "nope"])
        assert got[0] is not None and got[0].values == VALUES and got[2] is None
        assert sync.read_many(["b", "c"]) == got[:2]
    finally:
        await store.close()
        sync.close()
