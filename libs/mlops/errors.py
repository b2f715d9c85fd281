"""The root of every error the platform raises on purpose.

Each library module and each service keeps its own small tree under `MlopsError` (`errors.py` per service), with
constructors that take structured arguments and build the message. Catching `MlopsError` catches any of them and
nothing else: a bug (a `TypeError`, a `KeyError`) is never mistaken for an expected failure. Edges map these
classes to transport statuses (gRPC codes, dead-letter reasons) in one table each, never inside the exceptions.
"""

from __future__ import annotations

__all__ = ["MlopsError"]


class MlopsError(Exception):
    """Root of the platform's own errors; the message says what failed and what to do."""
