"""The inference error tree; the gRPC edge maps each class to a status code in one table (edge/server.py)."""

from __future__ import annotations

from mlops.errors import MlopsError

__all__ = ["BadPromotion", "EntityNotFound", "InferenceError", "InvalidInput", "ModelLoadError", "ModelMismatch",
           "ModelNotFound", "NoDefinitions", "NoOnlineStore", "NotReady", "OnlineStoreDown", "ShuttingDown", "TooLarge",
           "TooLargeBody"]


class InferenceError(MlopsError):
    """Root of every error a request can meet."""


class InvalidInput(InferenceError):
    """The request is malformed: wrong tensor name, dtype, shape, size or values."""

    def __init__(self, problem: str, *, tensor: str = ""):
        super().__init__(f"input {tensor!r}: {problem}" if tensor else problem)
        self.tensor = tensor


class ModelNotFound(InferenceError):
    """An undeclared model, one not promoted yet, or a version not retained; names the models served."""

    def __init__(self, name: str, version: str = "", *, served: list[str] | None = None, reason: str = ""):
        what = f"model {name!r}" + (f" version {version!r}" if version else "")
        message = f"{what} {reason or 'is not loaded'}"
        if served is not None:
            message += f"; served models: {', '.join(served) or 'none'}"
        super().__init__(message)
        self.name, self.version, self.served = name, version, served


class EntityNotFound(InferenceError):
    def __init__(self, entity_ids: list[str], model: str = ""):
        shown = ", ".join(repr(e) for e in entity_ids[:10]) + (" ..." if len(entity_ids) > 10 else "")
        super().__init__(f"no online features for entity id(s) {shown}"
                         + (f" (model {model!r} declares serving.missing_entity: error)" if model else ""))
        self.entity_ids, self.model = entity_ids, model


class TooLarge(InferenceError):
    def __init__(self, rows: int, limit: int):
        super().__init__(f"request has {rows} rows; the limit is {limit}")
        self.rows, self.limit = rows, limit


class TooLargeBody(TooLarge):
    """A REST request body over the message limit (gRPC refuses such a message in the transport)."""

    def __init__(self, size: int, limit: int):
        InferenceError.__init__(self, f"request body has {size} bytes; the limit is {limit}")
        self.rows, self.limit = size, limit


class NotReady(InferenceError):
    """The server cannot answer this request now (the request itself may be fine)."""


class ShuttingDown(NotReady):
    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class NoOnlineStore(NotReady):
    def __init__(self) -> None:
        super().__init__("entity ids need the online store, which this server has not configured")


class OnlineStoreDown(NotReady):
    """The online store (Redis) could not be read in time: UNAVAILABLE, the client may retry."""

    def __init__(self, problem: str):
        super().__init__(f"entity ids need the online store, which cannot be read now: {problem}")


class NoDefinitions(NotReady):
    def __init__(self) -> None:
        super().__init__("no definitions revision yet: nothing is declared to serve (mlops apply)")


class ModelMismatch(InferenceError):
    """A loaded model version does not fit its declaration (input width, task output)."""

    def __init__(self, model: str, problem: str):
        super().__init__(f"model {model} does not fit its definition: {problem}")
        self.model = model


class ModelLoadError(InferenceError):
    """An artifact could not be turned into a working onnxruntime session."""

    def __init__(self, model: str, problem: str):
        super().__init__(f"model {model}: {problem}")
        self.model = model


class BadPromotion(InferenceError):
    """A `model.promoted` record that cannot be applied as it is (an unknown role, a share of traffic out of
    range); the versions in service stay."""

    def __init__(self, model: str, version: str, field: str, problem: str):
        super().__init__(f"promotion of {model}:{version}: field {field!r} {problem}")
        self.model, self.version, self.field = model, version, field
