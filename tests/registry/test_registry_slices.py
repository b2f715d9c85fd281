"""The gate on slices (declared per model in `gate.slices`) and the model card's reports, on the core (no broker):
a challenger better overall but worse on one slice is refused with that slice named; floors and gaps per slice;
the card's figures are valid PNGs; slices and the explainability report survive registry.log."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from registry_helpers import DELIVERY, onnx_of, revise
from test_registry_policy import World, cand

from services.registry.core import CandidateInfo, Holdout

CHANNEL = {"attributes": ["customer_orders.channel"], "max_slice_loss": 1.0}
STORE = DELIVERY.index("customer_orders.channel=store")


def orders(n: int, seed: int) -> np.ndarray:
    """Inputs of the delivery model with a valid one-hot channel (web / app / store, a third each)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 5, (n, len(DELIVERY))).astype(np.float32)  # noqa: N806
    X[:, 3:6] = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return X


def minutes(X: np.ndarray) -> np.ndarray:  # noqa: N803
    return 10 + 3 * X[:, 0] + 2 * X[:, 1]


def linear(y_shift: float = 0.0, x1_weight: float = 2.0, store_shift: float = 0.0) -> bytes:
    """A linear model of the delivery concept with a wrong x1 weight and/or an offset on store orders."""
    from sklearn.linear_model import LinearRegression

    X = orders(2000, 1)  # noqa: N806
    y = 10 + 3 * X[:, 0] + x1_weight * X[:, 1] + y_shift + store_shift * X[:, STORE]
    return onnx_of(LinearRegression().fit(X, y), len(DELIVERY))


def holdout(n: int = 600) -> Holdout:
    X = orders(n, 7)  # noqa: N806
    return Holdout(DELIVERY, X, minutes(X).astype(np.float64))


# champion: misses 1.5 minutes per unit of x1 everywhere (MAE ~3.75); challenger: exact on web and app orders, 6
# minutes late on store orders (MAE ~2 overall, so better overall, but worse by ~2.3 on store)
CHAMPION = dict(x1_weight=0.5)
CHALLENGER = dict(store_shift=6.0)


def test_a_challenger_better_overall_but_worse_on_one_slice_is_refused_naming_it() -> None:
    champ, chall = linear(**CHAMPION), linear(**CHALLENGER)
    w = World(champ, chall)
    w.revision = revise(None, {"delivery_time": {"slices": CHANNEL}})
    v1 = w.registry.register(cand(champ, "delivery_time", DELIVERY), holdout())
    assert v1.status == "champion" and v1.slices is not None
    v2 = w.registry.register(cand(chall, "delivery_time", DELIVERY), holdout())
    # better overall on the same rows ...
    assert v2.gate_metrics["mae"] < v2.champion_metrics["mae"]
    # ... but refused, naming the slice with its figures and the threshold
    assert v2.status == "rejected", v2.gate_reason
    reason = v2.gate_reason
    assert reason.startswith("refused on a slice: slice customer_orders.channel=store: mae "), reason
    assert "worse than champion v1's" in reason and "max_slice_loss 1" in reason and "overall it passed" in reason
    store = next(r for r in v2.slices.rows if r.value == "store")
    assert store.metric == pytest.approx(6.0, abs=0.01) and store.champion < 4
    assert store.low <= store.metric <= store.high
    assert {r.value for r in v2.slices.rows} == {"web", "app", "store"}
    assert sum(r.rows for r in v2.slices.rows) == 600
    # the audit trail says the same
    assert w.registry.state.audit_of("delivery_time")[-1].why == reason
    assert [p.version for p in w.promoted] == ["1"]


def test_without_a_slice_policy_the_same_challenger_is_promoted_its_sensitive_slices_reported() -> None:
    champ, chall = linear(**CHAMPION), linear(**CHALLENGER)
    w = World(champ, chall)
    w.revision = revise(None, {"delivery_time": {"slices": None}})
    w.registry.register(cand(champ, "delivery_time", DELIVERY), holdout())
    v2 = w.registry.register(cand(chall, "delivery_time", DELIVERY), holdout())
    assert v2.status == "champion", v2.gate_reason
    # the channel is declared sensitive in the example: reported per slice, judged by nothing
    assert {(r.attribute, r.sensitive) for r in v2.slices.rows} == {("customer_orders.channel", True)}


