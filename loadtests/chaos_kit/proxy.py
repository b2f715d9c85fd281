"""A TCP proxy that injects latency: the chaos suite's "slow Redis". The services reach Redis through it for the
whole run (0 s added until a scenario sets `latency_s`), so no service is restarted to make Redis slow.

Each chunk read from either side waits `latency_s` before it is forwarded; a connection to a dead upstream is
closed at once, as a dead Redis would close it. The proxy runs its own asyncio loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["LatencyProxy"]


class LatencyProxy:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.latency_s = 0.0  # read on every chunk: set it at any time
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-redis-proxy", daemon=True)

    def start(self) -> int:
        """Listen on a free port (returned) and serve in the background."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, self.listen_host, 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def drop_connections(self) -> None:
        """Close every proxied connection (what clients see when Redis dies)."""
        def close_all() -> None:
            for writer in list(self._writers):
                writer.close()
        self._loop.call_soon_threadsafe(close_all)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.wait_for(asyncio.open_connection(*self.target), 2.0)
        except (TimeoutError, OSError):
            client_w.close()
            return
        self._writers |= {client_w, upstream_w}
        try:
            await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        finally:
            self._writers -= {client_w, upstream_w}

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self.latency_s > 0:
                    await asyncio.sleep(self.latency_s)
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()
