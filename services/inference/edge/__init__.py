"""The inference service's adapters: the gRPC server (OIP servicer, health, reflection, the one error → status
table), the promotion follower, the prediction log producer, the request's tracing and the worker processes."""

from services.inference.edge.prediction_log import PredictionLog
from services.inference.edge.promotions import FetchArtifact, PromotionFollower
from services.inference.edge.server import STATUS_CODES, InferenceServer, InferenceServicer, status_code
from services.inference.edge.workers import WorkerGroup, parent_gone, worker_env

__all__ = ["STATUS_CODES", "FetchArtifact", "InferenceServer", "InferenceServicer", "PredictionLog",
           "PromotionFollower", "WorkerGroup", "parent_gone", "status_code", "worker_env"]
