"""The demo's synthetic data: river's SEA stream with KNOWN drift points, deterministic for a seed.

SEA (Street & Kim, 2001) draws three attributes x0, x1, x2 uniformly in [0, 10]; the label is `x0 + x1 > threshold`
(x2 is irrelevant). river's four variants use thresholds 8, 9, 7 and 9.5. A *concept drift* here is a switch of
variant at record `drift_at`: by default 2 (threshold 7) → 3 (threshold 9.5), the pair with the widest band of
flipped labels. A model that learned the old concept is wrong exactly when 7 < x0 + x1 <= 9.5, which has
probability (9.5² − 7²) / 200 = 0.206 (x0 + x1 is triangular on [0, 20]): accuracy drops by ~20.6 points at the
drift point (`expected_accuracy_drop` computes it; `measure_accuracy_drop` measures it: 1.000 → 0.789 for
count=20000, drift_at=10000, seed 42).

Optionally the drift also carries a *covariate shift* of x2 (uniform on [0, 10] → uniform on [5, 10]), so the
data-drift detectors of the monitor have something to see; the label does not depend on x2, so this shift alone
does not hurt a correct model.

Every record has an entity id from a pool of `entities`, an event time (`start_ms + index * interval_ms`), the
values, its label and a deterministic event id. The plain API (`generate`) is what the demo, the tests and
`mlops produce` call; JSON and protobuf encodings of a raw event live here too so every producer writes the same
bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

SCHEMA_VERSION = 1  # sources[sea_events].schema_version in examples/sea/definitions.yaml
SEA_THRESHOLDS: dict[int, float] = {0: 8.0, 1: 9.0, 2: 7.0, 3: 9.5}
FIELD_NAMES: tuple[str, str, str] = ("x0", "x1", "x2")
DEFAULT_START_MS = 1_700_000_000_000

__all__ = [
    "DEFAULT_START_MS",
    "FIELD_NAMES",
    "SEA_THRESHOLDS",
    "StreamConfig",
    "SyntheticRecord",
    "expected_accuracy_drop",
    "generate",
    "measure_accuracy_drop",
    "sea_label",
]


@dataclass(frozen=True)
class StreamConfig:
    """What to generate. Same config → same records, byte for byte."""

    count: int = 10_000
    drift_at: int | None = 5_000  # index of the first record of the new concept; None: no drift (control stream)
    entities: int = 100
    seed: int = 42
    variant_before: int = 2
    variant_after: int = 3
    noise: float = 0.0  # probability of a flipped label (river's SEA noise), before and after the drift
    covariate_shift: bool = True  # also shift x2 to [5, 10] from drift_at on
    start_ms: int = DEFAULT_START_MS
    interval_ms: float = 10.0

    def __post_init__(self) -> None:
        for v in (self.variant_before, self.variant_after):
            if v not in SEA_THRESHOLDS:
                raise ValueError(f"SEA variant must be one of {sorted(SEA_THRESHOLDS)}, got {v}")
        if self.count < 0 or self.entities < 1:
            raise ValueError("count must be >= 0 and entities >= 1")
        if self.drift_at is not None and self.drift_at < 0:
            raise ValueError("drift_at must be >= 0 (or None for no drift)")
        if not 0.0 <= self.noise < 0.5:
            raise ValueError("noise must be in [0, 0.5)")


@dataclass(frozen=True)
class SyntheticRecord:
    index: int
    event_id: str
    entity_id: str
    event_time_ms: int
    values: dict[str, float] = field(hash=False)
    label: int
    drifted: bool  # generated under the post-drift concept

    def raw_json(self) -> bytes:
        """The raw event as an external JSON producer writes it to raw.events."""
        return json.dumps(
            {
                "entity_id": self.entity_id,
                "event_time": self.event_time_ms,
                "schema_version": SCHEMA_VERSION,
                "values": self.values,
                "event_id": self.event_id,
            },
            separators=(",", ":"),
        ).encode("utf-8")


def sea_label(values: dict[str, float], variant: int) -> int:
    """The noise-free SEA concept of `variant` for one record."""
    return int(values["x0"] + values["x1"] > SEA_THRESHOLDS[variant])


def expected_accuracy_drop(variant_before: int, variant_after: int) -> float:
    """P(the two concepts disagree) for x0, x1 ~ U[0, 10]: the accuracy an old-concept oracle loses."""

    def cdf(s: float) -> float:  # CDF of x0 + x1 (triangular on [0, 20])
        return s * s / 200.0 if s <= 10 else 1.0 - (20.0 - s) ** 2 / 200.0

    lo, hi = sorted((SEA_THRESHOLDS[variant_before], SEA_THRESHOLDS[variant_after]))
    return cdf(hi) - cdf(lo)


def _sea(variant: int, noise: float, seed: int) -> Iterator[tuple[dict[int, float], bool]]:
    from river.datasets import synth

    return iter(synth.SEA(variant=variant, noise=noise, seed=seed))


def generate(config: StreamConfig | None = None) -> Iterator[SyntheticRecord]:
    """The stream, lazily: records before `drift_at` follow `variant_before`, later ones `variant_after`."""
    cfg = config or StreamConfig()
    before = _sea(cfg.variant_before, cfg.noise, cfg.seed)
    after = _sea(cfg.variant_after, cfg.noise, cfg.seed + 1)
    entity_rng = random.Random(cfg.seed * 7919 + 17)
    width = max(4, len(str(cfg.entities - 1)))
    for i in range(cfg.count):
        drifted = cfg.drift_at is not None and i >= cfg.drift_at
        x, y = next(after if drifted else before)
        values = {FIELD_NAMES[k]: round(float(x[k]), 6) for k in range(3)}
        if drifted and cfg.covariate_shift:
            values["x2"] = round(5.0 + values["x2"] / 2.0, 6)
        yield SyntheticRecord(
            index=i,
            event_id=f"sea-{cfg.seed}-{i:09d}",
            entity_id=f"e{entity_rng.randrange(cfg.entities):0{width}d}",
            event_time_ms=cfg.start_ms + int(i * cfg.interval_ms),
            values=values,
            label=int(y),
            drifted=drifted,
        )


def measure_accuracy_drop(config: StreamConfig | None = None) -> tuple[float, float]:
    """(accuracy before, accuracy after) of an oracle of the pre-drift concept on the generated stream."""
    cfg = config or StreamConfig()
    hits = {False: 0, True: 0}
    seen = {False: 0, True: 0}
    for rec in generate(cfg):
        seen[rec.drifted] += 1
        hits[rec.drifted] += int(sea_label(rec.values, cfg.variant_before) == rec.label)
    return (
        hits[False] / seen[False] if seen[False] else float("nan"),
        hits[True] / seen[True] if seen[True] else float("nan"),
    )
