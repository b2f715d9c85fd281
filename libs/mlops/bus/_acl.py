"""Kafka authorization as plain values: `Acl` bindings and SCRAM users, created through the admin API by a
principal allowed to (a super user). What to grant is the caller's (the local stack: mlops_tools/stack/acls.py)."""

from __future__ import annotations

from dataclasses import dataclass

from mlops.bus._record import BusError
from mlops.settings import KafkaSettings

__all__ = ["Acl", "create_acls", "ensure_scram_users"]

_RESOURCES = {"topic": "TOPIC", "group": "GROUP", "transactional_id": "TRANSACTIONAL_ID", "cluster": "BROKER"}


@dataclass(frozen=True)
class Acl:
    """One ACL binding: `user` may (`allow`) or may not do `operation` (Kafka's name: READ, WRITE, ALL, …) on the
    `resource` ("topic", "group", "transactional_id", "cluster") named `name` literally ("*": every one)."""

    user: str
    resource: str
    name: str
    operation: str
    allow: bool = True

    def __post_init__(self) -> None:
        from confluent_kafka.admin import AclOperation

        if self.resource not in _RESOURCES:
            raise ValueError(f"Acl.resource must be one of {sorted(_RESOURCES)} (got {self.resource!r})")
        if self.operation not in AclOperation.__members__:
            raise ValueError(f"Acl.operation must be a Kafka ACL operation (got {self.operation!r})")

    def binding(self):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

        name = "kafka-cluster" if self.resource == "cluster" else self.name
        return AclBinding(ResourceType[_RESOURCES[self.resource]], name, ResourcePatternType.LITERAL,
                          f"User:{self.user}", "*", AclOperation[self.operation],
                          AclPermissionType.ALLOW if self.allow else AclPermissionType.DENY)


def create_acls(settings: KafkaSettings, acls: list[Acl], timeout: float = 30.0) -> None:
    """Create `acls` as the user of `settings` (idempotent: an existing binding stays as it is)."""
    from confluent_kafka.admin import AdminClient

    if not acls:
        return
    admin = AdminClient(settings.client_config())
    failed = []
    for binding, future in admin.create_acls([acl.binding() for acl in acls], request_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as exc:  # collected: one BusError names the first
            failed.append(f"{binding}: {exc}")
    if failed:
        raise BusError(f"creating {len(failed)} of {len(acls)} Kafka ACLs as {settings.sasl_username!r} failed: "
                       f"{failed[0]}")


def ensure_scram_users(settings: KafkaSettings, passwords: dict[str, str], mechanism: str = "SCRAM-SHA-512",
                       timeout: float = 30.0) -> list[str]:
    """Create the SCRAM users of `passwords` the cluster lacks, as the user of `settings`; the users created."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient(settings.client_config())
    known = set()
    for user, future in admin.describe_user_scram_credentials(list(passwords), request_timeout=timeout).items():
        try:
            future.result(timeout)
            known.add(user)
        except Exception:  # RESOURCE_NOT_FOUND: no credential for this user yet
            pass
    missing = [user for user in passwords if user not in known]
    if not missing:
        return []
    info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], 4096)
    upserts = [UserScramCredentialUpsertion(user, info, passwords[user].encode()) for user in missing]
    for user, future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as exc:
            raise BusError(f"creating the Kafka user {user!r} failed: {exc}") from exc
    return missing
