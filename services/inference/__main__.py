"""`python -m services.inference`: settings → logging, tracing, ops server → gRPC server until SIGTERM (with
`MLOPS_INFERENCE_WORKERS` > 1, worker 0 then starts the other workers on the same port: see edge/workers.py).
`python -m services.inference score ...` scores a file of rows instead (edge/batch.py; what `mlops score` runs)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from mlops.bus import KafkaBus
from mlops.online_store import RedisOnlineStore
from mlops.service import freeze_survivors, start
from mlops.settings import KafkaSettings, RedisSettings

from services.inference.edge import InferenceServer, WorkerGroup, parent_gone
from services.inference.settings import DEFAULT_METRICS_PORT, InferenceSettings

log = logging.getLogger("mlops.inference")


async def _serve(server: InferenceServer, settings: InferenceSettings, metrics_port: int) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code (1 when a worker of the group died on its own)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = await server.start()
    freeze_survivors()  # the libraries, the model, gRPC: a full collection no longer pauses requests for them
    group: WorkerGroup | None = None
    if settings.workers > 1 and settings.worker_index == 0:
        group = WorkerGroup(settings.workers, port, metrics_port)
        group.start()
    ppid = os.getppid()
    code = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass
        if group is not None and (gone := group.exited()):
            log.error("inference worker exited; stopping the group", extra={"fields": {"workers": gone}})
            code = 1
            break
        if settings.worker_index > 0 and parent_gone(ppid):
            log.error("worker 0 is gone; stopping", extra={"fields": {"worker": settings.worker_index}})
            code = 1
            break
    log.info("stopping")
    await server.stop()
    if group is not None:
        await asyncio.to_thread(group.stop)
    return code


def main() -> None:
    if sys.argv[1:2] == ["score"]:
        from services.inference.edge.batch import main as score

        sys.exit(score(sys.argv[2:]))
    settings = InferenceSettings()
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    # Kafka carries the definitions (unless a file gives them), promotions, artifacts and the prediction log
    needs_bus = settings.definitions_file is None or settings.watch_promotions or settings.log_predictions
    bus = KafkaBus(KafkaSettings()) if needs_bus else None
    store = RedisOnlineStore(RedisSettings()) if settings.online_join else None
    server = InferenceServer(settings, bus, store)
    started = start("inference", DEFAULT_METRICS_PORT, server.ready)
    # the configured port, not the bound one: workers serve theirs at this + index (0 stays 0, ephemeral)
    metrics_port = started.telemetry.metrics_port
    code = asyncio.run(_serve(server, settings, DEFAULT_METRICS_PORT if metrics_port is None else metrics_port))
    started.provider.shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
