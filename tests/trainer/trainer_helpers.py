"""What the trainer's tests share: the examples' definitions as a revision (with test-sized training), and rows of
the SEA and delivery domains as the offline store holds them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mlops.definitions import Revision, parse, plan

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000
SEA_COLUMNS = ("x0_last", "x1_last", "x2_last", "x0_mean_60s", "x1_mean_60s", "events_30s")
SEA_FEATURES = tuple(f"entity_activity.{c}" for c in SEA_COLUMNS)
DELIVERY_COLUMNS = ("amount_last", "items_last", "express_last", "channel=web", "channel=app", "channel=store",
                    "amount_mean_1h", "orders_1h")


def document(*examples: str, models: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The examples' definitions merged into one document; `models[name]` updates that model's declaration (e.g.
    `{"sea": {"algorithm": {"params": {"max_iter": 10}}}}`)."""
    doc: dict[str, Any] = {"entities": [], "sources": [], "feature_views": [], "models": []}
    for example in examples:
        part = yaml.safe_load((ROOT / "examples" / example / "definitions.yaml").read_text())
        for section in doc:
            doc[section] += part.get(section, [])
    for model in doc["models"]:
        model.update((models or {}).get(model["name"], {}))
    return doc


def revision(*examples: str, models: Mapping[str, Mapping[str, Any]] | None = None,
             doc: dict[str, Any] | None = None) -> Revision:
    """Revision 1 of the examples (or of `doc`), as `mlops apply` would publish it."""
    applied = plan(None, parse(doc if doc is not None else document(*examples, models=models), "test"), "test")
    assert applied.revision is not None
    return applied.revision


def fast(min_rows: int = 100, max_iter: int = 10, **training: Any) -> dict[str, Any]:
    """A model declaration update for test-sized training."""
    return {"algorithm": {"params": {"max_iter": max_iter}}, "training": {"min_rows": min_rows, **training}}


def sea_values(rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """One SEA feature row (x0 + x1 > 8 is class 1) as the entity_activity view's columns, and its label."""
    x = rng.uniform(0, 10, 3)
    return dict(zip(SEA_COLUMNS, [x[0], x[1], x[2], x[0], x[1], 1.0], strict=True)), float(x[0] + x[1] > 8.0)


def delivery_values(rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """One customer_orders row and its delivery time in minutes (a learnable concept plus noise)."""
    amount, items, express = rng.uniform(5, 500), float(rng.integers(1, 10)), float(rng.random() < 0.3)
    channel = ("web", "app", "store")[int(rng.integers(0, 3))]
    values = {"amount_last": amount, "items_last": items, "express_last": express, "amount_mean_1h": amount,
              "amount_std_1h": 0.0, "orders_1h": 1.0, "items_sum_1d": items, "payments_1d": 1.0}
    values |= {f"channel={c}": float(c == channel) for c in ("web", "app", "store")}
    minutes = 15 + 2.5 * items + 0.004 * amount + {"web": 10, "app": 5, "store": 0}[channel] - 8 * express
    return values, float(minutes + rng.normal(0, 1.0))


def sea_onnx(width: int = len(SEA_COLUMNS), input_name: str = "features", regression: bool = False) -> bytes:
    """A team's own model of the SEA concept, trained outside the platform: a logistic regression (or, to fit the
    wrong task, a linear regression) exported with skl2onnx, input `input_name` FP32 [N, width]."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(7)
    X = rng.uniform(0, 10, (1000, width)).astype(np.float32)  # noqa: N806
    y = (X[:, 0] + X[:, 1] > 8.0).astype(np.int64)
    model = LinearRegression().fit(X, y) if regression else LogisticRegression(max_iter=500).fit(X, y)
    options = {} if regression else {id(model): {"zipmap": False}}
    return to_onnx(model, initial_types=[(input_name, FloatTensorType([None, width]))], options=options,
                   target_opset=17).SerializeToString()
