"""The features error tree, rooted at `mlops.errors.MlopsError`."""

from __future__ import annotations

from mlops.errors import MlopsError


class FeaturesError(MlopsError):
    """Root of every error the features service raises."""


class UnsupportedAggregate(FeaturesError):
    """A feature of the feature set that this service cannot compute."""

    def __init__(self, name: str, detail: str):
        self.name = name
        self.detail = detail
        super().__init__(f"feature {name}: {detail}")
