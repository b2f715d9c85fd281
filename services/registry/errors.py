"""The registry's exceptions. The gRPC edge maps them to status codes in one table (grpc_api.STATUS)."""

from __future__ import annotations


class RegistryError(Exception):
    """Root of registry errors; a raised command leaves the registry's state unchanged."""


class ModelNotFound(RegistryError):
    def __init__(self, name: str):
        super().__init__(f"unknown model {name!r}")
        self.name = name


class VersionNotFound(RegistryError):
    def __init__(self, name: str, version: str):
        super().__init__(f"model {name!r} has no version {version!r}")
        self.name, self.version = name, version


class InvalidCandidate(RegistryError):
    def __init__(self, detail: str):
        super().__init__(f"invalid candidate: {detail}")


class InvalidRequest(RegistryError):
    pass


class DuplicateCandidate(RegistryError):
    def __init__(self, name: str, version: str, what: str):
        super().__init__(f"duplicate candidate for {name!r}: {what} already registered as version {version}")
        self.name, self.version = name, version
        self.same_candidate = what.startswith("candidate id")  # a redelivery, not a new identical model


class ArtifactRejected(RegistryError):
    """The artifact is missing from model.artifacts or its bytes do not match its sha256."""

    def __init__(self, sha256: str, detail: str):
        super().__init__(f"artifact {sha256} refused: {detail}")
        self.sha256 = sha256


class NotPromotable(RegistryError):
    pass


class NothingToRollBack(RegistryError):
    def __init__(self, name: str):
        super().__init__(f"model {name!r} has no earlier champion to roll back to")
        self.name = name
