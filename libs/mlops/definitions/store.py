"""The `definitions` topic: publishing a revision, reading them all, and following them at run time.

`DefinitionsFollower` reads every revision already published (an assigned reader: no consumer group, nothing
committed), then keeps following new ones on a daemon thread, calling `on_change(revision)` for each newer one. A
revision that no longer validates (written by a newer release, say) is logged and skipped: the service keeps the
revision it has rather than stopping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mlops.bus import Bus, Reader, Record
from mlops.contracts.v1 import definitions_pb2
from mlops.definitions.document import Definitions
from mlops.definitions.load import DefinitionsError
from mlops.definitions.revision import Revision, revision_key
from mlops.topics import DEFINITIONS, TopicSpec

__all__ = ["DefinitionsFollower", "declared_topics", "publish", "read_revisions"]

log = logging.getLogger("mlops.definitions")


def declared_topics(definitions: Definitions) -> tuple[TopicSpec, ...]:
    """The topics the definitions name (each source's raw topic, each model's label topic), for `ensure_topics`."""
    names = {s.topic: f"raw records of source {s.name!r}" for s in definitions.sources}
    for model in definitions.models:
        names.setdefault(model.label.topic, f"labels of model {model.name!r}")
    return tuple(TopicSpec(name, description) for name, description in sorted(names.items()))


def _decode(record: Record) -> Revision | None:
    try:
        return Revision.from_record(record.decode(definitions_pb2.DefinitionsRevision), record.where)
    except (DefinitionsError, ValueError) as exc:
        log.error("skipping a definitions revision", extra={"fields": {"where": record.where, "error": str(exc)}})
        return None


def read_revisions(bus: Bus, *, client_id: str, timeout: float = 30.0) -> list[Revision]:
    """Every valid revision published so far, oldest first."""
    reader = bus.reader([bus.topic(DEFINITIONS)], client_id=client_id)
    try:
        revisions = [r for r in map(_decode, reader.read_to_end(timeout)) if r is not None]
    finally:
        reader.close()
    return sorted(revisions, key=lambda r: r.number)


def publish(bus: Bus, revision: Revision, *, client_id: str) -> None:
    """Write `revision` and wait for the broker's acknowledgement (raises BusError if it was not stored)."""
    producer = bus.producer(client_id=client_id)
    producer.send(bus.topic(DEFINITIONS), revision.to_record(), key=revision_key(revision.number))
    producer.flush()


class DefinitionsFollower:
    """The revision in force, kept current by a background reader."""

    def __init__(self, bus: Bus, *, client_id: str, on_change: Callable[[Revision], None] | None = None,
                 poll_timeout: float = 0.5):
        self._bus = bus
        self._client_id = client_id
        self._on_change = on_change
        self._poll_timeout = poll_timeout
        self._current: Revision | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed: BaseException | None = None  # set when the follower thread died; readiness should say so

    @property
    def current(self) -> Revision | None:
        return self._current

    def start(self, timeout: float = 30.0) -> Revision | None:
        """Read what is published (blocking up to `timeout`), then follow on a daemon thread."""
        reader = self._bus.reader([self._bus.topic(DEFINITIONS)], client_id=self._client_id)
        for record in reader.read_to_end(timeout):
            self._offer(record)
        self._thread = threading.Thread(target=self._follow, args=(reader,), name="definitions", daemon=True)
        self._thread.start()
        return self._current

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _follow(self, reader: Reader) -> None:
        try:
            while not self._stop.is_set():
                for record in reader.consume(100, self._poll_timeout):
                    self._offer(record)
        except BaseException as exc:  # surfaced through `failed` and `alive()`, never silently
            self.failed = exc
            log.exception("definitions follower stopped")
            raise
        finally:
            reader.close()

    def _offer(self, record: Record) -> None:
        revision = _decode(record)
        if revision is None or (self._current is not None and revision.number <= self._current.number):
            return
        self._current = revision
        log.info("definitions revision in force", extra={"fields": {
            "revision": revision.number, "sha256": revision.sha256[:12], "applied_by": revision.applied_by}})
        if self._on_change is not None:
            self._on_change(revision)
