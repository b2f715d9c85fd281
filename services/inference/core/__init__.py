"""The transport-free core: the data plane (infer / ready / metadata on plain values), adaptive batching, the
onnxruntime model versions and their repository, and the domain values they pass around."""

from services.inference.core.batching import Batcher, BatchPolicy
from services.inference.core.dataplane import DataPlane, FeaturesSeen, PredictionSink
from services.inference.core.domain import (
    ENTITY_INPUT,
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
from services.inference.core.models import (
    ModelRepository,
    ModelVersion,
    SessionOptions,
    TensorSpec,
    apply_promotion,
    build_session,
    make_champion,
)

__all__ = [
    "ENTITY_INPUT",
    "NUMPY_TO_OIP",
    "OIP_TO_NUMPY",
    "BatchPolicy",
    "Batcher",
    "DataPlane",
    "FeaturesSeen",
    "InferRequest",
    "InferResponse",
    "ModelInfo",
    "ModelRepository",
    "ModelVersion",
    "PredictionSink",
    "Promotion",
    "ServedBatch",
    "SessionOptions",
    "Tensor",
    "TensorInfo",
    "TensorSpec",
    "apply_promotion",
    "build_session",
    "make_champion",
]
