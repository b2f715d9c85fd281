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

from mlops.bus import Acl
from mlops.topics import DEFINITIONS, MODEL_ARTIFACTS, MODEL_PROMOTED

from mlops_tools.stack.secure import ADMIN_USER, CLIENT_USER, SERVICE_USERS

__all__ = ["LIMITED_USERS", "PROTECTED", "base_acls", "protect_acls"]

LIMITED_USERS = (CLIENT_USER, *SERVICE_USERS)  # every user that is not a super user
# protected topic → the users besides the admin that may write it
PROTECTED: dict[str, tuple[str, ...]] = {
    DEFINITIONS.name: (),
    MODEL_PROMOTED.name: ("registry",),
    MODEL_ARTIFACTS.name: ("trainer",),
}
assert ADMIN_USER not in LIMITED_USERS


def base_acls() -> list[Acl]:
    """What every limited user may do (topic prefix independent)."""
    out = []
    for user in LIMITED_USERS:
        out += [Acl(user, kind, "*", "ALL") for kind in ("topic", "group", "transactional_id")]
        out += [Acl(user, "cluster", "kafka-cluster", op)
                for op in ("DESCRIBE", "DESCRIBE_CONFIGS", "CREATE", "IDEMPOTENT_WRITE")]
    return out


def protect_acls(prefix: str) -> list[Acl]:
    """The DENY bindings that keep the protected topics of `prefix` to their owners."""
    return [Acl(user, "topic", f"{prefix}{topic}", op, allow=False)
            for topic, owners in PROTECTED.items()
            for user in LIMITED_USERS if user not in owners
            for op in ("WRITE", "DELETE", "ALTER", "ALTER_CONFIGS")]
