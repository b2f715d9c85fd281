"""The declared data contract of the platform: the raw event schema producers write against and the versioned
feature set the features service computes, the trainer learns from and inference serves.

Changing a field's meaning means a new SCHEMA_VERSION / FEATURE_SET_VERSION; consumers refuse versions they do not
know (ingest sends them to the dead-letter topic).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FEATURE_SET",
    "MAX_ENTITY_ID_LENGTH",
    "MAX_RAW_RECORD_BYTES",
    "RAW_FIELDS",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "Aggregate",
    "FeatureSet",
    "RawField",
]

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})


@dataclass(frozen=True)
class RawField:
    name: str
    minimum: float
    maximum: float
    required: bool = True
    description: str = ""


# The demo's data (river's SEA stream: three numeric attributes in [0, 10]); a real deployment declares its own.
RAW_FIELDS: tuple[RawField, ...] = (
    RawField("x0", 0.0, 10.0, description="first SEA attribute"),
    RawField("x1", 0.0, 10.0, description="second SEA attribute"),
    RawField("x2", 0.0, 10.0, description="third SEA attribute (irrelevant to the SEA concept)"),
)

MAX_ENTITY_ID_LENGTH = 128
MAX_RAW_RECORD_BYTES = 64 * 1024  # larger raw records are dead-lettered as oversize


@dataclass(frozen=True)
class Aggregate:
    """One feature: `function` of raw field `source` over a window (None: the latest value)."""

    name: str
    source: str
    function: str  # last | mean | count | min | max
    window: str | None = None  # None | "tumbling:<seconds>" | "hopping:<size>:<step>"


@dataclass(frozen=True)
class FeatureSet:
    name: str
    version: int
    features: tuple[Aggregate, ...]
    ttl_seconds: int = 24 * 3600  # online view expiry in Redis

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names in model-input order."""
        return tuple(f.name for f in self.features)


FEATURE_SET = FeatureSet(
    name="entity_activity",
    version=1,
    features=(
        Aggregate("x0_last", "x0", "last"),
        Aggregate("x1_last", "x1", "last"),
        Aggregate("x2_last", "x2", "last"),
        Aggregate("x0_mean_60s", "x0", "mean", "tumbling:60"),
        Aggregate("x1_mean_60s", "x1", "mean", "tumbling:60"),
        Aggregate("events_30s", "x0", "count", "hopping:30:10"),
    ),
)
