"""The secure stack's users and ACLs as plain values (no broker): who may write the protected topics, what the
nodes are configured with, which user each service and `mlops stack env --user` get. The broker enforcing them is
tests/security/test_kafka_acls.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlops.bus import Acl
from mlops_tools.stack import Stack, StackSettings
from mlops_tools.stack.acls import LIMITED_USERS, base_acls, protect_acls
from mlops_tools.stack.secure import ADMIN_USER, BROKER_USER, CLIENT_USER, SERVICE_USERS, SecureMaterial


def _denied_writers(prefix: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for acl in protect_acls(prefix):
        assert not acl.allow and acl.resource == "topic"
        if acl.operation == "WRITE":
            out.setdefault(acl.name, set()).add(acl.user)
    return out


def test_only_the_owners_may_write_the_protected_topics_of_a_prefix() -> None:
    everyone = set(LIMITED_USERS)
    assert _denied_writers("p.") == {
        "p.definitions": everyone,  # the admin only (a super user: no ACL needed, none can deny it)
        "p.model.promoted": everyone - {"registry"},
        "p.model.artifacts": everyone - {"trainer"},
    }
    assert ADMIN_USER not in everyone and BROKER_USER not in everyone
    assert {acl.operation for acl in protect_acls("")} == {"WRITE", "DELETE", "ALTER", "ALTER_CONFIGS"}


def test_every_limited_user_may_use_topics_and_groups() -> None:
    acls = base_acls()
    assert all(acl.allow for acl in acls)
    for user in (CLIENT_USER, *SERVICE_USERS):
        assert Acl(user, "topic", "*", "ALL") in acls and Acl(user, "group", "*", "ALL") in acls
        assert Acl(user, "cluster", "kafka-cluster", "IDEMPOTENT_WRITE") in acls
    # nobody limited may change ACLs or the cluster's configuration
    assert not [acl for acl in acls if acl.resource == "cluster" and acl.operation in ("ALTER", "ALTER_CONFIGS", "ALL")]


def test_an_acl_names_a_known_resource_and_operation() -> None:
    from confluent_kafka.admin import AclOperation, AclPermissionType, ResourceType

    binding = Acl("registry", "topic", "p.model.promoted", "WRITE", allow=False).binding()
    assert (binding.restype, binding.name, binding.principal) == (ResourceType.TOPIC, "p.model.promoted",
                                                                  "User:registry")
    assert binding.operation == AclOperation.WRITE and binding.permission_type == AclPermissionType.DENY
    with pytest.raises(ValueError, match="Acl.resource"):
        Acl("x", "topics", "*", "ALL")
    with pytest.raises(ValueError, match="Acl.operation"):
        Acl("x", "topic", "*", "SCRIBBLE")


def test_the_nodes_run_the_authorizer_with_the_admin_as_a_super_user(tmp_path: Path) -> None:
    secure = SecureMaterial(tmp_path / "kafka-secure").create("127.0.0.1")
    props = secure.broker_properties()
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in props
    assert "super.users=User:broker;User:controller;User:admin" in props
    formatted = " ".join(secure.scram_users())
    for user in (ADMIN_USER, CLIENT_USER, *SERVICE_USERS):
        assert f"name={user}," in formatted and secure.password_file(user).stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="no Kafka user 'broker'"):
        secure.client_settings(BROKER_USER)  # the nodes' own user is not handed to clients


def test_each_service_acts_as_its_own_user_on_a_secure_stack(tmp_path: Path) -> None:
    plain = Stack(StackSettings(run_dir=tmp_path / "plain"))
    assert plain.service_user_env("registry") == {}
    secure = Stack(StackSettings(run_dir=tmp_path / "secure"), secure=True)
    env = secure.service_user_env("registry")
    assert env["MLOPS_KAFKA_SASL_USERNAME"] == "registry"
    assert env["MLOPS_KAFKA_SASL_PASSWORD_FILE"].endswith("registry.password")
    assert secure.service_user_env("console") == {}  # not a Kafka client of its own
    assert secure.kafka_settings(ADMIN_USER).sasl_username == ADMIN_USER


def test_mlops_up_gives_the_services_their_own_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlops_tools.cli import services_cmd

    monkeypatch.setenv("MLOPS_STACK_RUN_DIR", str(tmp_path))
    Stack(StackSettings(run_dir=tmp_path), secure=True).layout.record(tmp_path)
    shared = {"MLOPS_KAFKA_SASL_USERNAME": CLIENT_USER, "MLOPS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}
    env = services_cmd._own_kafka_user("trainer", shared)
    assert env is not None and env["MLOPS_KAFKA_SASL_USERNAME"] == "trainer"
    assert env["MLOPS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    chosen = {"MLOPS_KAFKA_SASL_USERNAME": "someone"}  # a user the operator chose is kept
    assert services_cmd._own_kafka_user("trainer", chosen) == chosen


def test_mlops_apply_names_the_refused_permission() -> None:
    from mlops.settings import KafkaSettings
    from mlops_tools.cli.definitions_cmd import _refused

    settings = KafkaSettings(topic_prefix="t.", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                             sasl_username="mlops", sasl_password="x")  # type: ignore[arg-type]
    error = RuntimeError('delivery failed: t.definitions: KafkaError{code=TOPIC_AUTHORIZATION_FAILED,val=29}')
    message = _refused(error, settings)
    assert message is not None and "SASL user 'mlops' permission to WRITE topic 't.definitions'" in message
    assert "admin" in message
    assert _refused(RuntimeError("delivery failed: timed out"), settings) is None


def test_mlops_stack_env_prints_the_chosen_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_tools.cli import main

    monkeypatch.setenv("MLOPS_STACK_RUN_DIR", str(tmp_path))
    Stack(StackSettings(run_dir=tmp_path), secure=True).layout.record(tmp_path)
    assert main(["stack", "env", "--user", ADMIN_USER]) == 0
    out = capsys.readouterr().out
    assert "export MLOPS_KAFKA_SASL_USERNAME=admin" in out
    assert f"export MLOPS_KAFKA_SASL_PASSWORD_FILE={tmp_path / 'kafka-secure' / 'admin.password'}" in out
    assert main(["stack", "env"]) == 0 and "MLOPS_KAFKA_SASL_USERNAME=mlops" in capsys.readouterr().out
