"""The trainer's exceptions: each becomes a TrainingFailed record whose reason is the exception's message."""

from __future__ import annotations


class TrainerError(RuntimeError):
    """Root of trainer errors."""


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


class ExportMismatch(TrainerError):
    def __init__(self, max_diff: float, tolerance: float):
        super().__init__(
            f"onnxruntime on the exported model differs from the trained model by {max_diff:.3g} "
            f"(tolerance {tolerance:g}): refusing to publish"
        )
        self.max_diff, self.tolerance = max_diff, tolerance


class DataUnavailable(TrainerError):
    """The training set could not be read (offline store missing or the broker failed)."""
