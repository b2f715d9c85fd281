"""`python -m services.console`: settings → logging, tracing, ops server → the web console (uvicorn) until
SIGTERM."""

from __future__ import annotations

import uvicorn
from mlops import service
from mlops.bus import KafkaBus
from mlops.settings import KafkaSettings

from services.console.edge import Console, build_app
from services.console.settings import DEFAULT_METRICS_PORT, ConsoleSettings


def main() -> int:
    settings = ConsoleSettings()
    servers: list[uvicorn.Server] = []
    started = service.start("console", DEFAULT_METRICS_PORT, lambda: bool(servers) and servers[0].started)
    console = Console.create(settings, KafkaBus(KafkaSettings()))
    server = uvicorn.Server(uvicorn.Config(build_app(console), host=settings.host, port=settings.port,
                                           log_config=None, access_log=False))
    servers.append(server)
    started.log.info("console serving", extra={"fields": {
        "url": f"http://{settings.host}:{settings.port}/", "registry": settings.registry_address,
        "prometheus": str(settings.prometheus_url), "jaeger": str(settings.jaeger_url),
        "actions_enabled": settings.actions_enabled}})
    try:
        server.run()  # uvicorn handles SIGTERM/SIGINT: it finishes the requests in flight, then returns
    finally:
        started.provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
