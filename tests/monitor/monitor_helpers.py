"""Shared by the monitor's tests: publishing definitions files the way `mlops apply` does, and the streams of two
models (a SEA-like binary one, a delivery-like regression one) with a concept drift where asked."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from mlops.bus import Bus
from mlops.definitions import load, plan
from mlops.definitions.model import Model
from mlops.definitions.revision import Revision, latest
from mlops.definitions.store import declared_topics, publish, read_revisions
from mlops.topics import ensure_topics
from mlops_tools.datagen import DEFAULT_START_MS, SEA_THRESHOLDS, StreamConfig, generate

from services.monitor import LabelEvent, Prediction

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEA = EXAMPLES / "sea" / "definitions.yaml"
DELIVERY = EXAMPLES / "delivery" / "definitions.yaml"


def apply_definitions(bus: Bus, *paths: Path, **overrides: object) -> Revision:
    """Merge each file into the revision in force and publish the result (as `mlops apply` does; a file already
    applied changes nothing). `overrides` replace whole models (`name=Model`), e.g. a changed drift policy."""
    current = latest(read_revisions(bus, client_id="t-apply", timeout=10))
    for path in paths:
        current = _publish(bus, current, load(path))
    if overrides:
        assert current is not None
        d = current.definitions
        models = tuple(overrides.get(m.name, m) for m in d.models)
        current = _publish(bus, current, d.model_copy(update={"models": models}))
    assert current is not None
    return current


def _publish(bus: Bus, current: Revision | None, definitions) -> Revision | None:  # noqa: ANN001
    revision = plan(current, definitions, "test").revision
    if revision is None:
        return current
    if bus.settings is not None:  # what `mlops apply` does on a cluster
        ensure_topics(bus.settings, declared_topics(revision.definitions))
    publish(bus, revision, client_id="t-apply")
    return revision


def with_drift(path: Path, **drift: object) -> Model:
    """The first model of the definitions file at `path` with its drift policy changed (`cooldown_s=...`)."""
    model = load(path).models[0]
    return model.model_copy(update={"drift": model.drift.model_copy(update=drift)})


@dataclass(frozen=True)
class Sample:
    """One served prediction of a model and the label that later answers it."""

    prediction: Prediction
    label: LabelEvent


def sea_samples(count: int, drift_at: int | None, *, seed: int = 9, start_ms: int = DEFAULT_START_MS,
                version: str = "1") -> list[Sample]:
    """A binary model that learned SEA variant 2 perfectly; from `drift_at` on the concept is variant 3."""
    out = []
    cfg = StreamConfig(count=count, drift_at=drift_at, covariate_shift=False, seed=seed, start_ms=start_ms)
    for rec in generate(cfg):
        s = rec.values["x0"] + rec.values["x1"]
        score = 1.0 / (1.0 + math.exp(-(s - SEA_THRESHOLDS[2])))
        inputs = {f"entity_activity.{k}_last": v for k, v in rec.values.items()}
        out.append(Sample(
            Prediction(f"sea-{seed}-{rec.index}", rec.entity_id, "sea", version, inputs, score, float(score > 0.5),
                       rec.event_time_ms, rec.event_time_ms, f"{rec.index + 1:032x}", f"{rec.index + 1:016x}"),
            LabelEvent(rec.entity_id, rec.event_time_ms, float(rec.label))))
    return out


def delivery_samples(count: int, drift_at: int | None, *, seed: int = 5, start_ms: int = DEFAULT_START_MS + 5,
                     version: str = "1", slower_by: float = 15.0) -> list[Sample]:
    """A regression model of delivery minutes that learned the true rule (it misses only the noise); from
    `drift_at` on every delivery takes `slower_by` minutes longer (a concept drift: the inputs do not change)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        amount, items, express = rng.uniform(5, 200), rng.randint(1, 10), rng.random() < 0.3
        channel = rng.choice(("web", "app", "store"))
        predicted = 20.0 + 0.1 * amount + 2.0 * items - 8.0 * express
        truth = predicted + rng.gauss(0.0, 3.0) + (slower_by if drift_at is not None and i >= drift_at else 0.0)
        inputs = {"customer_orders.amount_last": amount, "customer_orders.items_last": float(items),
                  "customer_orders.express_last": float(express)}
        inputs |= {f"customer_orders.channel={c}": float(c == channel) for c in ("web", "app", "store")}
        customer, t = f"c{rng.randrange(200):04d}", start_ms + i * 10
        out.append(Sample(
            Prediction(f"dt-{seed}-{i}", customer, "delivery_time", version, inputs, predicted, predicted, t, t,
                       f"{i + 1:031x}f", f"{i + 1:016x}"),
            LabelEvent(customer, t, round(truth, 3))))
    return out


def interleave(*streams: list[Sample]) -> list[Sample]:
    """The samples of several models in serve-time order (what the predictions topic holds)."""
    return sorted((s for stream in streams for s in stream), key=lambda s: s.prediction.timestamp_ms)
