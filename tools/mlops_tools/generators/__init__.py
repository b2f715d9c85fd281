"""Synthetic streams of the examples (`examples/<name>/`), each deterministic for a seed with a KNOWN drift point.

An `Example` ties a generator to its declared definitions: records go to the declared source's topic in the raw
JSON envelope any Kafka client would write (`{<id_field>, <event_time_field>, schema_version, values, event_id}`),
their labels to the model's declared label topic, as JSON with the declared fields or as `Label` protobufs. The
envelope is built from the definitions, so a generator only says what happened (entity, time, values, label).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mlops.definitions import Definitions, Entity, Model, Source
from mlops.topics import TopicSpec

from mlops_tools.generators import delivery, sea

__all__ = ["EXAMPLE_NAMES", "Example", "GeneratedRecord", "example"]

EXAMPLE_NAMES: tuple[str, ...] = ("sea", "delivery")


class GeneratedRecord(Protocol):
    """What every generator yields (SEA's `SyntheticRecord`, delivery's `DeliveryRecord`)."""

    index: int
    event_id: str
    entity_id: str
    event_time_ms: int
    values: dict[str, Any]
    drifted: bool

    @property
    def label(self) -> float: ...


@dataclass(frozen=True)
class Example:
    """One example: its definitions (one source, one model), its generator and what its drift is."""

    name: str
    definitions: Definitions
    drift: str  # what changes at the drift point, for timelines
    label_format: Literal["json", "protobuf"]  # how its labels are written by default
    # event time between two records when streamed faster than real time (the demo): short enough that the
    # feature windows fill in seconds, long enough that counts over them level off early (a count over a window
    # still filling grows all along the stream, which a data-drift detector rightly reports)
    event_interval_ms: float = 100.0

    def interval_ms(self, records: int) -> float:
        """`event_interval_ms`, shortened so `records` end within 20 h (ingest refuses events a day ahead)."""
        return min(self.event_interval_ms, 20 * 3600 * 1000 / max(1, records))

    @property
    def source(self) -> Source:
        return self.definitions.sources[0]

    @property
    def model(self) -> Model:
        return self.definitions.models[0]

    @property
    def entity(self) -> Entity:
        return self.definitions.entity(self.source.entity)

    @property
    def raw_topic(self) -> TopicSpec:
        return TopicSpec(self.source.topic, f"raw records of source {self.source.name!r}")

    @property
    def label_topic(self) -> TopicSpec:
        return TopicSpec(self.model.label.topic, f"labels of model {self.model.name!r}")

    def config(self, **options: Any) -> Any:
        """The generator's config (`count`, `drift_at`, `entities`, `seed`, `start_ms`, `interval_ms`, ...)."""
        return (sea.StreamConfig if self.name == "sea" else delivery.DeliveryConfig)(**options)

    def generate(self, config: Any) -> Iterator[GeneratedRecord]:
        return (sea.generate if self.name == "sea" else delivery.generate)(config)  # type: ignore[no-any-return]

    # --- the wire ---------------------------------------------------------------------------------------------------
    def raw_json(self, rec: GeneratedRecord) -> bytes:
        """The record as an external JSON producer writes it to the source's topic."""
        return _dumps({self.entity.id_field: rec.entity_id, self.source.event_time_field: rec.event_time_ms,
                       "schema_version": self.source.schema_version, "values": rec.values,
                       "event_id": rec.event_id})

    def raw_protobuf(self, rec: GeneratedRecord) -> Any:
        """The record as a `RawEvent`: numbers (bools as 0/1) in `values`, categorical values in `categories`."""
        from mlops.contracts import events_pb2

        numbers = {k: float(v) for k, v in rec.values.items() if not isinstance(v, str)}
        categories = {k: v for k, v in rec.values.items() if isinstance(v, str)}
        return events_pb2.RawEvent(entity_id=rec.entity_id, event_time_ms=rec.event_time_ms,
                                   schema_version=self.source.schema_version, values=numbers,
                                   categories=categories, event_id=rec.event_id)

    def label_json(self, rec: GeneratedRecord) -> bytes:
        """The label as any client writes it to the model's label topic (the declared field names)."""
        spec = self.model.label
        return _dumps({self.entity.id_field: rec.entity_id, spec.event_time_field: rec.event_time_ms,
                       spec.field: rec.label, "event_id": rec.event_id})

    def label_protobuf(self, rec: GeneratedRecord) -> Any:
        from mlops.contracts import events_pb2

        return events_pb2.Label(entity_id=rec.entity_id, event_time_ms=rec.event_time_ms, label=float(rec.label),
                                event_id=rec.event_id)


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


_DRIFT = {
    "sea": "SEA variant 2 → 3 (concept x0 + x1 > 7 → > 9.5), x2 shifted to [5, 10]",
    "delivery": f"app orders +{delivery.APP_SHIFT_MINUTES:g} min, baskets ×{delivery.AMOUNT_SHIFT:g}",
}


@functools.cache
def example(name: str) -> Example:
    """The example `name` with its definitions read from `examples/<name>/definitions.yaml`."""
    from mlops import definitions as d

    from mlops_tools.examples import definitions_path

    defs = d.load(definitions_path(name))
    if len(defs.sources) != 1 or len(defs.models) != 1:
        raise ValueError(f"example {name!r} should declare one source and one model")
    # SEA keeps today's bytes (Label protobufs on `labels`); delivery shows labels from any JSON client
    if name == "sea":  # 60 s / 30 s windows: 600 records fill them
        return Example(name, defs, _DRIFT[name], "protobuf", 100.0)
    # 1 h sliding windows over 100 customers: 6 s per order levels `orders_1h` off after 600 orders (the bootstrap)
    return Example(name, defs, _DRIFT[name], "json", 6_000.0)
