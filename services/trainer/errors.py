"""The trainer's error tree: each failure becomes a TrainingFailed record whose reason is the error's message."""

from __future__ import annotations

from collections.abc import Iterable

from mlops.errors import MlopsError

__all__ = [
    "BadParams",
    "DataUnavailable",
    "ExportMismatch",
    "FeatureMismatch",
    "InsufficientData",
    "MissingClasses",
    "NoDefinitions",
    "ShapeMismatch",
    "SignatureMismatch",
    "SingleClass",
    "TrainerError",
    "UnknownModel",
    "UnknownParams",
]


class TrainerError(MlopsError):
    """Root of the trainer's errors."""


class NoDefinitions(TrainerError):
    def __init__(self) -> None:
        super().__init__("no definitions revision in force yet: apply definitions first (mlops apply FILE)")


class UnknownModel(TrainerError):
    def __init__(self, model: str, declared: Iterable[str], revision: int):
        self.model, self.declared = model, sorted(declared)
        super().__init__(f"model {model!r} is not declared in definitions revision {revision}; "
                         f"declared models: {self.declared or 'none'}")


class UnknownParams(TrainerError):
    def __init__(self, model: str, estimator: str, unknown: Iterable[str], hint: str = ""):
        self.unknown = sorted(unknown)
        super().__init__(f"model {model!r}: algorithm.params {self.unknown} are not parameters of {estimator}"
                         + (f" ({hint})" if hint else ""))


class BadParams(TrainerError):
    def __init__(self, model: str, detail: str):
        super().__init__(f"model {model!r}: algorithm.params refused by the estimator: {detail}")


class InsufficientData(TrainerError):
    def __init__(self, rows: int, minimum: int, detail: str = ""):
        super().__init__(
            f"not enough labelled rows to train: {rows} < {minimum}" + (f" ({detail})" if detail else "")
        )
        self.rows, self.minimum = rows, minimum


class SingleClass(TrainerError):
    def __init__(self, where: str, label: float):
        super().__init__(f"the {where} rows hold only one class (label {label:g}): cannot train or evaluate")


class MissingClasses(TrainerError):
    def __init__(self, where: str, missing: Iterable[int], declared: Iterable[int]):
        self.missing = sorted(missing)
        super().__init__(f"the {where} rows hold no label of the declared classes {self.missing} "
                         f"(declared: {list(declared)}): cannot train a model that outputs them")


class FeatureMismatch(TrainerError):
    def __init__(self, expected: tuple[str, ...], got: tuple[str, ...]):
        super().__init__(f"training set columns {list(got)} differ from the model's features {list(expected)}")


class ShapeMismatch(TrainerError):
    def __init__(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...], names: int):
        super().__init__(f"training set shapes disagree: X {x_shape}, y {y_shape}, {names} feature names")


class ExportMismatch(TrainerError):
    def __init__(self, max_diff: float, tolerance: float):
        super().__init__(
            f"onnxruntime on the exported model differs from the trained model by {max_diff:.3g} "
            f"(tolerance {tolerance:g}): refusing to publish"
        )
        self.max_diff, self.tolerance = max_diff, tolerance


class SignatureMismatch(TrainerError):
    """A bring-your-own ONNX model that does not fit its declared model."""

    def __init__(self, model: str, detail: str):
        super().__init__(f"the ONNX model does not fit model {model!r}: {detail}")
        self.detail = detail


class DataUnavailable(TrainerError):
    """The training set or an artifact could not be read (offline store missing or the broker failed)."""

    def __init__(self, source: str, detail: str):
        super().__init__(f"{source}: {detail}")
        self.source, self.detail = source, detail
