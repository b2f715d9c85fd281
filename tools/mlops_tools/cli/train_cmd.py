"""`mlops train`: ask for a retrain and, with `--wait`, follow it to the candidate and the registry's decision.

By default it publishes a RetrainRequest on retrain.requested and the running trainer service does the work (and
coalesces it with other requests). `--local` runs one retrain in a child process instead,
`python -m services.trainer --once MODEL` (the trainer's own code and outputs: the candidate goes out exactly as
the service would publish it); the command line never imports a service.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid
from typing import Any

from mlops_tools.console import Progress
from mlops_tools.procs import run_json_child

__all__ = ["register", "train_locally"]


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="retrain a model (via the trainer service, or --local in a child process)")
    t.add_argument("--model", default="sea", help="model name (default: sea)")
    t.add_argument("--seed", type=int, default=None, help="training seed (default: the trainer's)")
    t.add_argument("--reason", default="manual retrain from the CLI", help="why (recorded in the lineage)")
    t.add_argument("--wait", action="store_true", help="wait for the candidate and the registry's decision")
    t.add_argument("--local", action="store_true",
                   help="train here (python -m services.trainer --once MODEL) instead of asking the trainer service")
    t.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits at most (default 300)")
    t.set_defaults(func=_train)


def train_locally(model: str, request_id: str, reason: str, seed: int | None = None) -> dict[str, Any]:
    """One retrain of `model` in a child process with this environment: `python -m services.trainer --once`, which
    publishes its candidate (or failure) exactly as the service would. Returns the trainer's one-line JSON result,
    which holds "error" when the retrain failed."""
    argv = [sys.executable, "-m", "services.trainer", "--once", model, "--reason", reason, "--request-id", request_id]
    argv += ["--seed", str(seed)] if seed is not None else []
    return run_json_child(argv, "the trainer", {"model": model})


def describe(result: dict[str, Any]) -> str:
    """One line for a successful local retrain: the candidate, its data and time, then its metrics."""
    metrics = result.get("metrics") or {}
    return (f"candidate {result.get('candidate_id')} sha256={result.get('sha256')} rows={result.get('rows')} "
            f"in {float(result.get('seconds', 0.0)):.1f}s; metrics: "
            + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))


def _train(args: argparse.Namespace) -> int:
    from mlops.bus import KafkaBus
    from mlops.contracts import models_pb2
    from mlops.settings import KafkaSettings
    from mlops.topics import MODEL_CANDIDATES, MODEL_PROMOTED, REGISTRY_LOG, RETRAIN_REQUESTED, TRAINING_FAILURES

    from mlops_tools.follow import TopicFollower

    bus = KafkaBus(KafkaSettings())
    request_id = f"cli-{uuid.uuid4().hex[:12]}"
    # positions taken before anything is sent, so the outcome cannot slip past
    follower = TopicFollower(bus, (MODEL_CANDIDATES, TRAINING_FAILURES, MODEL_PROMOTED, REGISTRY_LOG),
                             client_id="mlops-cli-train", start="end") if args.wait else None
    try:
        if args.local:
            result = train_locally(args.model, request_id, args.reason, args.seed)
            if "error" in result:
                print(f"training failed: {result['error']}", file=sys.stderr)
                return 1
            print(describe(result))
        else:
            req = models_pb2.RetrainRequest(
                model_name=args.model, request_id=request_id, reason=args.reason, detector="manual",
                requested_at_ms=int(time.time() * 1000), requested_by=f"cli:{getpass.getuser()}")
            if args.seed is not None:
                req.seed = args.seed
            producer = bus.producer(client_id="mlops-cli")
            producer.send(bus.topic(RETRAIN_REQUESTED), req, key=args.model)
            producer.flush()
            print(f"retrain requested: model={args.model} request_id={request_id}")
        if follower is None:
            return 0
        return _follow(follower, args, request_id, Progress())
    finally:
        if follower is not None:
            follower.close()


def _follow(follower: Any, args: argparse.Namespace, request_id: str, progress: Progress) -> int:
    deadline = time.monotonic() + args.timeout
    candidate: Any = None
    stage, base = "waiting for the trainer", 0.1
    while time.monotonic() < deadline:
        progress(stage, base)
        for topic, msg in follower.poll(1.0):
            ours = topic == "model.candidates" and (request_id in msg.lineage.coalesced_request_ids
                                                    or msg.lineage.retrain_request_id == request_id)
            if candidate is None and ours:
                candidate, stage, base = msg, "waiting for the registry", 0.5
                progress(f"candidate {msg.artifact_sha256[:12]}", base)
            elif candidate is None and not args.local and topic == "training.failures" \
                    and msg.model_name == args.model:
                progress.done()
                print(f"training failed: {msg.reason}", file=sys.stderr)
                return 1
            elif candidate is not None and topic == "model.promoted" and \
                    msg.artifact_sha256 == candidate.artifact_sha256 and msg.action != "retire":
                # a challenger role (shadow, canary) is not a promotion: live traffic decides it later
                outcome = msg.role if msg.role not in ("", "champion") else "promoted"
                progress(outcome, 1.0)
                progress.done()
                share = f" on {msg.traffic_fraction:.0%} of requests beside the champion" if msg.role else ""
                print(f"{outcome}: {msg.model_name} v{msg.version}{share} (previous v{msg.previous_version or '-'}): "
                      f"{msg.reason}")
                return 0
            elif candidate is not None and topic == "registry.log" and msg.record_kind == "state" and \
                    msg.candidate.candidate_id == candidate.candidate_id and msg.status == "rejected":
                progress("rejected", 1.0)
                progress.done()
                print(f"rejected: {msg.model_name} v{msg.version}: {msg.gate_reason}")
                return 0
    progress.done()
    print(f"timed out after {args.timeout:.0f}s ({stage})", file=sys.stderr)
    return 2
