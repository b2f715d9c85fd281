"""`python -m services.console`: settings → logging, tracing, ops server → the web console (uvicorn) until
SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from mlops import service
from mlops.bus import KafkaBus
from mlops.settings import KafkaSettings

from services.console.edge import Console, build_app
from services.console.settings import DEFAULT_METRICS_PORT, ConsoleSettings


class _Server(uvicorn.Server):
    """uvicorn, stopping on SIGTERM/SIGINT with exit status 0 (uvicorn's own handlers re-raise the signal at the
    end, which would end the process with it)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: setattr(self, "should_exit", True))
        yield


def main() -> int:
    settings = ConsoleSettings()
    servers: list[_Server] = []
    started = service.start("console", DEFAULT_METRICS_PORT, lambda: bool(servers) and servers[0].started)
    console = Console.create(settings, KafkaBus(KafkaSettings()))
    server = _Server(uvicorn.Config(build_app(console), host=settings.host, port=settings.port,
                                           log_config=None, access_log=False))
    servers.append(server)
    started.log.info("console serving", extra={"fields": {
        "url": f"http://{settings.host}:{settings.port}/", "registry": settings.registry_address,
        "prometheus": str(settings.prometheus_url), "jaeger": str(settings.jaeger_url),
        "actions_enabled": settings.actions_enabled}})
    try:
        server.run()  # until SIGTERM/SIGINT: the requests in flight finish, then it returns
    finally:
        started.provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
