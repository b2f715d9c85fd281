"""The registry's errors. Every one leaves the state unchanged; the gRPC edge maps each class to a status code in
one table (`services.registry.edge.grpc_api.STATUS`)."""

from __future__ import annotations

from mlops.errors import MlopsError

__all__ = [
    "AlreadyChampion", "ArtifactRejected", "CommandConflict", "DuplicateCandidate", "GateRejected", "InvalidCandidate",
    "InvalidRequest", "ModelNotFound", "NoChampion", "NoDefinitions", "NotPromotable", "NothingToRollBack",
    "RegistryError", "VersionNotFound",
]


class RegistryError(MlopsError):
    """Root of the registry's errors: a command that raises one has persisted and changed nothing."""


class ModelNotFound(RegistryError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"unknown model {name!r}")


class VersionNotFound(RegistryError):
    def __init__(self, name: str, version: str):
        self.name, self.version = name, version
        super().__init__(f"model {name!r} has no version {version!r}")


class InvalidCandidate(RegistryError):
    """A candidate the gate cannot judge: its identity or holdout is malformed."""

    def __init__(self, detail: str):
        super().__init__(f"invalid candidate: {detail}")


class NoDefinitions(RegistryError):
    """No definitions revision is in force yet, so no candidate can be judged (nothing is lost: it waits)."""

    def __init__(self) -> None:
        super().__init__("no definitions revision is in force yet; apply definitions first (mlops apply FILE)")


class InvalidRequest(RegistryError):
    """An API call left out a field it needs."""

    def __init__(self, field: str):
        self.field = field
        super().__init__(f"{field} is required")


class DuplicateCandidate(RegistryError):
    def __init__(self, name: str, version: str, what: str):
        self.name, self.version = name, version
        # the same candidate id is a redelivery; the same bytes under a new id is a retrain that changed nothing
        self.same_candidate = what.startswith("candidate id")
        super().__init__(f"duplicate candidate for {name!r}: {what} already registered as version {version}")


class ArtifactRejected(RegistryError):
    """The artifact is missing from model.artifacts or its bytes do not match its sha256."""

    def __init__(self, sha256: str, detail: str):
        self.sha256 = sha256
        super().__init__(f"artifact {sha256} refused: {detail}")


class NotPromotable(RegistryError):
    """The requested champion change cannot happen in the model's current state."""


class AlreadyChampion(NotPromotable):
    def __init__(self, name: str, version: str):
        self.name, self.version = name, version
        super().__init__(f"{name!r} v{version} is already the champion")


class GateRejected(NotPromotable):
    """A manual promotion of a version the gate rejected, without the explicit override."""

    def __init__(self, name: str, version: str, gate_reason: str):
        self.name, self.version = name, version
        super().__init__(f"{name!r} v{version} was rejected by the gate ({gate_reason}); promote it with "
                         "override_gate (mlops models promote --override-gate) to overrule the gate")


class CommandConflict(RegistryError):
    """A command id already used by a different command (another model, version or action)."""

    def __init__(self, command_id: str, first: str):
        self.command_id = command_id
        super().__init__(f"command id {command_id!r} was already used for {first}; use a new id for a new command")


class NoChampion(NotPromotable):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"model {name!r} has no champion; name a version")


class NothingToRollBack(RegistryError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"model {name!r} has no earlier champion to roll back to")
