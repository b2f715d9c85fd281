"""What the platform produced, read back from Kafka while the scenarios run: one reader thread tails the outcome
topics from their beginning and indexes each record by the scenario tag of its key (`<tag>.e<i>`) with the time
the producing service wrote it (the record's CreateTime), so "processing resumed" is read from the services' own
output, not from when this process happened to see it."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from mlops.bus import Reader
from mlops.contracts import events_pb2, models_pb2
from mlops.settings import KafkaSettings
from mlops.topics import (
    EVENTS,
    EVENTS_DLQ,
    FEATURES_LOG,
    MODEL_CANDIDATES,
    REGISTRY_LOG,
    TRAINING_FAILURES,
    topic_name,
)

from chaos_kit.traffic import QUIET

__all__ = ["Observed", "Tailer", "tag_of"]


def tag_of(key: bytes | None) -> str:
    return (key or b"").decode("utf-8", "replace").split(".", 1)[0]


@dataclass(frozen=True)
class Observed:
    partition: int
    offset: int
    ts_ms: int  # CreateTime: when the producing service sent it
    event_id: str
    value: bytes


class Tailer:
    def __init__(self, kafka: KafkaSettings):
        self.kafka = kafka
        self.names = {spec.name: topic_name(spec, kafka) for spec in
                      (EVENTS, EVENTS_DLQ, FEATURES_LOG, MODEL_CANDIDATES, TRAINING_FAILURES, REGISTRY_LOG)}
        self.events: dict[str, list[Observed]] = defaultdict(list)
        self.features_log: dict[str, list[Observed]] = defaultdict(list)
        self.dead_letters: dict[str, list[events_pb2.DeadLetter]] = defaultdict(list)
        self.candidates: list[tuple[int, models_pb2.ModelCandidate]] = []
        self.failures: list[tuple[int, models_pb2.TrainingFailed]] = []
        self.registry: list[tuple[int, models_pb2.RegistryEvent]] = []
        self.error = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-tailer", daemon=True)

    def start(self) -> Tailer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        reader = Reader(self.kafka, list(self.names.values()), client_id="chaos-tailer", extra=QUIET)
        by_name = {name: spec for spec, name in self.names.items()}  # topic → its spec's name
        try:
            while not self._stop.is_set():
                for r in reader.consume(2000, 0.3):
                    spec, ts = by_name[r.topic], r.timestamp_ms
                    with self._lock:
                        if spec == EVENTS.name:
                            ev = r.decode(events_pb2.Event)
                            self.events[tag_of(r.key)].append(Observed(r.partition, r.offset, ts, ev.event_id, r.value))
                        elif spec == FEATURES_LOG.name:
                            fv = r.decode(events_pb2.FeatureVector)
                            self.features_log[tag_of(r.key)].append(
                                Observed(r.partition, r.offset, ts, f"{fv.feature_set}/{fv.event_id}", b""))
                        elif spec == EVENTS_DLQ.name:
                            self.dead_letters[tag_of(r.key)].append(r.decode(events_pb2.DeadLetter))
                        elif spec == MODEL_CANDIDATES.name:
                            self.candidates.append((ts, r.decode(models_pb2.ModelCandidate)))
                        elif spec == TRAINING_FAILURES.name:
                            self.failures.append((ts, r.decode(models_pb2.TrainingFailed)))
                        elif spec == REGISTRY_LOG.name and r.value:
                            self.registry.append((ts, r.decode(models_pb2.RegistryEvent)))
        except Exception as exc:  # the figures would be wrong: say so in every row
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            reader.close()

    # --- reading the index ------------------------------------------------------------------------------------------
    def snapshot(self, tag: str) -> tuple[list[Observed], list[Observed], list[events_pb2.DeadLetter]]:
        with self._lock:
            return list(self.events[tag]), list(self.features_log[tag]), list(self.dead_letters[tag])

    def wait(self, predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error:
                raise RuntimeError(f"the tailer stopped: {self.error}")
            if predicate():
                return True
            time.sleep(0.2)
        return bool(predicate())

    def first_output_after(self, tag: str, topic: str, wall_s: float) -> float | None:
        """Seconds from `wall_s` to the first record of `tag` on `topic` ("events" or "features.log") written at or
        after it (None: none yet)."""
        with self._lock:
            records = self.events[tag] if topic == "events" else self.features_log[tag]
            times = [o.ts_ms for o in records if o.ts_ms >= wall_s * 1000]
        return (min(times) / 1000 - wall_s) if times else None

    def longest_gap(self, tag: str, after_s: float, until_s: float | None = None) -> float:
        """The longest pause (s) between consecutive features.log records of `tag` written after `after_s`; with
        `until_s`, only those written before it, and the pause from the last of them to `until_s` counts too (no
        record at all after `after_s` is then a pause of the whole span, not none)."""
        with self._lock:
            times = sorted(o.ts_ms for o in self.features_log[tag] if o.ts_ms >= after_s * 1000
                           and (until_s is None or o.ts_ms <= until_s * 1000))
        ends = [*times, until_s * 1000] if until_s is not None else times
        gaps = [(b - a) / 1000 for a, b in zip([after_s * 1000, *ends], ends, strict=False)]
        return max(gaps, default=0.0)

    def outcome_of(self, request_id: str) -> list[tuple[int, str]]:
        """(time ms, "candidate" | "failed") of every trainer outcome naming `request_id`."""
        with self._lock:
            out = [(ts, "candidate") for ts, c in self.candidates
                   if request_id in (c.lineage.retrain_request_id, *c.lineage.coalesced_request_ids)]
            out += [(ts, "failed") for ts, f in self.failures if f.retrain_request_id == request_id]
        return sorted(out)

    def decisions_of(self, candidate_ids: set[str]) -> dict[str, int]:
        """version → when the registry first wrote it, for every version registered from one of `candidate_ids`
        (one version per candidate when nothing is decided twice)."""
        with self._lock:
            out: dict[str, int] = {}
            for ts, e in self.registry:
                if e.record_kind == "state" and e.candidate.candidate_id in candidate_ids:
                    out.setdefault(e.version, ts)
            return out
