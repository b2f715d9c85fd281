"""Kafka security settings without a broker: what each client is given, what is refused, what is never shown; the
broker configs the stack writes for `--secure` and `--brokers 3`."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from certs import make_ca, make_signed
from confluent_kafka import KafkaError
from mlops.bus import BusError
from mlops.bus._kafka import AuthFailures, transient
from mlops.settings import KafkaConfigError, KafkaSettings
from mlops_tools.stack import Stack, StackSettings
from mlops_tools.stack.nodes import Layout, server_properties
from mlops_tools.stack.secure import CLIENT_USER, SecureMaterial
from pydantic import SecretStr, ValidationError

from services.features.edge import broker_credentials

SECRET = "s3cret-never-shown"


def _tls_files(tmp_path: Path) -> dict[str, Path]:
    ca = make_ca(tmp_path)
    client = make_signed(tmp_path, "client", ca, server=False)
    return {"ssl_ca_file": ca[0].cert, "ssl_cert_file": client.cert, "ssl_key_file": client.key}


def _sasl_ssl(tmp_path: Path, **more: object) -> KafkaSettings:
    fields: dict[str, object] = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                 "sasl_username": "svc", "sasl_password": SecretStr(SECRET)}
    return KafkaSettings(**(fields | _tls_files(tmp_path) | more))  # type: ignore[arg-type]


def test_every_confluent_client_gets_sasl_and_tls_from_one_place(tmp_path: Path) -> None:
    settings = _sasl_ssl(tmp_path)
    conf = settings.client_config()
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "svc" and conf["sasl.password"] == SECRET
    assert conf["ssl.ca.location"] == str(settings.ssl_ca_file)
    assert conf["ssl.certificate.location"] == str(settings.ssl_cert_file)
    assert conf["ssl.key.location"] == str(settings.ssl_key_file)
    plain = KafkaSettings().client_config()
    assert not any(key.startswith(("sasl.", "ssl.")) for key in plain)


def test_the_password_file_wins_and_is_passed_on_as_a_path(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    settings = _sasl_ssl(tmp_path, sasl_password=None, sasl_password_file=secret_file)
    assert settings.client_config()["sasl.password"] == SECRET
    env = settings.environ()
    assert env["MLOPS_KAFKA_SASL_PASSWORD_FILE"] == str(secret_file) and "MLOPS_KAFKA_SASL_PASSWORD" not in env
    assert SECRET not in "".join(env.values())
    assert KafkaSettings(**{k[len("MLOPS_KAFKA_"):].lower(): v for k, v in env.items()}) == settings


def test_faust_gets_the_same_credentials_and_tls_context(tmp_path: Path) -> None:
    creds = broker_credentials(_sasl_ssl(tmp_path))
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("svc", SECRET, "SCRAM-SHA-512")
    assert creds.protocol.value == "SASL_SSL" and isinstance(creds.ssl_context, ssl.SSLContext)
    assert creds.ssl_context.verify_mode == ssl.CERT_REQUIRED and creds.ssl_context.check_hostname
    assert SECRET not in repr(creds)
    tls_only = broker_credentials(KafkaSettings(security_protocol="SSL", **_tls_files(tmp_path)))  # type: ignore
    assert isinstance(tls_only, faust.SSLCredentials)
    sasl_plain = broker_credentials(KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                                  sasl_username="u", sasl_password=SecretStr("p")))
    assert isinstance(sasl_plain, faust.SASLCredentials) and sasl_plain.protocol.value == "SASL_PLAINTEXT"
    assert broker_credentials(KafkaSettings()) is None


@pytest.mark.parametrize("fields, names", [
    ({"ssl_cert_file": "/x.pem"}, "MLOPS_KAFKA_SSL_KEY_FILE"),
    ({"security_protocol": "TLS"}, "security_protocol must be one of"),
])
def test_settings_that_cannot_work_are_refused_naming_the_variable(fields: dict[str, str], names: str) -> None:
    with pytest.raises(ValidationError, match=names):
        KafkaSettings(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("fields, names", [
    ({"security_protocol": "SASL_SSL"}, "MLOPS_KAFKA_SASL_MECHANISM"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
     "MLOPS_KAFKA_SASL_PASSWORD"),
])
def test_sasl_without_credentials_is_refused_when_a_client_is_made(fields: dict[str, str], names: str) -> None:
    settings = KafkaSettings(**fields)  # type: ignore[arg-type]  # a ConfigMap alone: the Secret adds the rest
    with pytest.raises(KafkaConfigError, match=names):
        settings.client_config()
    with pytest.raises(KafkaConfigError, match=names):
        broker_credentials(settings)


def test_a_password_is_never_shown(tmp_path: Path) -> None:
    settings = _sasl_ssl(tmp_path)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    with pytest.raises(ValidationError) as info:  # an error of the settings shows no input (which holds it)
        KafkaSettings(ssl_cert_file=Path("/x"), sasl_password=SecretStr(SECRET))
    with pytest.raises(ValidationError) as raw_info:
        KafkaSettings(ssl_cert_file=Path("/x"), sasl_password=SECRET)  # type: ignore[arg-type]
    assert SECRET not in str(info.value) and SECRET not in str(raw_info.value)


def test_a_missing_tls_file_is_named(tmp_path: Path) -> None:
    settings = _sasl_ssl(tmp_path).model_copy(update={"ssl_ca_file": tmp_path / "nope.pem"})
    with pytest.raises(ValueError, match="ssl.ca.location: .*nope.pem is not a readable file"):
        settings.client_config()


def test_refusals_become_one_clear_error_and_failovers_are_transient() -> None:
    refused = AuthFailures()
    refused(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    refused.raise_if_any(KafkaSettings())  # nothing to do with credentials: not raised
    refused(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: invalid credentials"))
    with pytest.raises(BusError, match="refused SASL user 'u' \\(PLAIN\\) over SASL_SSL: SASL authentication"):
        refused.raise_if_any(KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u",
                                           sasl_password=SecretStr("p")))
    assert transient(KafkaError(KafkaError._TRANSPORT, "Failed to fetch committed offsets"))
    assert transient(KafkaError(KafkaError.NOT_COORDINATOR))
    assert not transient(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert not transient(KafkaError(KafkaError._TRANSPORT, fatal=True))


def test_secure_material_and_broker_config(tmp_path: Path) -> None:
    material = SecureMaterial(tmp_path / "secure").create("127.0.0.1")
    assert material.exists() and (material.folder.stat().st_mode & 0o077) == 0
    password = material.password(CLIENT_USER)
    assert len(password) >= 24
    assert SecureMaterial(material.folder).create("127.0.0.1").password(CLIENT_USER) == password  # kept
    stack = Stack(StackSettings(run_dir=tmp_path / "run", kafka_port=19092, controller_port=19093), secure=True)
    node = stack.nodes[0]
    text = server_properties(node, stack.nodes, stack.layout, 1024, material)
    assert "listeners=SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in text
    assert "listener.name.sasl_ssl.ssl.client.auth=required" in text
    assert "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512" in text
    assert "min.insync.replicas=1" in text and "controller.quorum.bootstrap.servers=" in text
    assert material.redact(f"failed with {password}") == "failed with [hidden]"
    client = stack.kafka_settings()
    assert client.sasl_password is None and client.sasl_password_file is not None
    assert password not in "".join(client.environ().values())


def test_three_nodes_derive_their_ports_and_replicate(tmp_path: Path) -> None:
    stack = Stack(StackSettings(run_dir=tmp_path, kafka_port=19092, controller_port=19093, node_port_step=100),
                  brokers=3)
    assert [(n.name, n.port, n.controller_port) for n in stack.nodes] == [
        ("kafka", 19092, 19093), ("kafka-2", 19192, 19193), ("kafka-3", 19292, 19293)]
    assert stack.kafka_settings().bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"
    assert stack.kafka_settings().replication_factor == 3
    text = server_properties(stack.nodes[2], stack.nodes, stack.layout, 1024, None)
    assert "node.id=3" in text
    assert "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293" in text
    for line in ("default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3",
                 "transaction.state.log.min.isr=2"):
        assert line in text.splitlines()
    assert (Layout(1).replication_factor, Layout(1).min_insync_replicas) == (1, 1)
    Layout(3, secure=True).record(tmp_path)
    assert Stack(StackSettings(run_dir=tmp_path)).layout == Layout(3, True)  # status/down find every node
