"""Who may do what on the secure stack (`mlops stack up --secure`): Kafka ACLs, enforced by KRaft's
StandardAuthorizer (configured in stack/secure.py; nothing is allowed that no ACL allows).

    super users      broker, controller (the nodes), admin (`mlops apply`, `mlops register`, the stack's tools)
    everyone else    mlops (any client of `mlops stack env`) and one user per service: anything on topics, consumer
                     groups and transactional ids, and the cluster's describe / create / idempotent write —
    except on the protected topics, where writing, deleting and altering are denied to all but their owner (a
    DENY wins over any ALLOW):

        definitions       admin only             what every service follows (feature views, models)
        model.promoted    registry (and admin)   what inference serves
        model.artifacts   trainer (and admin)    the model bytes themselves

Topic ACLs name topics literally, so the protected topics are protected per topic prefix: the stack grants them
for the prefix of its environment (`MLOPS_KAFKA_TOPIC_PREFIX`) and `Stack.protect_topics(prefix)` for another one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.topics import DEFINITIONS, MODEL_ARTIFACTS, MODEL_PROMOTED

from mlops_tools.stack.install import StackError
from mlops_tools.stack.secure import ADMIN_USER, CLIENT_USER, SERVICE_USERS

if TYPE_CHECKING:
    from confluent_kafka.admin import AclBinding
    from mlops.settings import KafkaSettings

__all__ = ["LIMITED_USERS", "PROTECTED", "base_bindings", "create", "ensure_users", "protect_bindings"]

LIMITED_USERS = (CLIENT_USER, *SERVICE_USERS)  # every user that is not a super user
# protected topic → the users besides the admin that may write it
PROTECTED: dict[str, tuple[str, ...]] = {
    DEFINITIONS.name: (),
    MODEL_PROMOTED.name: ("registry",),
    MODEL_ARTIFACTS.name: ("trainer",),
}
assert ADMIN_USER not in LIMITED_USERS


def _binding(kind: str, name: str, user: str, operation: str, allow: bool = True) -> AclBinding:
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    return AclBinding(ResourceType[kind], name, ResourcePatternType.LITERAL, f"User:{user}", "*",
                      AclOperation[operation], AclPermissionType.ALLOW if allow else AclPermissionType.DENY)


def base_bindings() -> list[AclBinding]:
    """What every limited user may do (topic prefix independent)."""
    out = []
    for user in LIMITED_USERS:
        out += [_binding(kind, "*", user, "ALL") for kind in ("TOPIC", "GROUP", "TRANSACTIONAL_ID")]
        out += [_binding("BROKER", "kafka-cluster", user, op)
                for op in ("DESCRIBE", "DESCRIBE_CONFIGS", "CREATE", "IDEMPOTENT_WRITE")]
    return out


def protect_bindings(prefix: str) -> list[AclBinding]:
    """The DENY bindings that keep the protected topics of `prefix` to their owners."""
    return [_binding("TOPIC", f"{prefix}{topic}", user, op, allow=False)
            for topic, owners in PROTECTED.items()
            for user in LIMITED_USERS if user not in owners
            for op in ("WRITE", "DELETE", "ALTER", "ALTER_CONFIGS")]


def create(settings: KafkaSettings, bindings: list[AclBinding], timeout: float = 30.0) -> None:
    """Create `bindings` (idempotent: an existing binding is left as it is) as the super user of `settings`."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.client_config())
    failed = []
    for binding, future in admin.create_acls(bindings, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as exc:  # noqa: BLE001 (collected and raised as one StackError below)
            failed.append(f"{binding}: {exc}")
    if failed:
        raise StackError(f"creating {len(failed)} of {len(bindings)} Kafka ACLs failed: {failed[0]}")


def ensure_users(settings: KafkaSettings, passwords: dict[str, str], timeout: float = 30.0) -> list[str]:
    """Create the SCRAM users of `passwords` that the cluster lacks (a run dir made before they existed), as the
    super user of `settings`; returns the users created."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient(settings.client_config())
    known = set()
    for user, future in admin.describe_user_scram_credentials(list(passwords), request_timeout=timeout).items():
        try:
            future.result(timeout)
            known.add(user)
        except Exception:  # noqa: BLE001 (RESOURCE_NOT_FOUND: no credential for this user yet)
            pass
    missing = [user for user in passwords if user not in known]
    if not missing:
        return []
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upserts = [UserScramCredentialUpsertion(user, info, passwords[user].encode()) for user in missing]
    for user, future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as exc:
            raise StackError(f"creating the Kafka user {user!r} failed: {exc}") from exc
    return missing
