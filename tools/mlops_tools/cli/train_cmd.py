"""`mlops train`: ask for a retrain and, with `--wait`, follow it to the candidate and the registry's decision.

By default it publishes a RetrainRequest on retrain.requested and the running trainer service does the work (and
coalesces it with other requests). `--local` runs one retrain in a child process instead,
`python -m services.trainer --once MODEL` (the trainer's own code and outputs: the candidate goes out exactly as
the service would publish it); the command line never imports a service.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from mlops_tools.console import Progress

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


def train_locally(model: str, seed: int | None = None) -> dict[str, Any]:
    """One retrain of `model` in a child process with this environment (plus MLOPS_TRAINER_SEED for `seed`);
    returns the trainer's one-line JSON result, which holds "error" when the retrain failed."""
    env = os.environ | ({"MLOPS_TRAINER_SEED": str(seed)} if seed is not None else {})
    done = subprocess.run([sys.executable, "-m", "services.trainer", "--once", model], env=env,
                          stdout=subprocess.PIPE, text=True)  # the trainer's log stays on our stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        return {"model": model, "error": f"the trainer exited {done.returncode} without a result: "
                                         f"{done.stdout[-500:].strip() or '(no output)'}"}
    if done.returncode != 0 and "error" not in result:
        result["error"] = f"the trainer exited {done.returncode}"
    return result


def describe(result: dict[str, Any]) -> str:
    """One line for a successful local retrain: its identifying fields, then its metrics."""
    metrics = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
    fields = " ".join(f"{k}={v}" for k, v in result.items()
                      if k not in ("model", "metrics") and not isinstance(v, dict | list))
    text = f"trained {result.get('model', '?')}: {fields}"
    if metrics:
        text += "; metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
    return text


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
        expected_sha: str | None = None
        if args.local:
            print(f"training {args.model} locally: python -m services.trainer --once {args.model}", file=sys.stderr)
            result = train_locally(args.model, args.seed)
            if "error" in result:
                print(f"training failed: {result['error']}", file=sys.stderr)
                return 1
            print(describe(result))
            expected_sha = result.get("artifact_sha256") or result.get("sha256") or ""
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
        return _follow(follower, args, request_id, expected_sha, Progress())
    finally:
        if follower is not None:
            follower.close()


def _is_ours(msg: Any, args: argparse.Namespace, request_id: str, expected_sha: str | None) -> bool:
    """Our candidate: the one answering our request, or (local) the one the child process just published."""
    if expected_sha is None:
        return request_id in msg.lineage.coalesced_request_ids or msg.lineage.retrain_request_id == request_id
    return msg.model_name == args.model and (not expected_sha or msg.artifact_sha256 == expected_sha)


def _follow(follower: Any, args: argparse.Namespace, request_id: str, expected_sha: str | None,
            progress: Progress) -> int:
    deadline = time.monotonic() + args.timeout
    candidate: Any = None
    stage, base = "waiting for the trainer", 0.1
    while time.monotonic() < deadline:
        progress(stage, base)
        for topic, msg in follower.poll(1.0):
            if candidate is None and topic == "model.candidates" and _is_ours(msg, args, request_id, expected_sha):
                candidate, stage, base = msg, "waiting for the registry", 0.5
                progress(f"candidate {msg.artifact_sha256[:12]}", base)
            elif candidate is None and expected_sha is None and topic == "training.failures" \
                    and msg.model_name == args.model:
                progress.done()
                print(f"training failed: {msg.reason}", file=sys.stderr)
                return 1
            elif candidate is not None and topic == "model.promoted" and \
                    msg.artifact_sha256 == candidate.artifact_sha256:
                progress("promoted", 1.0)
                progress.done()
                print(f"promoted: {msg.model_name} v{msg.version} (previous v{msg.previous_version or '-'}): "
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
