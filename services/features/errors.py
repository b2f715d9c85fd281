"""The features error tree."""

from __future__ import annotations


class FeaturesError(Exception):
    """Root of every error the features service raises."""


class UnsupportedAggregate(FeaturesError):
    def __init__(self, name: str, detail: str):
        self.name = name
        super().__init__(f"feature {name}: {detail}")
