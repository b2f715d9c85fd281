"""The registry's wiring: replay registry.log and follow the definitions → Registry → the gRPC API, then consume
model.candidates (once a definitions revision is in force) and challenger.verdicts (the monitor's live verdicts,
in a consumer group and thread of their own)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import grpc
from mlops.artifacts import ArtifactReader
from mlops.bus import Bus, FailurePolicy, StopFlag, run_loop
from mlops.definitions.revision import Revision
from mlops.definitions.store import DefinitionsFollower
from mlops.security import SecuritySettings
from mlops.topics import CHALLENGER_VERDICTS, MODEL_CANDIDATES

from services.registry.core import Registry
from services.registry.edge.candidates import CandidateHandler
from services.registry.edge.eventlog import EventLog, artifact_fetcher, last_announced, replay
from services.registry.edge.grpc_api import start_grpc_server
from services.registry.edge.verdicts import VerdictHandler
from services.registry.errors import NoDefinitions
from services.registry.settings import RegistrySettings

__all__ = ["RegistryApp", "build", "run"]

log = logging.getLogger("mlops.registry")


@dataclass
class RegistryApp:
    bus: Bus
    registry: Registry
    events: EventLog
    definitions: DefinitionsFollower
    server: grpc.Server
    grpc_port: int
    replayed: int
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start_outbox(self, interval_s: float) -> threading.Thread:
        """Re-send failed announcements every `interval_s` until `stop` (a broker fault must not leave a persisted
        champion unannounced until the next restart)."""
        def loop() -> None:
            while not self._stopping.wait(interval_s):
                try:
                    self.registry.announce_pending()
                except Exception:  # never let the outbox thread die: the next round tries again
                    log.exception("outbox round failed")

        thread = threading.Thread(target=loop, name="registry-outbox", daemon=True)
        thread.start()
        return thread

    def ready(self) -> bool:
        """Serving candidates: a definitions revision is in force and still followed."""
        return self.definitions.current is not None and self.definitions.alive()

    def stop(self) -> None:
        self._stopping.set()
        self.server.stop(grace=2).wait(5)
        self.definitions.stop()


def _changed(revision: Revision) -> None:
    log.info("gate and rollout policies from definitions revision", extra={"fields": {
        "revision": revision.number, "models": {m.name: f"{m.metric} margin {m.gate.margin:g} floor {m.gate.floor}"
                                                        f" rollout {m.rollout.mode.value}"
                                                for m in revision.definitions.models}}})


def build(settings: RegistrySettings, bus: Bus, security: SecuritySettings | None = None) -> RegistryApp:
    """Rebuild the state from registry.log, follow the definitions, then serve the gRPC API (`security`: tokens
    and TLS; None: from MLOPS_SECURITY_*)."""
    state, replayed = replay(bus, settings.replay_timeout_s)
    fetch = artifact_fetcher(ArtifactReader(bus), settings.artifact_timeout_s)
    security = security if security is not None else SecuritySettings()
    events = EventLog(bus, bus.producer(client_id="registry"), security.promotion_key)
    follower = DefinitionsFollower(bus, client_id="registry-definitions", on_change=_changed)
    follower.start(settings.definitions_timeout_s)
    # the registry reads the follower's current revision once per command: a newer revision (a changed margin,
    # a new model) applies from the next candidate on, without a restart
    registry = Registry(state, fetch, events.persist, events.announce, lambda: follower.current,
                        actor=settings.actor)
    missing = registry.recover_announcements(last_announced(bus, settings.replay_timeout_s))
    if missing:
        log.warning("champions not yet announced on model.promoted were re-sent", extra={"fields": {
            "models": missing, "still_pending": registry.announce_pending()}})
    server, port, _ = start_grpc_server(registry, settings.grpc_host, settings.grpc_port, settings.grpc_workers,
                                       security)
    log.info("registry state rebuilt", extra={"fields": {
        "records": replayed, "models": state.models(), "grpc_port": port,
        "definitions_revision": follower.current.number if follower.current else None}})
    app = RegistryApp(bus, registry, events, follower, server, port, replayed)
    app.start_outbox(settings.announce_retry_s)
    return app


def follow_verdicts(app: RegistryApp, settings: RegistrySettings, stop: StopFlag) -> tuple[threading.Thread,
                                                                                          list[BaseException]]:
    """Apply every verdict on challenger.verdicts until `stop`, in a thread. A failure (registry.log unwritable)
    sets `stop`, so the whole registry stops and reads the verdict again after a restart; it is returned in the
    list for `run` to raise."""
    failed: list[BaseException] = []

    def loop() -> None:
        try:
            consumer = app.bus.consumer(group_id=settings.verdicts_group_id,
                                        topics=[app.bus.topic(CHALLENGER_VERDICTS)], client_id="registry-verdicts")
            run_loop(consumer, VerdictHandler(app.registry, settings.verdicts_group_id), stop=stop,
                     policy=FailurePolicy.STOP, batch_size=20)
        except BaseException as exc:
            log.exception("challenger.verdicts consumer failed; stopping the registry")
            failed.append(exc)
            stop.set()

    thread = threading.Thread(target=loop, name="registry-verdicts", daemon=True)
    thread.start()
    return thread, failed


def run(app: RegistryApp, settings: RegistrySettings, stop: StopFlag) -> int:
    """Gate every candidate on model.candidates and apply every verdict on challenger.verdicts until `stop`;
    returns the candidate records handled. Nothing is consumed until a definitions revision is in force:
    candidates wait in Kafka rather than being judged by no policy."""
    if app.definitions.current is None:
        log.warning("no definitions revision yet; waiting before consuming model.candidates (mlops apply FILE)")
        while app.definitions.current is None:
            if stop.wait(0.2):
                return 0
            if not app.definitions.alive():
                raise NoDefinitions() from app.definitions.failed
    verdicts, failed = follow_verdicts(app, settings, stop)
    consumer = app.bus.consumer(group_id=settings.group_id, topics=[app.bus.topic(MODEL_CANDIDATES)],
                                client_id="registry")
    try:
        handled = run_loop(consumer, CandidateHandler(app.registry, settings.group_id), stop=stop,
                           policy=FailurePolicy.STOP, batch_size=20)
    finally:
        stop.set()
        verdicts.join(30)
    if failed:
        raise failed[0]
    return handled
