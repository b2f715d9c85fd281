"""What the monitor watches per model, taken from the definitions revision in force.

`MonitorConfig` is immutable: the edge builds a new one when a revision arrives and hands it to the core in one
call (`DriftMonitor.configure`), so a consuming thread never sees a half-applied revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mlops.definitions import Definitions, Model, Task
from mlops.definitions.model import DriftPolicy, RolloutPolicy

SIGNALS = ("error", "score", "features")
# the stream time one cool-down second is: time in the core is prediction timestamps, in milliseconds
_MS = 1000


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """One model as the monitor sees it: its task (how a label becomes an error), its drift policy and its
    rollout policy (how a challenger is judged; no part of `statistics`, so a new one restarts no detector)."""

    name: str
    task: Task = Task.BINARY
    signals: frozenset[str] = frozenset(SIGNALS)
    alpha: float = DriftPolicy().alpha  # significance of the data-drift tests (KS windows, KSWIN)
    cooldown_ms: int = int(DriftPolicy().cooldown_s * _MS)
    label_topic: str = "labels"  # the declared name (the edge adds the bus's prefix)
    id_field: str = "entity_id"  # the entity's id field, which a JSON label carries
    rollout: RolloutPolicy = RolloutPolicy()  # how a challenger is judged on live labels (services.monitor.core.judge)

    @classmethod
    def of(cls, model: Model, id_field: str) -> ModelPolicy:
        drift = model.drift
        return cls(name=model.name, task=model.task, signals=frozenset(drift.signals), alpha=drift.alpha,
                   cooldown_ms=int(round(drift.cooldown_s * _MS)), label_topic=model.label.topic,
                   id_field=id_field, rollout=model.rollout)

    @property
    def statistics(self) -> tuple[object, ...]:
        """What the model's running statistics depend on: a change of any of these rebuilds them."""
        return self.task, self.signals, self.alpha

    @property
    def error_statistic(self) -> str:
        """How the error stream is reported: a 0/1 error rate, or a regression's mean absolute error."""
        return "mae" if self.task is Task.REGRESSION else "error_rate"


@dataclass(frozen=True)
class MonitorConfig:
    """The models the monitor watches. `fallback` watches a model the revision does not declare (None: such
    predictions and labels are counted and ignored): only an unconfigured monitor (unit tests, the benchmark)
    has one."""

    policies: Mapping[str, ModelPolicy] = field(default_factory=lambda: MappingProxyType({}))
    revision: int = 0
    fallback: ModelPolicy | None = None

    def policy(self, model_name: str) -> ModelPolicy | None:
        p = self.policies.get(model_name)
        if p is not None or self.fallback is None:
            return p
        return ModelPolicy(model_name, self.fallback.task, self.fallback.signals, self.fallback.alpha,
                           self.fallback.cooldown_ms, self.fallback.label_topic, self.fallback.id_field)

    @classmethod
    def unconfigured(cls) -> MonitorConfig:
        """Every model watched as binary with the default drift policy (what the monitor did before definitions)."""
        return cls(fallback=ModelPolicy(""))

    @classmethod
    def of(cls, definitions: Definitions, revision: int = 0) -> MonitorConfig:
        policies = {m.name: ModelPolicy.of(m, model_id_field(definitions, m)) for m in definitions.models}
        return cls(MappingProxyType(policies), revision)


def model_id_field(definitions: Definitions, model: Model) -> str:
    """The id field of the entity a model's features are about (the definitions check there is one)."""
    view, _column = definitions.model_inputs(model)[0]
    return definitions.entity(definitions.feature_view(view).entity).id_field
