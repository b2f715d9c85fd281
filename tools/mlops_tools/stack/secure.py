"""`mlops stack up --secure`: the broker's SASL_SSL listener, with certificates and credentials made here.

Everything is generated on the first secure start and kept in `<run dir>/kafka-secure/` (mode 0700; files 0600):
a CA, the brokers' certificate (PKCS#12 keystore; SAN localhost and the stack's host), a client certificate for
mutual TLS, and random passwords for the SCRAM/PLAIN users. Nothing of it is printed or committed; clients get
file paths (`MLOPS_KAFKA_SASL_PASSWORD_FILE`, `MLOPS_KAFKA_SSL_*_FILE`), never the secret itself.

Users: `admin` (a super user: `mlops apply`, `mlops register`, the stack's tools), one per service (`ingest` …
`monitor`), and `mlops` (any other client, e.g. a shell after `mlops stack env`). The broker runs KRaft's
StandardAuthorizer; what each user may do is in stack/acls.py.

    clients ──SASL_SSL, SCRAM-SHA-512 (a user above) + client certificate──► broker listener
    broker ──SASL_SSL, SCRAM-SHA-512 (user `broker`)──► broker           (replication)
    broker ──SASL_SSL, PLAIN (user `controller`)──► controller listener   (KRaft does not take SCRAM there: SCRAM
                                                                           users live in the metadata it serves)
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ADMIN_USER", "BROKER_USER", "CLIENT_USER", "CLIENT_USERS", "CONTROLLER_USER", "MECHANISM", "SERVICE_USERS",
           "SecureMaterial"]

MECHANISM = "SCRAM-SHA-512"
CLIENT_USER, BROKER_USER, CONTROLLER_USER, ADMIN_USER = "mlops", "broker", "controller", "admin"
SERVICE_USERS = ("ingest", "features", "trainer", "registry", "inference", "monitor")  # a user per service
_VALID_DAYS = 365


@dataclass(frozen=True)
class SecureMaterial:
    """The files of a secure stack, under `folder`."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.p12"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"

    def password_file(self, user: str) -> Path:
        return self.folder / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    @property
    def client_properties(self) -> Path:
        """The client config of the broker's own Java tools (`--command-config`)."""
        return self.folder / "client.properties"

    def exists(self) -> bool:
        return all(p.exists() for p in (self.ca, self.keystore, self.client_cert, self.client_key,
                                        self.client_properties, *map(self.password_file, _USERS)))

    # -- generation --------------------------------------------------------------------------------------------------
    def create(self, host: str) -> SecureMaterial:
        """Generate what is missing (idempotent: an existing CA and passwords are kept, the broker's SCRAM users
        were formatted with them)."""
        if self.exists():
            return self
        from cryptography.hazmat.primitives.asymmetric import ec

        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        for user in _USERS:
            if not self.password_file(user).exists():
                _write_secret(self.password_file(user), secrets.token_urlsafe(24).encode())
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _certificate("mlops local stack CA", ca_key, None, ca_key, ca=True)
        broker_key = ec.generate_private_key(ec.SECP256R1())
        broker_cert = _certificate("mlops broker", broker_key, ca_cert, ca_key, hosts=("localhost", host))
        client_key = ec.generate_private_key(ec.SECP256R1())
        client_cert = _certificate(CLIENT_USER, client_key, ca_cert, ca_key)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        pem = serialization.Encoding.PEM
        _write_secret(self.ca, ca_cert.public_bytes(pem))
        _write_secret(self.client_cert, client_cert.public_bytes(pem))
        _write_secret(self.client_key, client_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                                serialization.NoEncryption()))
        _write_secret(self.keystore, pkcs12.serialize_key_and_certificates(
            b"broker", broker_key, broker_cert, [ca_cert],
            serialization.BestAvailableEncryption(self._keystore_password().encode())))
        _write_secret(self.client_properties, "\n".join([
            "security.protocol=SASL_SSL",
            f"sasl.mechanism={MECHANISM}",
            _jaas("scram.ScramLoginModule", CLIENT_USER, self.password(CLIENT_USER), prefix="sasl.jaas.config="),
            "ssl.truststore.type=PEM", f"ssl.truststore.location={self.ca}",
            "ssl.keystore.type=PKCS12", f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={self._keystore_password()}", "",
        ]).encode())
        return self

    def _keystore_password(self) -> str:
        return self.password(BROKER_USER)

    def redact(self, text: str) -> str:
        """`text` without this stack's passwords (a tool's error may echo its arguments)."""
        for user in _USERS:
            if self.password_file(user).exists():
                text = text.replace(self.password(user), "[hidden]")
        return text

    # -- what the broker and its tools are given ---------------------------------------------------------------------
    def scram_users(self) -> list[str]:
        """`kafka-storage format` arguments that create the SCRAM users in the cluster's first metadata."""
        return [arg for user in _SCRAM_USERS
                for arg in ("--add-scram", f"{MECHANISM}=[name={user},password={self.password(user)}]")]

    def broker_properties(self) -> list[str]:
        """server.properties lines of a secure node (its listeners are named SASL_SSL and CONTROLLER)."""
        controller = self.password(CONTROLLER_USER)
        return [
            "listener.security.protocol.map=CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            "sasl.mechanism.controller.protocol=PLAIN",
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms={MECHANISM}",
            _jaas("scram.ScramLoginModule", BROKER_USER, self.password(BROKER_USER),
                  prefix=f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config="),
            "listener.name.sasl_ssl.ssl.client.auth=required",  # mutual TLS: a client certificate of our CA
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            _jaas("plain.PlainLoginModule", CONTROLLER_USER, controller,
                  prefix="listener.name.controller.plain.sasl.jaas.config=",
                  extra=f' user_{CONTROLLER_USER}="{controller}"'),
            "ssl.keystore.type=PKCS12", f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={self._keystore_password()}",
            f"ssl.key.password={self._keystore_password()}",
            "ssl.truststore.type=PEM", f"ssl.truststore.location={self.ca}",
            # ACLs (stack/acls.py) decide what each user may do; the nodes themselves and the admin may do anything
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=" + ";".join(f"User:{user}" for user in (BROKER_USER, CONTROLLER_USER, ADMIN_USER)),
        ]

    def client_settings(self, user: str = CLIENT_USER) -> dict[str, object]:
        """KafkaSettings fields of a client of this stack acting as `user`: files only, no secret in the values."""
        if user not in CLIENT_USERS:
            raise ValueError(f"no Kafka user {user!r} on the secure stack (one of {', '.join(CLIENT_USERS)})")
        return self._settings_as(user)

    def node_settings(self) -> dict[str, object]:
        """KafkaSettings fields of the nodes' own user (a super user that exists from the format on): what the
        stack sets up users and ACLs with."""
        return self._settings_as(BROKER_USER)

    def client_passwords(self) -> dict[str, str]:
        return {user: self.password(user) for user in CLIENT_USERS}

    def _settings_as(self, user: str) -> dict[str, object]:
        return {
            "security_protocol": "SASL_SSL", "sasl_mechanism": MECHANISM, "sasl_username": user,
            "sasl_password_file": self.password_file(user), "ssl_ca_file": self.ca,
            "ssl_cert_file": self.client_cert, "ssl_key_file": self.client_key,
        }


CLIENT_USERS = (CLIENT_USER, ADMIN_USER, *SERVICE_USERS)  # who a client may act as
_SCRAM_USERS = (BROKER_USER, *CLIENT_USERS)
_USERS = (*_SCRAM_USERS, CONTROLLER_USER)


def _jaas(module: str, user: str, password: str, prefix: str, extra: str = "") -> str:
    return (f"{prefix}org.apache.kafka.common.security.{module} required "
            f'username="{user}" password="{password}"{extra};')


def _write_secret(path: Path, data: bytes) -> None:
    """Write `data` readable by the owner only (created 0600: never world-readable, not even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _certificate(name: str, key: object, issuer: object, issuer_key: object, *, ca: bool = False,
                 hosts: tuple[str, ...] = ()) -> object:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer is not None else subject)  # type: ignore[attr-defined]
               .public_key(key.public_key())  # type: ignore[attr-defined]
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        names: list[x509.GeneralName] = []
        for host in dict.fromkeys(hosts):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
