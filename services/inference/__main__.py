"""`python -m services.inference`: settings → logging → tracing → ops server → gRPC server until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from mlops.settings import KafkaSettings, RedisSettings, TelemetrySettings
from mlops.telemetry import setup_logging, setup_tracing, start_ops_server

from services.inference.server import InferenceServer
from services.inference.settings import DEFAULT_METRICS_PORT, InferenceSettings

log = logging.getLogger("mlops.inference")


async def _serve(server: InferenceServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await stop.wait()
    log.info("stopping")
    await server.stop()


def main() -> None:
    settings = InferenceSettings()
    telemetry = TelemetrySettings()
    setup_logging(telemetry)
    setup_tracing("inference", telemetry)
    kafka = KafkaSettings() if (settings.watch_promotions or settings.log_predictions) else None
    redis = RedisSettings() if settings.online_join else None
    server = InferenceServer(settings, kafka, redis)
    port = start_ops_server(telemetry.metrics_port if telemetry.metrics_port is not None else DEFAULT_METRICS_PORT,
                            ready=server.ready)
    log.info("ops endpoint", extra={"fields": {"port": port}})
    asyncio.run(_serve(server))


if __name__ == "__main__":
    main()
