"""The delivery example's synthetic orders: a learnable regression concept with a KNOWN drift point.

Each order of a customer (pool of `entities`) has a basket `amount` (EUR, log-normal, median ~90), a number of
`items` (1..8), `express` (30 %), a `channel` (web 50 %, app 30 %, store 20 %) and, for nine orders in ten, a
`payment` method. Its delivery time in minutes (the label, on the model's label topic) is

    minutes = 15 + 2.5 * items + 0.004 * amount + {web: 10, app: 5, store: 0}[channel] - 8 * express + N(0, 3)

From record `drift_at` on, the concept changes — app orders take APP_SHIFT_MINUTES (15) longer (a new courier
partner) — and, with `covariate_shift`, baskets grow by AMOUNT_SHIFT (×1.8). A model of the old concept is then
wrong by 15 minutes on every app order: the oracle of the old concept has MAE ~2.4 before the drift (σ·√(2/π))
and ~6.2 after (`measure_mae_shift`, count=20000, drift_at=10000, seed 42: 2.42 → 6.21 minutes); a
gradient-boosted model trained on 80 % of the first 10000 records measures MAE 2.51 on the rest of them → 6.24
after the drift (`measure_model_mae_shift`): the drift costs it 3.7 minutes, ×2.5.

Same config → same records, byte for byte (`DeliveryConfig` mirrors the SEA `StreamConfig`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "AMOUNT_SHIFT",
    "APP_SHIFT_MINUTES",
    "CHANNEL_MINUTES",
    "DeliveryConfig",
    "DeliveryRecord",
    "delivery_minutes",
    "generate",
    "measure_mae_shift",
    "measure_model_mae_shift",
]

CHANNEL_MINUTES: dict[str, float] = {"web": 10.0, "app": 5.0, "store": 0.0}
CHANNEL_WEIGHTS: dict[str, float] = {"web": 0.5, "app": 0.3, "store": 0.2}
PAYMENTS: tuple[tuple[str | None, float], ...] = (("card", 0.6), ("cash", 0.2), ("voucher", 0.1), (None, 0.1))
APP_SHIFT_MINUTES = 15.0
AMOUNT_SHIFT = 1.8
NOISE_SD = 3.0
DEFAULT_START_MS = 1_700_000_000_000


@dataclass(frozen=True)
class DeliveryConfig:
    """What to generate. Same config → same records."""

    count: int = 10_000
    drift_at: int | None = 5_000  # index of the first record of the new concept; None: no drift (control stream)
    entities: int = 100
    seed: int = 42
    noise_sd: float = NOISE_SD
    covariate_shift: bool = True  # also scale basket amounts by AMOUNT_SHIFT from drift_at on
    start_ms: int = DEFAULT_START_MS
    interval_ms: float = 10.0

    def __post_init__(self) -> None:
        if self.count < 0 or self.entities < 1:
            raise ValueError("count must be >= 0 and entities >= 1")
        if self.drift_at is not None and self.drift_at < 0:
            raise ValueError("drift_at must be >= 0 (or None for no drift)")
        if self.noise_sd < 0:
            raise ValueError("noise_sd must be >= 0")


@dataclass(frozen=True)
class DeliveryRecord:
    index: int
    event_id: str
    entity_id: str
    event_time_ms: int
    values: dict[str, float | int | bool | str] = field(hash=False)  # declared field → value (payment may be absent)
    label: float  # delivery minutes
    drifted: bool


def delivery_minutes(values: dict[str, float | int | bool | str], drifted: bool) -> float:
    """The noise-free concept (before or after the drift) for one order."""
    channel = str(values["channel"])
    minutes = (15.0 + 2.5 * float(values["items"]) + 0.004 * float(values["amount"]) + CHANNEL_MINUTES[channel]
               - 8.0 * float(bool(values["express"])))
    if drifted and channel == "app":
        minutes += APP_SHIFT_MINUTES
    return minutes


def _pick(rng: random.Random, weighted: tuple[tuple[str | None, float], ...]) -> str | None:
    r = rng.random()
    for value, weight in weighted:
        r -= weight
        if r < 0:
            return value
    return weighted[-1][0]


def generate(config: DeliveryConfig | None = None) -> Iterator[DeliveryRecord]:
    """The order stream, lazily: records before `drift_at` follow the old concept, later ones the new."""
    cfg = config or DeliveryConfig()
    rng = random.Random(cfg.seed)
    entity_rng = random.Random(cfg.seed * 7919 + 29)
    width = max(4, len(str(cfg.entities - 1)))
    channels = tuple(CHANNEL_WEIGHTS.items())
    for i in range(cfg.count):
        drifted = cfg.drift_at is not None and i >= cfg.drift_at
        amount = math.exp(rng.gauss(4.5, 0.7)) * (AMOUNT_SHIFT if drifted and cfg.covariate_shift else 1.0)
        values: dict[str, float | int | bool | str] = {
            "amount": round(min(5000.0, amount), 2),
            "items": rng.randint(1, 8),
            "express": rng.random() < 0.3,
            "channel": str(_pick(rng, channels)),
        }
        payment = _pick(rng, PAYMENTS)
        if payment is not None:
            values["payment"] = payment
        label = delivery_minutes(values, drifted) + rng.gauss(0.0, cfg.noise_sd)
        yield DeliveryRecord(
            index=i,
            event_id=f"delivery-{cfg.seed}-{i:09d}",
            entity_id=f"c{entity_rng.randrange(cfg.entities):0{width}d}",
            event_time_ms=cfg.start_ms + int(i * cfg.interval_ms),
            values=values,
            label=round(max(1.0, label), 3),
            drifted=drifted,
        )


def measure_mae_shift(config: DeliveryConfig | None = None) -> tuple[float, float]:
    """(MAE before, MAE after) of the noise-free old concept on the generated stream: what the drift costs."""
    cfg = config or DeliveryConfig()
    err = {False: 0.0, True: 0.0}
    seen = {False: 0, True: 0}
    for rec in generate(cfg):
        seen[rec.drifted] += 1
        err[rec.drifted] += abs(delivery_minutes(rec.values, False) - rec.label)
    return (err[False] / seen[False] if seen[False] else math.nan, err[True] / seen[True] if seen[True] else math.nan)


def _row(values: dict[str, float | int | bool | str]) -> list[float]:
    return [float(values["amount"]), float(values["items"]), float(bool(values["express"]))] + [
        float(values["channel"] == c) for c in CHANNEL_MINUTES]


def measure_model_mae_shift(config: DeliveryConfig | None = None) -> tuple[float, float]:
    """(holdout MAE before, MAE after) of a HistGradientBoostingRegressor trained on 80 % of the pre-drift records
    (the declared model's last-order features): what the drift costs a model trained before it."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    cfg = config or DeliveryConfig()
    before = [r for r in generate(cfg) if not r.drifted]
    after = [r for r in generate(cfg) if r.drifted]
    cut = int(len(before) * 0.8)
    model = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.1, random_state=cfg.seed)
    model.fit([_row(r.values) for r in before[:cut]], [r.label for r in before[:cut]])

    def mae(rows: list[DeliveryRecord]) -> float:
        if not rows:
            return math.nan
        pred = model.predict([_row(r.values) for r in rows])
        return float(sum(abs(p - r.label) for p, r in zip(pred, rows, strict=True)) / len(rows))

    return mae(before[cut:]), mae(after)
