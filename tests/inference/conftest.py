"""Fixtures of the inference tests: a tiny sklearn model exported to ONNX the way the trainer does it, and a real
server running on a free port in a background event loop (so tests can use the synchronous tritonclient)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from inference_helpers import SEA_FILE, make_onnx

from services.inference.edge import InferenceServer
from services.inference.settings import InferenceSettings


@pytest.fixture(scope="session")
def onnx_bytes() -> bytes:
    return make_onnx()


@pytest.fixture
def model_file(tmp_path: Path, onnx_bytes: bytes) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes)
    return path


class RunningServer:
    """An InferenceServer on its own event loop thread."""

    def __init__(self, server: InferenceServer):
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-inference-loop", daemon=True)
        self._thread.start()
        self.port = self.call(server.start())
        self.url = f"127.0.0.1:{self.port}"
        self.rest_url = f"http://127.0.0.1:{server.rest.port}" if server.rest is not None else ""

    def call(self, coro, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.call(self.server.stop(0.5))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def make(bus=None, store=None, security=None, **overrides) -> RunningServer:  # type: ignore[no-untyped-def]
        # without a bus the definitions come from the SEA example file (standalone use)
        defaults = {"host": "127.0.0.1", "port": 0, "watch_promotions": False, "log_predictions": False,
                    "rest_port": 0, "definitions_file": SEA_FILE if bus is None else None}
        settings = InferenceSettings(**(defaults | overrides))
        running = RunningServer(InferenceServer(settings, bus, store, security))
        started.append(running)
        return running

    yield make
    for running in reversed(started):
        running.close()
