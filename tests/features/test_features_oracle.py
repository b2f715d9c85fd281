"""The plainly written oracle (features_oracle.py) and the app's fold (ReferenceFeatures) agree on random streams
with late events: two independent computations of the same definitions, checked without a broker."""

from __future__ import annotations

import math
import random

import pytest
from features_oracle import RawEvent, delivery_online, newest_time, sea_online
from mlops import definitions as d
from mlops_tools.examples import definitions_path

from services.features.core import Event, FeaturesConfig, ReferenceFeatures

T0 = 1_700_000_000_000


def _config(*examples: str) -> tuple[FeaturesConfig, d.Revision]:
    current = None
    for name in examples:
        current = d.plan(current, d.load(definitions_path(name)), "t").revision
    assert current is not None
    return FeaturesConfig.of(current), current


@pytest.mark.parametrize("seed", range(5))
def test_sea_view_matches_the_oracle(seed: int) -> None:
    rng = random.Random(seed)
    config, _ = _config("sea")
    ref, raw = ReferenceFeatures(config), {}
    for i in range(400):
        entity = f"e{rng.randrange(4)}"
        t = T0 + i * rng.randrange(300, 1500) - rng.choice([0, 0, 0, rng.randrange(1, 200_000)])  # some late
        values = {"x0": float(rng.randrange(11)), "x1": rng.uniform(0, 10), "x2": rng.uniform(0, 10)}
        ref.update(Event(f"ev{i}", "", entity, t, 0, values))
        raw.setdefault(entity, []).append(RawEvent(t, values))
        as_of, got = ref.online("entity_activity", entity)
        want = sea_online(raw[entity])
        assert as_of == newest_time(raw[entity])
        for name, value in want.items():
            assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-9), (i, entity, name, got, want)


@pytest.mark.parametrize("seed", range(5))
def test_delivery_view_matches_the_oracle(seed: int) -> None:
    rng = random.Random(seed)
    config, _ = _config("sea", "delivery")
    ref, raw = ReferenceFeatures(config), {}
    channels, payments = ["web", "app", "store", "__other__"], ["card", "cash", "voucher"]
    for i in range(300):
        customer = f"c{rng.randrange(3)}"
        t = T0 + i * rng.randrange(10_000, 120_000) - rng.choice([0, 0, rng.randrange(1, 250_000)])
        values = {"amount": rng.uniform(0, 500), "items": float(rng.randrange(1, 9)),
                  "express": float(rng.random() < .3)}
        categories = {"channel": rng.choice(channels)}
        if rng.random() < .7:  # payment is optional
            categories["payment"] = rng.choice(payments)
        ref.update(Event(f"o{i}", "orders", customer, t, 0, values, categories))
        raw.setdefault(customer, []).append(RawEvent(t, values, categories))
        _as_of, got = ref.online("customer_orders", customer)
        want = delivery_online(raw[customer])
        assert set(got) == set(want)
        for name, value in want.items():
            assert math.isclose(got[name], value, rel_tol=1e-6, abs_tol=1e-6) or (math.isnan(got[name]) and
                                                                                  math.isnan(value)), (i, name)
