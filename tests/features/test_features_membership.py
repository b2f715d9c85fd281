"""Static group membership of features: the launchers (`mlops up`, the demo, chaos) name each replica's group
instance after its process, host and run folder, the manifests after the pod or container (`{hostname}`); a
restarted replica rejoins as the same member, so its partitions come back without a wait for the dead member's
session timeout. The broker's own view of the group is the witness."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from mlops.settings import KafkaSettings, RedisSettings
from mlops_tools.cli.services_cmd import replica_env, service_process, start_service
from testkit import wait_until

from services.features.settings import FeaturesSettings

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = "MLOPS_FEATURES_GROUP_INSTANCE_ID"


def test_hostname_in_the_instance_id_is_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INSTANCE, "{hostname}-a")
    assert FeaturesSettings().group_instance_id == f"{socket.gethostname()}-a"
    monkeypatch.setenv(INSTANCE, "")
    assert FeaturesSettings().group_instance_id == ""  # dynamic membership


def test_each_launched_replica_has_its_own_stable_instance_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTANCE, raising=False)
    one, again = (replica_env("features", service_process("features", tmp_path / "a")) for _ in range(2))
    assert one == again and one[INSTANCE].startswith("svc-features-{hostname}-")
    other_folder = replica_env("features", service_process("features", tmp_path / "b"))
    second = replica_env("features", service_process("features-2", tmp_path / "a"))
    assert len({one[INSTANCE], other_folder[INSTANCE], second[INSTANCE]}) == 3
    assert replica_env("ingest", service_process("ingest", tmp_path / "a")) == {}
    monkeypatch.setenv(INSTANCE, "mine")  # the operator's setting wins
    assert replica_env("features", service_process("features", tmp_path / "a")) == {}


def _members(admin: AdminClient, group: str) -> list:
    [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
    return list(future.result().members)


@pytest.mark.integration
def test_a_killed_replica_rejoins_as_the_same_static_member(
    kafka_settings: KafkaSettings, redis_settings: RedisSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INSTANCE, raising=False)
    group = f"{kafka_settings.topic_prefix}features"
    env = {
        "MLOPS_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "MLOPS_REDIS_URL": redis_settings.url,
        "MLOPS_REDIS_KEY_PREFIX": redis_settings.key_prefix,
        "MLOPS_FEATURES_APP_ID": group,
        "MLOPS_FEATURES_DATA_DIR": str(tmp_path / "faust"),
        "MLOPS_TELEMETRY_METRICS_PORT": "0",
        "MLOPS_TELEMETRY_LOG_FORMAT": "text",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'libs'}",
    }
    expected = replica_env("features", service_process("features", tmp_path))[INSTANCE].replace(
        "{hostname}", socket.gethostname())
    admin = AdminClient(kafka_settings.client_config())
    proc, _ = start_service("features", env, run_dir=tmp_path)
    try:
        def joined_with_partitions() -> list:
            members = _members(admin, group)
            return [m for m in members if m.assignment.topic_partitions] and members

        wait_until(joined_with_partitions, 120, 0.5, lambda: proc.log_tail(30))
        [member] = _members(admin, group)
        assert member.group_instance_id == expected
        first_member_id = member.member_id

        os.killpg(proc.pid(), signal.SIGKILL)  # a crash: no LeaveGroup
        wait_until(lambda: not proc.running(), 10)
        proc, _ = start_service("features", env, run_dir=tmp_path)

        def rejoined() -> list:
            members = _members(admin, group)
            return [m for m in members if m.member_id != first_member_id and m.assignment.topic_partitions]

        wait_until(rejoined, 120, 0.5, lambda: proc.log_tail(30))
        # the restart took the dead member's place: one member of the same instance, not a second one beside it
        [member] = _members(admin, group)
        assert member.group_instance_id == expected and member.member_id != first_member_id
    finally:
        proc.stop()
