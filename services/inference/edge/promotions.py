"""Follows `model.promoted` and hot-swaps champions and second versions.

Every replica must see every promotion, so each process reads the topic with a `Reader` (no consumer group, no
commits) from the beginning: on start it replays the history up to the end, where the last record per key is what
is in force — key `<model>` the champion, key `<model>/challenger` the second version (shadow, canary or guard, or
none after action "retire"); afterwards each new record is applied as it arrives. Loading (artifact fetch by sha256,
session build, warm-up) happens here in the background thread; the swap itself is one reference assignment in
the repository.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mlops.bus import Bus, BusError, Reader, Record
from mlops.contracts import ContractError, models_pb2
from mlops.security import PromotionReplayGuard, promotion_verified
from mlops.telemetry import process_span, tracer
from mlops.topics import MODEL_PROMOTED
from pydantic import SecretStr

from services.inference import convert
from services.inference.core import CHAMPION, Catalog, ModelRepository, Promotion, SessionOptions, apply_promotion
from services.inference.metrics import PROMOTIONS_REFUSED

log = logging.getLogger("mlops.inference")
_tracer = tracer("mlops.inference")

FetchArtifact = Callable[[str], bytes]  # sha256 -> the verified bytes


def _slot(promotion: Promotion) -> str:
    """What a record is collapsed by: `<model>` for the champion, `<model>/challenger` for the second version (the
    registry's record keys)."""
    return f"{promotion.model_name}/challenger" if promotion.challenger else promotion.model_name


class PromotionFollower:
    def __init__(self, bus: Bus, repository: ModelRepository, fetch: FetchArtifact, options: SessionOptions,
                 catalog: Callable[[], Catalog | None], replay_timeout_s: float = 60.0,
                 key: SecretStr | None = None):
        """`catalog` gives the declarations in force, which each promoted version is checked against; `key`
        (set and not empty): only records signed with it are applied."""
        self._key = key if key is not None and key.get_secret_value() else None
        self._replays = PromotionReplayGuard()  # sees every record in log order, the replayed history included
        self._bus, self._repository, self._fetch, self._options = bus, repository, fetch, options
        self._catalog = catalog
        self._replay_timeout = replay_timeout_s
        self._topic = bus.topic(MODEL_PROMOTED)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="promotion-follower", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        reader = self._replay()
        if reader is None:
            return
        try:
            while not self._stop.is_set():
                self._apply(reader.consume(500, 0.5))
        except Exception as exc:
            log.exception("promotion follower stopped", extra={"fields": {"error": str(exc)}})
        finally:
            reader.close()

    def _replay(self) -> Reader | None:
        """A reader positioned after the history, once the history's champions are applied (None when stopped).
        A replay that cannot finish (broker or topic not there yet) starts over: a half-read history could name
        an old champion."""
        while not self._stop.is_set():
            reader: Reader | None = None
            try:
                reader = self._bus.reader([self._topic], client_id="inference-promotions", start="beginning")
                self._apply(reader.read_to_end(timeout=self._replay_timeout))
                return reader
            except BusError as exc:
                log.warning("replaying model.promoted failed; retrying", extra={"fields": {"error": str(exc)}})
                if reader is not None:
                    reader.close()
                self._stop.wait(1.0)
        return None

    def _apply(self, records: list[Record]) -> None:
        latest: dict[str, tuple[Record, models_pb2.ModelPromoted]] = {}
        for r in records:  # a replayed history collapses to the last record per model name and slot
            try:
                promoted = r.decode(models_pb2.ModelPromoted)
            except ContractError as exc:
                self.errors += 1
                log.error("bad model.promoted record", extra={"fields": {"error": str(exc)}})
                continue
            if (refusal := self._refusal(promoted)) is not None:
                # before the history collapses: a forged or replayed record must not hide the last genuine one
                self.errors += 1
                PROMOTIONS_REFUSED.inc()
                log.error(f"promotion refused: {refusal}", extra={"fields": {
                    "model": promoted.model_name, "version": promoted.version, "role": promoted.role or CHAMPION,
                    "action": promoted.action, "topic": r.topic,
                    "partition": r.partition, "offset": r.offset}})
                continue
            promotion = convert.promotion(promoted)
            if (problem := promotion.problem()) is not None:  # before the collapse too: it must not hide a good one
                self.errors += 1
                log.error("promotion not applied", extra={"fields": {
                    "model": promotion.model_name, "version": promotion.version, "role": promotion.role,
                    "field": problem[0], "error": problem[1]}})
                continue
            slot = _slot(promotion)
            latest.pop(slot, None)  # re-inserted last: the slots are applied in the order they last moved
            latest[slot] = (r, promoted)
        for record, promoted in latest.values():
            self._handle(record, promoted)

    def _refusal(self, promoted: models_pb2.ModelPromoted) -> str | None:
        """Why a record is not applied when promotions must be signed: a bad signature (over model, version, sha256,
        role, time and action: a shadow announcement cannot pass as a champion), or a genuine record appended again
        (older than the last one applied to its slot: a replay)."""
        if self._key is None:
            return None
        if not promotion_verified(self._key, promoted.model_name, promoted.version, promoted.artifact_sha256,
                                  promoted.signature, role=promoted.role, promoted_at_ms=promoted.promoted_at_ms,
                                  action=promoted.action):
            return "unsigned or badly signed"
        if not self._replays.accept(promoted.model_name, promoted.role, promoted.promoted_at_ms):
            return "replayed (older than the last promotion applied to its slot)"
        return None

    def _handle(self, record: Record, message: models_pb2.ModelPromoted) -> None:
        promotion = convert.promotion(message)
        with process_span(_tracer, record, attributes={
                "mlops.model": promotion.model_name, "mlops.version": promotion.version, "mlops.role": promotion.role}):
            try:
                apply_promotion(self._repository, promotion, self._fetch, self._options, self._catalog())
            except Exception as exc:  # the old champion keeps serving; the failure is loud
                self.errors += 1
                log.error("promotion not applied", extra={"fields": {
                    "model": promotion.model_name, "version": promotion.version, "role": promotion.role,
                    "action": promotion.action, "error": str(exc)}})

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
