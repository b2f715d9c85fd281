"""A Redis outage reaches clients as gRPC UNAVAILABLE (not INTERNAL) within the request deadline: with a failing
double (unit) and with a real Redis of this test's own, killed while the server serves (integration)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
import tritonclient.grpc as tc
from inference_helpers import SEA, SEA_COLUMNS, wait_until
from mlops.online_store import (
    OnlineFeatures,
    OnlineStoreUnavailable,
    RedisOnlineStore,
    SyncRedisOnlineStore,
    ViewLayout,
    ViewUpdate,
)
from mlops.settings import RedisSettings
from mlops_tools.procs import free_port
from tritonclient.utils import InferenceServerException

LAYOUT = ViewLayout.of(SEA, "entity_activity", 1)
DEADLINE_S = 5.0  # the client's request deadline: an answer after it would be DEADLINE_EXCEEDED, not UNAVAILABLE


class DownStore:
    """An online store whose Redis is gone: every call fails as RedisOnlineStore does in an outage."""

    async def write_many(self, updates: Sequence[ViewUpdate]) -> None:
        raise OnlineStoreUnavailable("write", redis.ConnectionError("Connection refused"))

    async def read_many(self, layout: ViewLayout, entity_ids: Sequence[str]) -> list[OnlineFeatures | None]:
        raise OnlineStoreUnavailable("read", redis.ConnectionError("Connection refused"))

    async def close(self) -> None:
        return None


def _infer_by_entity(url: str, *entity_ids: str) -> tc.InferResult:
    client = tc.InferenceServerClient(url)
    try:
        inp = tc.InferInput("entity_id", [len(entity_ids)], "BYTES")
        inp.set_data_from_numpy(np.array([e.encode() for e in entity_ids], dtype=np.object_))
        return client.infer("sea", [inp], client_timeout=DEADLINE_S)
    finally:
        client.close()


def _status_of(url: str, *entity_ids: str) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        _infer_by_entity(url, *entity_ids)
    return str(info.value.status()), info.value.message()


def test_store_outage_is_unavailable_and_tensors_still_serve(server_factory, model_file: Path) -> None:  # type: ignore[no-untyped-def]
    running = server_factory(store=DownStore(), model_path=model_file)
    status, message = _status_of(running.url, "e1")
    assert status == str(grpc.StatusCode.UNAVAILABLE), (status, message)
    assert "online store" in message and "Connection refused" in message
    client = tc.InferenceServerClient(running.url)  # a request carrying its features needs no store
    inp = tc.InferInput("input", [1, len(SEA.model("sea").features)], "FP32")
    inp.set_data_from_numpy(np.ones((1, len(SEA.model("sea").features)), dtype=np.float32))
    assert client.infer("sea", [inp]).as_numpy("probabilities").shape == (1, 2)
    client.close()


class OwnRedis:
    """A redis-server of this test alone on a free port (never the shared stack's), without persistence."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is not installed (mlops stack up installs it)"
        self.proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_until(lambda: _pings(client), timeout=10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


@pytest.mark.integration
def test_redis_killed_while_serving_answers_unavailable_then_recovers(server_factory, model_file: Path,
                                                                      own_redis: OwnRedis) -> None:  # type: ignore[no-untyped-def]
    settings = RedisSettings(url=f"redis://127.0.0.1:{own_redis.port}/0", key_prefix="outage")
    writer = SyncRedisOnlineStore(settings)
    writer.write(LAYOUT, "e1", dict.fromkeys(SEA_COLUMNS, 2.0), as_of_ms=1_700_000_000_000)
    running = server_factory(store=RedisOnlineStore(settings), model_path=model_file)
    assert _infer_by_entity(running.url, "e1").as_numpy("probabilities").shape == (1, 2)

    own_redis.kill()
    started = time.monotonic()
    status, message = _status_of(running.url, "e1")
    print(f"\nkilled Redis: {status} after {time.monotonic() - started:.2f}s")
    assert status == str(grpc.StatusCode.UNAVAILABLE), (status, message)
    assert "online store" in message
    with pytest.raises(OnlineStoreUnavailable):  # the blocking client maps the outage the same way
        writer.read_many(LAYOUT, ["e1"])

    own_redis.start()  # same port, empty (no persistence): the server reconnects by itself
    status, message = _status_of(running.url, "e1")
    assert status == str(grpc.StatusCode.NOT_FOUND), (status, message)
    writer.write(LAYOUT, "e1", dict.fromkeys(SEA_COLUMNS, 2.0), as_of_ms=1_700_000_000_001)
    assert _infer_by_entity(running.url, "e1").as_numpy("probabilities").shape == (1, 2)
    writer.close()


def test_a_redis_that_never_answers_is_unavailable_within_the_deadline(server_factory, model_file: Path) -> None:  # type: ignore[no-untyped-def]
    """A socket that accepts but never replies (a hung Redis): the bounded reply timeout and retries answer
    UNAVAILABLE before the client's deadline (redis-py's defaults would wait ~a minute: DEADLINE_EXCEEDED)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes connections; nobody ever reads or writes
        settings = RedisSettings(url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0", key_prefix="hung")
        running = server_factory(store=RedisOnlineStore(settings), model_path=model_file)
        started = time.monotonic()
        status, message = _status_of(running.url, "e1")
        print(f"\nhung Redis: {status} after {time.monotonic() - started:.2f}s (client deadline {DEADLINE_S}s)")
        assert status == str(grpc.StatusCode.UNAVAILABLE), (status, message)
        assert "Timeout" in message
