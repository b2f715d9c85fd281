"""Derived state against a reference: the features service's folds (`ReferenceFeatures`, the same code the faust
agent runs) over the scenario's events de-duplicated by event id, in partition order, compared with the online
views in Redis — equal when no event was lost or counted twice, whatever crashed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from mlops import definitions as d
from mlops.bus import KafkaBus
from mlops.definitions.store import read_revisions
from mlops.online_store import SyncRedisOnlineStore, ViewLayout
from mlops.settings import KafkaSettings, RedisSettings

from chaos_kit.observe import Observed
from services.features.convert import event_from_bytes
from services.features.core import FeaturesConfig, Limits, ReferenceFeatures
from services.features.settings import FeaturesSettings

__all__ = ["Reference"]


class Reference:
    def __init__(self, kafka: KafkaSettings, redis: RedisSettings):
        revision = d.latest(read_revisions(KafkaBus(kafka), client_id="chaos-reference", timeout=30))
        assert revision is not None, "no definitions revision on the chaos topics"
        s = FeaturesSettings()  # the service runs with its defaults here
        self.config = FeaturesConfig.of(revision, Limits(round(s.late_events_s * 1000), s.sliding_max_events,
                                                         s.remembered_events))
        self.layouts = {v.name: ViewLayout.of(revision.definitions, v.name, revision.view_versions[v.name])
                        for v in revision.definitions.feature_views}
        self.store = SyncRedisOnlineStore(redis)

    def mismatches(self, events: Sequence[Observed], entities: Sequence[str]) -> list[str]:
        """The entities whose online view (any view) differs from the reference's, with what differs."""
        ref = ReferenceFeatures(self.config)
        seen: set[str] = set()
        for o in sorted(events, key=lambda o: (o.partition, o.offset)):
            if o.event_id in seen:
                continue
            seen.add(o.event_id)
            ref.update(event_from_bytes(o.value, f"partition={o.partition} offset={o.offset}"))
        bad = []
        for view, layout in self.layouts.items():
            got = self.store.read_many(layout, list(entities))
            for entity, online in zip(entities, got, strict=True):
                want = ref.online(view, entity)
                if want is None and online is None:
                    continue
                if want is None or online is None:
                    bad.append(f"{view}/{entity}: reference {want is not None}, Redis {online is not None}")
                    continue
                as_of, values = want
                expected = np.array([values[c] for c in layout.columns], dtype=np.float32)
                actual = np.array([online.values[c] for c in layout.columns], dtype=np.float32)
                if as_of != online.as_of_ms or not _same(expected, actual):
                    bad.append(f"{view}/{entity}: as of {online.as_of_ms} {actual.tolist()}, reference as of "
                               f"{as_of} {expected.tolist()}")
        return bad

    def close(self) -> None:
        self.store.client.close()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a.tolist(), b.tolist(), strict=True))
