"""The features error tree, rooted at `mlops.errors.MlopsError`."""

from __future__ import annotations

from mlops.errors import MlopsError


class FeaturesError(MlopsError):
    """Root of every error the features service raises."""
