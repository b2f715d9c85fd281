"""The inference error tree; the gRPC edge maps each class to a status code in one table (edge/server.py)."""

from __future__ import annotations

from mlops.errors import MlopsError

__all__ = ["EntityNotFound", "InferenceError", "InvalidInput", "ModelLoadError", "ModelNotFound", "NoOnlineStore",
           "NotReady", "ShuttingDown", "TooLarge"]


class InferenceError(MlopsError):
    """Root of every error a request can meet."""


class InvalidInput(InferenceError):
    """The request is malformed: wrong tensor name, dtype, shape, size or values."""

    def __init__(self, problem: str, *, tensor: str = ""):
        super().__init__(f"input {tensor!r}: {problem}" if tensor else problem)
        self.tensor = tensor


class ModelNotFound(InferenceError):
    def __init__(self, name: str, version: str = ""):
        what = f"model {name!r}" + (f" version {version!r}" if version else "")
        super().__init__(f"{what} is not loaded")
        self.name, self.version = name, version


class EntityNotFound(InferenceError):
    def __init__(self, entity_ids: list[str]):
        shown = ", ".join(repr(e) for e in entity_ids[:10]) + (" ..." if len(entity_ids) > 10 else "")
        super().__init__(f"no online features for entity id(s) {shown}")
        self.entity_ids = entity_ids


class TooLarge(InferenceError):
    def __init__(self, rows: int, limit: int):
        super().__init__(f"request has {rows} rows; the limit is {limit}")
        self.rows, self.limit = rows, limit


class NotReady(InferenceError):
    """The server cannot answer this request now (the request itself may be fine)."""


class ShuttingDown(NotReady):
    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class NoOnlineStore(NotReady):
    def __init__(self) -> None:
        super().__init__("entity ids need the online store, which this server has not configured")


class ModelLoadError(InferenceError):
    """An artifact could not be turned into a working onnxruntime session."""

    def __init__(self, model: str, problem: str):
        super().__init__(f"model {model}: {problem}")
        self.model = model
