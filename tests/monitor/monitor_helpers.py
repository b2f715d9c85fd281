"""Shared by the monitor's tests: publishing definitions files the way `mlops apply` does."""

from __future__ import annotations

from pathlib import Path

from mlops.bus import Bus
from mlops.definitions import load, plan
from mlops.definitions.model import Model
from mlops.definitions.revision import Revision, latest
from mlops.definitions.store import declared_topics, publish, read_revisions
from mlops.topics import ensure_topics

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
