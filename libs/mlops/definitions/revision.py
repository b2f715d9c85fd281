"""Applied definitions as revisions: what `mlops apply` publishes and every service reads back.

A revision is the whole validated document with a number, the version of each feature view, what it changed, who
applied it and when. Revisions are never overwritten (key `revision/<n>` on the compacted `definitions` topic), so
the topic is also the audit trail; the highest revision is in force.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mlops.contracts.v1 import definitions_pb2
from mlops.definitions.changes import Change, check_compatible, diff, merge, view_versions
from mlops.definitions.document import Definitions
from mlops.definitions.load import from_json, to_json

__all__ = ["Plan", "Revision", "latest", "plan", "revision_key"]


@dataclass(frozen=True)
class Revision:
    number: int
    definitions: Definitions
    view_versions: dict[str, int]  # every view ever registered, removed ones included (numbers never reused)
    changes: tuple[str, ...]
    applied_by: str
    applied_at_ms: int
    trace_id: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(to_json(self.definitions)).hexdigest()

    def to_record(self) -> definitions_pb2.DefinitionsRevision:
        spec = to_json(self.definitions)
        return definitions_pb2.DefinitionsRevision(
            revision=self.number, spec_json=spec, spec_sha256=hashlib.sha256(spec).hexdigest(),
            view_versions=self.view_versions, changes=list(self.changes), applied_by=self.applied_by,
            applied_at_ms=self.applied_at_ms, trace_id=self.trace_id)

    @classmethod
    def from_record(cls, record: definitions_pb2.DefinitionsRevision, where: str = "") -> Revision:
        """Raises DefinitionsError if the document no longer validates (e.g. written by a newer release)."""
        return cls(
            number=record.revision, definitions=from_json(record.spec_json, where or f"revision {record.revision}"),
            view_versions=dict(record.view_versions), changes=tuple(record.changes), applied_by=record.applied_by,
            applied_at_ms=record.applied_at_ms, trace_id=record.trace_id)


def revision_key(number: int) -> str:
    return f"revision/{number:010d}"


def latest(revisions: Iterable[Revision]) -> Revision | None:
    return max(revisions, key=lambda r: r.number, default=None)


@dataclass(frozen=True)
class Plan:
    """What `apply` would publish: the next revision, or nothing when the document is unchanged."""

    changes: tuple[Change, ...]
    revision: Revision | None


def plan(current: Revision | None, applied: Definitions, applied_by: str, now_ms: int | None = None, *,
         prune: bool = False) -> Plan:
    """Merge `applied` into the revision in force (`changes.merge`), check the result and build the next
    revision; raises DefinitionsError when a change is incompatible (see `changes.check_compatible`)."""
    old = current.definitions if current is not None else None
    new = merge(old, applied, prune=prune)
    check_compatible(old, new)
    changes = tuple(diff(old, new))
    if not changes:
        return Plan((), None)
    known = current.view_versions if current is not None else {}
    versions = known | view_versions(old, known, new)
    revision = Revision(
        number=(current.number if current is not None else 0) + 1, definitions=new, view_versions=versions,
        changes=tuple(str(c).replace("\n    ", "; ") for c in changes), applied_by=applied_by,
        applied_at_ms=now_ms if now_ms is not None else int(time.time() * 1000))
    return Plan(changes, revision)
