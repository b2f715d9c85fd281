"""The trainer's transport-free core: requests coalesced into jobs (`jobs`), a declared model trained into a
verified ONNX model (`train`), and a team's own ONNX model checked and scored (`byo`)."""

from services.trainer.core.byo import BYO_FRAMEWORK, Signature, check_signature, evaluate_byo
from services.trainer.core.jobs import RetrainAsk, RetrainJob, coalesce, failure_reason, since_change
from services.trainer.core.train import (
    ONNX_INPUT,
    Progress,
    TrainConfig,
    TrainedModel,
    TrainingSetLike,
    export_onnx,
    onnx_output,
    prepare,
    time_ordered_split,
    train_config,
    train_model,
)

__all__ = [
    "BYO_FRAMEWORK",
    "ONNX_INPUT",
    "Progress",
    "RetrainAsk",
    "RetrainJob",
    "Signature",
    "TrainConfig",
    "TrainedModel",
    "TrainingSetLike",
    "check_signature",
    "coalesce",
    "evaluate_byo",
    "export_onnx",
    "failure_reason",
    "since_change",
    "onnx_output",
    "prepare",
    "time_ordered_split",
    "train_config",
    "train_model",
]