def test_a_slice_floor_and_a_gap_refuse_a_first_model_naming_the_slice() -> None:
    model = linear(**CHALLENGER)
    w = World(model)
    w.revision = revise(None, {"delivery_time": {"slices": {"attributes": ["customer_orders.channel"],
                                                           "slice_floor": 5.0}}})
    v1 = w.registry.register(cand(model, "delivery_time", DELIVERY), holdout())
    assert v1.status == "rejected" and "slice customer_orders.channel=store" in v1.gate_reason
    assert "fails slice_floor (mae <= 5)" in v1.gate_reason
    w.revision = revise(w.revision, {"delivery_time": {"slices": {"attributes": ["customer_orders.channel"],
                                                                  "max_slice_gap": 2.0}}})
    other = linear(**CHALLENGER, y_shift=0.001)
    w.store[cand(other, "x", DELIVERY).sha256] = other
    v2 = w.registry.register(cand(other, "delivery_time", DELIVERY), holdout())
    assert v2.status == "rejected" and "slices of customer_orders.channel: gap 6.0" in v2.gate_reason
    assert "worst customer_orders.channel=store" in v2.gate_reason and "max_slice_gap 2" in v2.gate_reason


def test_a_numeric_attribute_is_cut_into_quantile_bins_and_small_slices_are_not_judged() -> None:
    model = linear()
    w = World(model)
    w.revision = revise(None, {"delivery_time": {"slices": {
        "attributes": ["customer_orders.amount_last"], "bins": 4, "min_rows": 1000, "slice_floor": 0.0}}})
    v1 = w.registry.register(cand(model, "delivery_time", DELIVERY), holdout())
    assert v1.status == "champion", v1.gate_reason  # every slice fails the floor, but none has 1000 rows
    rows = [r for r in v1.slices.rows if r.attribute == "customer_orders.amount_last"]
    assert len(rows) == 4 and all(140 <= r.rows <= 160 for r in rows)
    assert rows[-1].value.endswith("]") and all(r.value.startswith("[") for r in rows)


def _report():
    from mlops.evaluation import Calibration, Dependence, Explainability, Importance

    return Explainability(
        "mae", 600, (Importance(DELIVERY[0], 4.1, 0.2), Importance(DELIVERY[1], 1.9, 0.1)),
        (Dependence(DELIVERY[0], (0.0, 2.5, 5.0), (10.0, 17.5, 25.0)),),
        Calibration((0.1, 0.5, 0.9), (0.15, 0.45, 0.92), (10, 20, 30)),
        {n: 2.5 for n in DELIVERY})


def test_the_card_shows_the_reports_and_its_figures_are_valid_pngs() -> None:
    from matplotlib.image import imread
    from mlops_tools.card_html import card_html
    from PIL import Image

    champ, chall = linear(**CHAMPION), linear(**CHALLENGER)
    w = World(champ, chall)
    w.revision = revise(None, {"delivery_time": {"slices": CHANNEL}})
    w.registry.register(cand(champ, "delivery_time", DELIVERY), holdout())
    c = cand(chall, "delivery_time", DELIVERY)
    v2 = w.registry.register(CandidateInfo(**{**c.__dict__, "explainability": _report()}), holdout())
    card = w.registry.model_card("delivery_time", v2.version)
    for needle in ("## Explainability (holdout)", "| 1 | `customer_orders.amount_last` | 4.1000",
                   "## Slices", "| `customer_orders.channel` (sensitive) | store | ",
                   "Gap on `customer_orders.channel`", "max_slice_loss 1", "expected calibration error"):
        assert needle in card, needle
    figures = w.registry.card_figures("delivery_time", v2.version)
    assert [f.name for f in figures] == ["importance.png", "partial_dependence.png", "calibration.png", "slices.png"]
    for f in figures:
        assert f"]({f.name})" in card
        assert f.png.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(f.png)) as image:
            image.verify()
        pixels = imread(io.BytesIO(f.png), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert float(pixels.std()) > 0  # not a blank canvas
    page = card_html(card, {f.name: f.png for f in figures})
    assert page.count('src="data:image/png;base64,') == 4 and ".png\"" not in page
    assert "<table>" in page


def test_slices_and_the_explainability_report_survive_registry_log() -> None:
    from services.registry.convert import event_in, event_out

    champ, chall = linear(**CHAMPION), linear(**CHALLENGER)
    w = World(champ, chall)
    w.revision = revise(None, {"delivery_time": {"slices": CHANNEL}})
    w.registry.register(cand(champ, "delivery_time", DELIVERY), holdout())
    c = cand(chall, "delivery_time", DELIVERY)
    v2 = w.registry.register(CandidateInfo(**{**c.__dict__, "explainability": _report()}), holdout())
    again = event_in(event_out(v2))
    assert again.candidate.explainability == v2.candidate.explainability
    assert again.slices == v2.slices
    first = event_in(event_out(w.registry.get("delivery_time", "1")))
    assert all(r.champion is None and not math.isnan(r.metric) for r in first.slices.rows)
