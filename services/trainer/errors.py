"""The trainer's error tree: each failure becomes a TrainingFailed record whose reason is the error's message."""

from __future__ import annotations

from mlops.errors import MlopsError

__all__ = [
    "DataUnavailable",
    "ExportMismatch",
    "FeatureMismatch",
    "InsufficientData",
    "ShapeMismatch",
    "SingleClass",
    "TrainerError",
]


class TrainerError(MlopsError):
    """Root of the trainer's errors."""


class InsufficientData(TrainerError):
    def __init__(self, rows: int, minimum: int, detail: str = ""):
        super().__init__(
            f"not enough labelled rows to train: {rows} < {minimum}" + (f" ({detail})" if detail else "")
        )
        self.rows, self.minimum = rows, minimum


class SingleClass(TrainerError):
    def __init__(self, where: str, label: float):
        super().__init__(f"the {where} rows hold only one class (label {label:g}): cannot train or evaluate")


class FeatureMismatch(TrainerError):
    def __init__(self, expected: tuple[str, ...], got: tuple[str, ...]):
        super().__init__(f"training set columns {list(got)} differ from the feature set {list(expected)}")


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


class DataUnavailable(TrainerError):
    """The training set could not be read (offline store missing or the broker failed)."""

    def __init__(self, source: str, detail: str):
        super().__init__(f"{source}: {detail}")
        self.source, self.detail = source, detail
