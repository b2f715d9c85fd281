"""The views table takes a changelog its consumer's metadata lists with 0 partitions as "not known yet" (faust's
own table raises PartitionsMismatch on every event until the next metadata refresh: a CI run saw the features
agent crash-loop on it for a whole run); a real mismatch still raises. Unit test: a consumer double gives counts."""

from __future__ import annotations

from types import SimpleNamespace

import faust
import pytest
from faust.exceptions import PartitionsMismatch

from services.features.edge.app import ViewsTable


def _table(table_class: type[faust.Table], counts: dict[str, int]) -> faust.Table:
    app = faust.App(f"views-{table_class.__name__}", Table=table_class, web_enabled=False)
    table = app.Table("views", default=None)
    counts[table.changelog_topic_name] = 0
    app.consumer = SimpleNamespace(topic_partitions=counts.get)
    return table


def test_faust_alone_raises_on_a_changelog_it_sees_with_0_partitions() -> None:
    table = _table(faust.Table, {"events": 3})
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions("events")


def test_the_views_table_checks_again_once_the_count_is_known() -> None:
    counts = {"events": 3}
    table = _table(ViewsTable, counts)
    assert isinstance(table, ViewsTable)
    table._verify_source_topic_partitions("events")  # 0: not known yet, no error, not remembered as verified
    counts[table.changelog_topic_name] = 4
    with pytest.raises(PartitionsMismatch, match="4"):
        table._verify_source_topic_partitions("events")
    counts[table.changelog_topic_name] = 3
    table._verify_source_topic_partitions("events")
