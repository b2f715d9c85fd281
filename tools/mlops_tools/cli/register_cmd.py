"""`mlops models register --model NAME --onnx FILE [--wait]`: bring your own model.

The ONNX bytes go onto `model.artifacts` under their sha256 (content-addressed, like every artifact), then a
registration asks the trainer to check the file against the model's declared features and task, score it on the
holdout a retrain would build (the latest labelled rows, point-in-time correct) and propose it to the registry as a
`ModelCandidate` (framework `onnx:byo`) that the registry gates like any other. `--wait` follows it to the gate's
decision (or the trainer's refusal, which names what does not fit).

The registration is a `ModelRegistration` on `model.registrations`; the command line never imports a service.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.choices.get("models")
    if models is None:  # the models command group is not built (it usually is): make the group here
        models = sub.add_parser("models", help="the model registry")
        actions = models.add_subparsers(dest="action", required=True)
    else:
        actions = next(a for a in models._actions if isinstance(a, argparse._SubParsersAction))
    r = actions.add_parser("register", help="bring your own ONNX model: checked and scored by the trainer, then "
                                            "gated by the registry like any candidate")
    r.add_argument("--model", required=True, help="the declared model it is a version of")
    r.add_argument("--onnx", required=True, type=Path, help="the ONNX file (one FP32 input [N, features])")
    r.add_argument("--reason", default="", help="why (recorded with the registration)")
    r.add_argument("--wait", action="store_true", help="wait for the trainer's check and the registry's decision")
    r.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits at most (default 120)")
    r.set_defaults(func=_register)


def _register(args: argparse.Namespace) -> int:
    from mlops.artifacts import publish_artifact
    from mlops.bus import KafkaBus
    from mlops.contracts import models_pb2
    from mlops.settings import KafkaSettings
    from mlops.topics import MODEL_CANDIDATES, MODEL_PROMOTED, MODEL_REGISTRATIONS, REGISTRY_LOG, TRAINING_FAILURES

    from mlops_tools.follow import TopicFollower

    try:
        data = args.onnx.read_bytes()
    except OSError as exc:
        print(f"cannot read {args.onnx}: {exc}", file=sys.stderr)
        return 1
    bus = KafkaBus(KafkaSettings())
    request_id = f"byo-{uuid.uuid4().hex[:12]}"
    # positions taken before anything is sent, so the outcome cannot slip past
    follower = TopicFollower(bus, (MODEL_CANDIDATES, TRAINING_FAILURES, MODEL_PROMOTED, REGISTRY_LOG),
                             client_id="mlops-cli-register", start="end") if args.wait else None
    try:
        producer = bus.producer(client_id="mlops-cli")
        sha256 = publish_artifact(producer, bus, data)  # the bytes first: the request names them
        producer.send(bus.topic(MODEL_REGISTRATIONS), models_pb2.ModelRegistration(
            model_name=args.model, request_id=request_id, artifact_sha256=sha256, artifact_size=len(data),
            description=args.reason or f"bring your own model {args.onnx.name}",
            requested_at_ms=int(time.time() * 1000), requested_by=f"cli:{getpass.getuser()}"), key=args.model)
        producer.flush()
        print(f"registered: model={args.model} sha256={sha256} ({len(data)} bytes) request_id={request_id}")
        return _follow(follower, request_id, sha256, args.timeout) if follower is not None else 0
    finally:
        if follower is not None:
            follower.close()


def _follow(follower: Any, request_id: str, sha256: str, timeout: float) -> int:
    """0: the registry decided (promoted or rejected, printed); 1: the trainer refused it; 2: timed out."""
    deadline = time.monotonic() + timeout
    candidate_id = ""
    while time.monotonic() < deadline:
        for topic, msg in follower.poll(1.0):
            if topic == "training.failures" and msg.retrain_request_id == request_id:
                print(f"refused: {msg.reason}", file=sys.stderr)
                return 1
            if topic == "model.candidates" and msg.lineage.retrain_request_id == request_id:
                candidate_id = msg.candidate_id
                metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(msg.metrics.items()))
                print(f"checked and scored on {msg.holdout.rows} holdout rows: {metrics}; waiting for the gate")
            elif candidate_id and topic == "model.promoted" and msg.artifact_sha256 == sha256:
                print(f"promoted: {msg.model_name} v{msg.version} (previous v{msg.previous_version or '-'}): "
                      f"{msg.reason}")
                return 0
            elif candidate_id and topic == "registry.log" and msg.record_kind == "state" and \
                    msg.candidate.candidate_id == candidate_id and msg.status == "rejected":
                print(f"rejected: {msg.model_name} v{msg.version}: {msg.gate_reason}")
                return 0
    print(f"timed out after {timeout:.0f}s ({'waiting for the gate' if candidate_id else 'waiting for the trainer'})",
          file=sys.stderr)
    return 2
