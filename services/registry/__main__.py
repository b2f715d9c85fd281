"""`python -m services.registry`: replay registry.log and read the definitions, then serve the gRPC API and gate
model.candidates (once a definitions revision is in force) until SIGTERM."""

from __future__ import annotations

from mlops import service
from mlops.bus import KafkaBus, StopFlag, wait_for_broker
from mlops.settings import KafkaSettings

from services.registry.edge import RegistryApp, build, run
from services.registry.settings import RegistrySettings

DEFAULT_METRICS_PORT = 9104


def main() -> int:
    settings, kafka = RegistrySettings(), KafkaSettings()
    built: list[RegistryApp] = []
    # ready once built, while a definitions revision is in force and followed (a dead follower flips it)
    started = service.start("registry", DEFAULT_METRICS_PORT, lambda: bool(built) and built[0].ready())
    stop = StopFlag()
    wait_for_broker(kafka)
    app = build(settings, KafkaBus(kafka))
    built.append(app)
    started.log.info("registry started", extra={"fields": {
        "grpc_port": app.grpc_port, "ops_port": started.ops_port, "topic_prefix": kafka.topic_prefix}})
    try:
        handled = run(app, settings, stop)
    finally:
        app.stop()
        started.provider.shutdown()
    started.log.info("registry stopped", extra={"fields": {"candidates": handled}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
