"""The definitions topic: publish, read back, follow — against the in-memory bus and the real broker."""

from __future__ import annotations

from pathlib import Path

import yaml
from mlops import definitions as d
from mlops.bus import Bus
from mlops.definitions.store import DefinitionsFollower, declared_topics, publish, read_revisions
from testkit import wait_until

ROOT = Path(__file__).resolve().parents[2]
SEA = ROOT / "examples" / "sea" / "definitions.yaml"


def test_published_revisions_are_read_back_in_order(bus: Bus) -> None:
    assert read_revisions(bus, client_id="t") == []
    first = d.plan(None, d.load(SEA), "alice").revision
    assert first is not None
    publish(bus, first, client_id="t")
    doc = yaml.safe_load(SEA.read_text())
    doc["models"][0]["gate"]["margin"] = 0.01
    second = d.plan(first, d.parse(doc), "bob").revision
    assert second is not None
    publish(bus, second, client_id="t")
    assert [(r.number, r.applied_by) for r in read_revisions(bus, client_id="t")] == [(1, "alice"), (2, "bob")]
    assert d.latest(read_revisions(bus, client_id="t")) == second


def test_a_follower_sees_what_is_there_then_each_newer_revision(bus: Bus) -> None:
    first = d.plan(None, d.load(SEA), "alice").revision
    assert first is not None
    publish(bus, first, client_id="t")
    seen: list[int] = []
    follower = DefinitionsFollower(bus, client_id="t-follower", on_change=lambda r: seen.append(r.number),
                                   poll_timeout=0.1)
    try:
        assert follower.start() == first and seen == [1]
        doc = yaml.safe_load(SEA.read_text())
        doc["models"][0]["drift"]["cooldown_s"] = 5
        second = d.plan(first, d.parse(doc), "bob").revision
        assert second is not None
        publish(bus, second, client_id="t")
        assert wait_until(lambda: seen == [1, 2]), seen
        assert follower.current == second and follower.alive()
    finally:
        follower.stop()
    assert not follower.alive()


def test_declared_topics_name_sources_and_label_topics() -> None:
    delivery = d.load(ROOT / "examples" / "delivery" / "definitions.yaml")
    assert [t.name for t in declared_topics(delivery)] == ["orders.delivered", "orders.raw"]
