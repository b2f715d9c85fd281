"""The features table's changelog exists before the faust worker starts, with as many partitions as `events`
(a CI run once saw faust create it itself while its consumer's first metadata did not list it yet: the agent then
failed with PartitionsMismatch on every restart and no event was handled)."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka.admin import AdminClient, ConfigResource
from mlops.bus import KafkaBus
from mlops.online_store import MemoryOnlineStore
from mlops.settings import KafkaSettings

from services.features.edge import build
from services.features.settings import FeaturesSettings


def test_the_changelog_is_made_with_the_partitions_of_events_and_compacted(
        kafka_settings_factory: Callable[..., KafkaSettings]) -> None:
    kafka = kafka_settings_factory(partitions=4)
    settings = FeaturesSettings(app_id=f"{kafka.topic_prefix}features")
    features = build(settings, KafkaBus(kafka), MemoryOnlineStore())
    name = features.changelog.name
    assert name == f"{kafka.topic_prefix}features-views-changelog"  # faust's own name for the table's changelog
    features.ensure_changelog(kafka)
    features.ensure_changelog(kafka)  # again, as a restarted replica does: the topic is there already
    admin = AdminClient(kafka.client_config())
    try:
        assert len(admin.list_topics(name, timeout=30).topics[name].partitions) == 4
        [configs] = admin.describe_configs([ConfigResource("topic", name)]).values()
        config = configs.result()
        assert config["cleanup.policy"].value == "compact"
        assert config["max.compaction.lag.ms"].value == str(round(settings.changelog_compaction_lag_s * 1000))
    finally:
        admin.delete_topics([name])
