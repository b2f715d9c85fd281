"""Follow the platform's outcome topics as decoded messages: what `mlops train --wait` and the demo watch.

A `TopicFollower` reads through a bus reader (assigned partitions, no consumer group, never commits), so watching
leaves nothing behind on the broker; given a `MemoryBus`, it follows an in-process bus the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from mlops import contracts
from mlops.bus import Bus
from mlops.contracts import models_pb2
from mlops.prediction_log import read_predictions
from mlops.topics import (
    CHALLENGER_VERDICTS,
    EVENTS_DLQ,
    MODEL_CANDIDATES,
    MODEL_PROMOTED,
    PREDICTIONS,
    REGISTRY_LOG,
    RETRAIN_REQUESTED,
    TRAINING_FAILURES,
    TopicSpec,
)

__all__ = ["FOLLOWED", "MESSAGE_TYPES", "TopicFollower"]

# the message each topic a follower can follow carries; None: the raw bytes (a dead letter holds whatever failed)
MESSAGE_TYPES: dict[str, type | None] = {
    RETRAIN_REQUESTED.name: models_pb2.RetrainRequest,
    MODEL_CANDIDATES.name: models_pb2.ModelCandidate,
    TRAINING_FAILURES.name: models_pb2.TrainingFailed,
    REGISTRY_LOG.name: models_pb2.RegistryEvent,
    MODEL_PROMOTED.name: models_pb2.ModelPromoted,
    PREDICTIONS.name: models_pb2.PredictionBatch,  # read by read_predictions: either contract, as PredictionColumns
    EVENTS_DLQ.name: None,
    CHALLENGER_VERDICTS.name: models_pb2.ChallengerVerdict,
}
FOLLOWED = (RETRAIN_REQUESTED, MODEL_CANDIDATES, TRAINING_FAILURES, REGISTRY_LOG, MODEL_PROMOTED, PREDICTIONS,
            EVENTS_DLQ)


class TopicFollower:
    """Decoded records of `specs` (topics of `MESSAGE_TYPES`) as `(topic spec name, message)` pairs (a record of
    `predictions` as `mlops.prediction_log.PredictionColumns`, whichever contract wrote it), from the
    beginning or from the end as it is when the follower is made (so nothing sent after that is missed)."""

    def __init__(self, bus: Bus, specs: Sequence[TopicSpec], *, client_id: str,
                 start: Literal["beginning", "end"] = "end"):
        self._by_topic = {bus.topic(spec): spec.name for spec in specs}
        self._reader = bus.reader(list(self._by_topic), client_id=client_id, start=start)

    def poll(self, timeout: float, max_records: int = 500) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for record in self._reader.consume(max_records=max_records, timeout=timeout):
            if record.value is None:
                continue
            name = self._by_topic[record.topic]
            message_type = MESSAGE_TYPES[name]
            if message_type is None:
                out.append((name, record.value))
                continue
            try:
                out.append((name, read_predictions(record) if name == PREDICTIONS.name
                             else contracts.decode(message_type, record.value)))
            except contracts.ContractError:
                continue  # not ours to judge here: the producing service dead-letters or logs it
        return out

    def close(self) -> None:
        self._reader.close()
