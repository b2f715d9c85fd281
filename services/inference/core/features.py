"""The online join: a model's input matrix for entity ids, assembled from its feature views in declared order.

Online serving and batch scoring (`mlops score`) both call `assemble`, so a row scored in a batch gets exactly the
features a request for the same entity would. Per view one read of the current version's layout (one MGET for the
batch), then, for the entities missing there only, one read per older layout that still has the columns. An entity
missing from a view after that follows the model's declared `serving.missing_entity`: `error` refuses the request
naming the entities, `defaults` serves NaN in that view's columns (the model's own missing-value handling). NaN
inside a found view is a value the features service has none for yet, and is passed on the same way. A store that
cannot be reached (`OnlineStoreUnavailable`) becomes `OnlineStoreDown`, a NotReady: the edge answers UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from mlops.definitions.model import MissingEntity
from mlops.online_store import OnlineFeatures, OnlineStore, OnlineStoreUnavailable

from services.inference.core.catalog import ModelSpec, ViewRead
from services.inference.errors import EntityNotFound, OnlineStoreDown

__all__ = ["Assembled", "assemble"]


@dataclass(slots=True)
class Assembled:
    x: np.ndarray  # float32 [n, k], model-input order
    as_of_ms: list[int]  # per row: the oldest as-of time of the views it was served from (0: none found)
    seen: list[OnlineFeatures]  # every view record used (the edge links the request's span to their updates)


async def _read(store: OnlineStore, read: ViewRead, entity_ids: Sequence[str]) -> tuple[
        list[OnlineFeatures | None], list[int]]:
    """The records of `entity_ids` in this view and, per row, the index of the layout each came from (-1: none)."""
    found = await store.read_many(read.layouts[0], entity_ids)
    source = [0 if f is not None else -1 for f in found]
    for j in range(1, len(read.layouts)):
        missing = [i for i, f in enumerate(found) if f is None]
        if not missing:
            break
        older = await store.read_many(read.layouts[j], [entity_ids[i] for i in missing])
        for i, f in zip(missing, older, strict=True):
            if f is not None:
                found[i], source[i] = f, j
    return found, source


async def assemble(store: OnlineStore, spec: ModelSpec, entity_ids: Sequence[str]) -> Assembled:
    try:
        return await _assemble(store, spec, entity_ids)
    except OnlineStoreUnavailable as exc:
        raise OnlineStoreDown(str(exc)) from exc


async def _assemble(store: OnlineStore, spec: ModelSpec, entity_ids: Sequence[str]) -> Assembled:
    n, k = len(entity_ids), spec.k
    if len(spec.views) == 1:  # the common case, and with every entity in the current layout the fastest
        read = spec.views[0]
        found, source = await _read(store, read, entity_ids)
        if read.direct and all(s == 0 for s in source):
            x = np.array([list(f.values.values()) for f in found], dtype=np.float32)  # type: ignore[union-attr]
            return Assembled(x, [f.as_of_ms for f in found], found)  # type: ignore[arg-type, union-attr]
        reads = [(read, found, source)]
    else:
        reads = [(read, *(await _read(store, read, entity_ids))) for read in spec.views]
    missing = sorted({i for _, _, source in reads for i, s in enumerate(source) if s < 0})
    if missing and spec.missing_entity is MissingEntity.ERROR:
        raise EntityNotFound([entity_ids[i] for i in missing], model=spec.name)
    x = np.full((n, k), np.nan, dtype=np.float32)
    as_of: list[int | None] = [None] * n
    seen: list[OnlineFeatures] = []
    for read, found, source in reads:
        for j in range(len(read.layouts)):
            rows = [i for i, s in enumerate(source) if s == j]
            if not rows:
                continue
            values = np.array([list(found[i].values.values()) for i in rows], dtype=np.float32)  # type: ignore
            x[np.ix_(rows, read.positions)] = values[:, read.indexes[j]]
            for i in rows:
                f = found[i]
                assert f is not None
                seen.append(f)
                as_of[i] = f.as_of_ms if as_of[i] is None else min(as_of[i], f.as_of_ms)  # type: ignore[type-var]
    return Assembled(x, [a or 0 for a in as_of], seen)
