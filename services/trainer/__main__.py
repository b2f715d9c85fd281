"""`python -m services.trainer`: answer retrain.requested until SIGTERM.

`python -m services.trainer --once MODEL [--reason TEXT] [--seed N] [--request-id ID]`: one retrain of MODEL, as
the definitions in force declare it, in this process, published exactly as the service publishes it; prints one
line of JSON (`Outcome.summary`) on stdout and exits 0 when a candidate was published, 1 when the training failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading

from mlops.bus import KafkaBus, StopFlag, wait_for_broker
from mlops.definitions.store import DefinitionsFollower
from mlops.offline_store import KafkaTrainingData
from mlops.service import start
from mlops.settings import KafkaSettings, TelemetrySettings
from mlops.telemetry import setup_logging, setup_tracing

from services.trainer.edge import TrainerService, follow_definitions, run
from services.trainer.settings import DEFAULT_METRICS_PORT, TrainerSettings

log = logging.getLogger("mlops.trainer")


def preload() -> None:
    """Import the training stack (sklearn, skl2onnx, onnxruntime: seconds on a busy machine) in the background
    while the consumer joins its group: neither the start-up nor the first retrain (the one answering a drift)
    should pay for it; a retrain that comes sooner waits on Python's import lock."""
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import skl2onnx  # noqa: F401
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: F401
    from sklearn.metrics import roc_auc_score  # noqa: F401


def _service(settings: TrainerSettings, kafka: KafkaSettings) -> tuple[TrainerService, DefinitionsFollower]:
    bus = KafkaBus(kafka)
    data = KafkaTrainingData(bus, labels_within_features=settings.labels_within_features)
    follower = follow_definitions(bus, settings)
    return TrainerService(settings, bus, data, lambda: follower.current), follower


def serve() -> int:
    settings, kafka = TrainerSettings(), KafkaSettings()
    ready = threading.Event()
    follower: DefinitionsFollower | None = None

    def is_ready() -> bool:  # consuming, and the definitions it trains by still followed
        return ready.is_set() and follower is not None and follower.alive()

    started = start("trainer", DEFAULT_METRICS_PORT, ready=is_ready)
    stop = StopFlag()
    wait_for_broker(kafka)
    service, follower = _service(settings, kafka)
    threading.Thread(target=preload, name="trainer-preload", daemon=True).start()
    log.info("trainer started", extra={"fields": {"code_version": service.code_version,
                                                  "topic_prefix": kafka.topic_prefix}})
    try:
        trainings = run(service, stop, on_ready=ready.set)
    finally:
        follower.stop()
        started.provider.shutdown()
    log.info("trainer stopped", extra={"fields": {"trainings": trainings}})
    return 0


def once(args: argparse.Namespace) -> int:
    # no ops server: a one-off run must not take the running service's port
    telemetry = TelemetrySettings()
    setup_logging(telemetry)
    provider = setup_tracing("trainer", telemetry)
    settings, kafka = TrainerSettings(), KafkaSettings()
    try:
        wait_for_broker(kafka)
        stages: list[str] = []

        def progress(stage: str, fraction: float) -> None:
            if not stages or stages[-1] != stage:
                stages.append(stage)
                log.info("training", extra={"fields": {"stage": stage, "fraction": round(fraction, 2)}})

        service, follower = _service(settings, kafka)
        try:
            outcome = service.run_once(args.once, reason=args.reason, seed=args.seed, request_id=args.request_id,
                                       progress=progress)
        finally:
            follower.stop()
    finally:
        provider.shutdown()
    print(json.dumps(outcome.summary()), flush=True)
    return 0 if outcome.candidate is not None else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--once", metavar="MODEL", help="run one retrain of MODEL, print its result as JSON, exit")
    parser.add_argument("--reason", default="manual retrain (--once)", help="why (recorded in the lineage)")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed (default: the model's declared training.seed)")
    parser.add_argument("--request-id", default=None, help="the request id recorded in the lineage")
    args = parser.parse_args(argv)
    if args.once is None:
        if args.seed is not None or args.request_id is not None:
            parser.error("--seed and --request-id go with --once")
        return serve()
    return once(args)


if __name__ == "__main__":
    raise SystemExit(main())
