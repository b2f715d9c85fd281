"""The transport-free core of features: the definitions in force compiled into per-view plans (`plan`), the
accumulators (`aggregations`) and windows (`windows`) of each declared feature, and the one fold (`fold`) that the
faust agent and the reference both run."""

from services.features.core.aggregations import Aggregator, aggregator
from services.features.core.fold import (
    DictState,
    Event,
    FeatureVector,
    ReferenceFeatures,
    State,
    fold,
    fold_view,
    read_view,
    state_key,
)
from services.features.core.plan import FeaturePlan, FeaturesConfig, Limits, Unit, ViewPlan
from services.features.core.windows import Hopping, Sliding, Tumbling, Whole, hopping_start

__all__ = [
    "Aggregator",
    "DictState",
    "Event",
    "FeaturePlan",
    "FeatureVector",
    "FeaturesConfig",
    "Hopping",
    "Limits",
    "ReferenceFeatures",
    "Sliding",
    "State",
    "Tumbling",
    "Unit",
    "ViewPlan",
    "Whole",
    "aggregator",
    "fold",
    "fold_view",
    "hopping_start",
    "read_view",
    "state_key",
]
