"""The session fixture's promise: every fresh prefix starts with the SEA example applied as revision 1; `bare`
prefixes start empty; a second example applies on top as revision 2 with its own topics created."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mlops.bus import KafkaBus
from mlops.definitions.store import read_revisions
from mlops.settings import KafkaSettings
from mlops_tools.examples import apply_definitions, definitions_path

pytestmark = pytest.mark.integration


def test_a_fresh_prefix_has_the_sea_definitions_in_force(kafka_settings: KafkaSettings) -> None:
    [revision] = read_revisions(KafkaBus(kafka_settings), client_id="t")
    assert revision.number == 1
    assert [m.name for m in revision.definitions.models] == ["sea"]
    assert revision.view_versions == {"entity_activity": 1}


def test_a_second_example_applies_on_top(kafka_settings_factory: Callable[..., KafkaSettings]) -> None:
    settings = kafka_settings_factory()
    revision = apply_definitions(settings, definitions_path("delivery"), applied_by="t")
    assert revision is not None and revision.number == 2
    assert {m.name for m in revision.definitions.models} == {"sea", "delivery_time"}
    assert apply_definitions(settings, definitions_path("delivery")) is None  # unchanged: nothing published
    assert len(read_revisions(KafkaBus(settings), client_id="t")) == 2


@pytest.mark.bare
def test_bare_prefixes_start_without_definitions(kafka_settings: KafkaSettings) -> None:
    assert read_revisions(KafkaBus(kafka_settings), client_id="t") == []
