"""The transport-free core: the data plane (infer / ready / metadata on plain values), the serving catalog built
from the definitions, the online feature assembly (shared with batch scoring), outputs by task, adaptive batching,
the onnxruntime model versions and their repository, and the domain values they pass around."""

from services.inference.core.batching import Batcher, BatchPolicy
from services.inference.core.catalog import Catalog, LayoutHistory, ModelSpec, OutputSpec, ViewRead, build_catalog
from services.inference.core.dataplane import DataPlane, FeaturesSeen, PredictionSink
from services.inference.core.domain import (
    ENTITY_INPUT,
    MODEL_INPUT,
    NUMPY_TO_OIP,
    OIP_TO_NUMPY,
    InferRequest,
    InferResponse,
    ModelInfo,
    Promotion,
    ServedBatch,
    Tensor,
    TensorInfo,
)
from services.inference.core.features import Assembled, assemble
from services.inference.core.models import (
    ModelRepository,
    ModelVersion,
    SessionOptions,
    TensorSpec,
    apply_promotion,
    build_session,
    make_champion,
)
from services.inference.core.outputs import Binding, bind, scores_and_labels, served_output

__all__ = [
    "ENTITY_INPUT",
    "MODEL_INPUT",
    "NUMPY_TO_OIP",
    "OIP_TO_NUMPY",
    "Assembled",
    "BatchPolicy",
    "Batcher",
    "Binding",
    "Catalog",
    "DataPlane",
    "FeaturesSeen",
    "InferRequest",
    "InferResponse",
    "LayoutHistory",
    "ModelInfo",
    "ModelRepository",
    "ModelSpec",
    "ModelVersion",
    "OutputSpec",
    "PredictionSink",
    "Promotion",
    "ServedBatch",
    "SessionOptions",
    "Tensor",
    "TensorInfo",
    "TensorSpec",
    "ViewRead",
    "apply_promotion",
    "assemble",
    "bind",
    "build_catalog",
    "build_session",
    "make_champion",
    "scores_and_labels",
    "served_output",
]
