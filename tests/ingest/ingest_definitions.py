"""Definitions for the ingest tests: the two examples, a source with every field type and policy, and `apply`,
which publishes a document as the next revision (as `mlops apply` does) on any bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops import definitions as d
from mlops.bus import Bus
from mlops.definitions.store import publish, read_revisions

from services.ingest.core import SourceValidator, compile_sources

ROOT = Path(__file__).resolve().parents[2]
SEA = ROOT / "examples" / "sea" / "definitions.yaml"
DELIVERY = ROOT / "examples" / "delivery" / "definitions.yaml"

# every field type and unknown-category policy, and an optional field of each kind that can be optional
EVERYTHING: dict[str, Any] = {
    "entities": [{"name": "device", "id_field": "device_id"}],
    "sources": [{
        "name": "readings", "topic": "readings.raw", "entity": "device", "event_time_field": "at",
        "schema_version": 3,
        "fields": [
            {"name": "temp", "type": "float", "minimum": -40, "maximum": 60},
            {"name": "count", "type": "int", "minimum": 0, "maximum": 1000},
            {"name": "door_open", "type": "bool"},
            {"name": "mode", "type": "categorical", "vocabulary": ["eco", "boost"]},  # unknown: reject
            {"name": "site", "type": "categorical"},  # no vocabulary: any string
            {"name": "zone", "type": "categorical", "vocabulary": ["n", "s"], "unknown": "other"},
            {"name": "firmware", "type": "categorical", "vocabulary": ["v1", "v2"], "unknown": "missing",
             "required": False},
            {"name": "serviced_at", "type": "timestamp"},
            {"name": "humidity", "type": "float", "minimum": 0, "maximum": 100, "required": False},
            {"name": "alarm", "type": "bool", "required": False},
        ],
    }],
}


def validator(doc: str | Path | dict[str, Any], source: str) -> SourceValidator:
    definitions = d.load(doc) if isinstance(doc, str | Path) else d.parse(doc)
    return compile_sources(definitions)[source]


def apply(bus: Bus, doc: str | Path | dict[str, Any] | d.Definitions, *, by: str = "test",
          prune: bool = False) -> d.Revision:
    """Publish `doc` merged into the revision in force (nothing when that changes nothing); returns the revision
    in force afterwards."""
    definitions = doc if isinstance(doc, d.Definitions) else (
        d.load(doc) if isinstance(doc, str | Path) else d.parse(doc))
    current = d.latest(read_revisions(bus, client_id="ingest-test-apply"))
    plan = d.plan(current, definitions, by, prune=prune)
    if plan.revision is None:
        assert current is not None
        return current
    publish(bus, plan.revision, client_id="ingest-test-apply")
    return plan.revision


def assert_fast_path_agrees(v: SourceValidator, cases: list[bytes], now_ms: int, skew_ms: int = 24 * 3600 * 1000
                            ) -> None:
    """The JSON fast path never accepts what the full path refuses, and gives the same ValidEvent when both
    accept; `validate_json` agrees with the full path; the batch path (all `cases` in one call) accepts exactly
    what the per-record fast path accepts, with the same event."""
    from pydantic import ValidationError

    from services.ingest.core import ValidEvent
    from services.ingest.errors import Rejected

    batch = v.validate_json_batch(cases, now_ms=now_ms, max_future_skew_ms=skew_ms)
    assert len(batch) == len(cases)
    for value, doc in zip(cases, batch, strict=True):
        fast = v._validate_fast(value, "raw/0/7", now_ms, skew_ms)
        if doc is None:
            assert fast is None, value
        else:
            values, categories = v.finish(doc["values"])
            assert fast == ValidEvent(v.source_name, doc.get("event_id") or "raw/0/7", doc[v.id_field],
                                      doc[v.time_field], doc["schema_version"], values, categories), value
        try:
            full: object = v._event(v._full.validate_json(value), "raw/0/7", now_ms, skew_ms)
        except (ValidationError, Rejected):
            full = "rejected"
        if fast is not None:
            assert fast == full, value
        try:
            got: object = v.validate_json(value, fallback_event_id="raw/0/7", now_ms=now_ms,
                                          max_future_skew_ms=skew_ms)
        except Rejected:
            got = "rejected"
        assert got == full, value
