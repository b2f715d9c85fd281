"""The ingest error tree, rooted at the platform's `MlopsError`."""

from __future__ import annotations

from mlops.errors import MlopsError

__all__ = ["IngestError", "Rejected"]


class IngestError(MlopsError):
    """Root of every error the ingest service raises."""


class Rejected(IngestError):
    """A raw record that does not satisfy the declared schema; `field` names the culprit ("" for the record)."""

    def __init__(self, error_type: str, field: str, detail: str):
        self.error_type = error_type
        self.field = field
        self.detail = detail
        where = f"field '{field}'" if field else "record"
        super().__init__(f"{where}: {detail} [{error_type}]")

    @property
    def reason(self) -> str:
        return str(self)
