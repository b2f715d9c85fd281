"""`mlops train ...` and `mlops models list|show|promote|rollback|diff|card`.

`mlops train` publishes a RetrainRequest on retrain.requested by default — the running trainer service does the
work (and coalesces it with other requests) — and `--wait` follows it to the candidate and the registry's decision.
`--local` trains in this process with the trainer's own code instead (same data snapshot rules, same outputs).
`models ...` talks to the registry's gRPC API (MLOPS_REGISTRY_ADDRESS or --registry, default 127.0.0.1:8002).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="retrain a model (via the trainer service, or --local in this process)")
    t.add_argument("--model", default="sea", help="model name (default: sea)")
    t.add_argument("--seed", type=int, default=None, help="training seed (default: the trainer's)")
    t.add_argument("--reason", default="manual retrain from the CLI", help="why (recorded in the lineage)")
    t.add_argument("--wait", action="store_true", help="wait for the candidate and the registry's decision")
    t.add_argument("--local", action="store_true", help="train in this process instead of asking the trainer")
    t.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits at most (default 300)")
    t.set_defaults(func=_train)

    m = sub.add_parser("models", help="the model registry: list, show, promote, rollback, diff, card")
    m.add_argument("--registry", default=None, help="registry gRPC address (default $MLOPS_REGISTRY_ADDRESS "
                                                    "or 127.0.0.1:8002)")
    msub = m.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="every model with its champion").set_defaults(func=_list)
    p = msub.add_parser("show", help="versions, gate decisions and audit trail of a model")
    p.add_argument("name")
    p.add_argument("--version", default="", help="only this version")
    p.set_defaults(func=_show)
    p = msub.add_parser("promote", help="make a version the champion")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--reason", default="manual promotion")
    p.add_argument("--actor", default=None, help="who (default: your user name)")
    p.set_defaults(func=_promote)
    p = msub.add_parser("rollback", help="go back to the previous champion")
    p.add_argument("name")
    p.add_argument("--reason", default="manual rollback")
    p.add_argument("--actor", default=None, help="who (default: your user name)")
    p.set_defaults(func=_rollback)
    p = msub.add_parser("diff", help="what differs between two versions")
    p.add_argument("name")
    p.add_argument("a")
    p.add_argument("b")
    p.set_defaults(func=_diff)
    p = msub.add_parser("card", help="the Markdown model card of a version (default: the champion)")
    p.add_argument("name")
    p.add_argument("--version", default="")
    p.set_defaults(func=_card)


# --- progress: a bar on a terminal, periodic lines otherwise ---------------------------------------------------


class Progress:
    def __init__(self, stream: Any = None, every_s: float = 5.0):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s
        self.started = time.monotonic()
        self._last_text, self._last_line = "", 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        elapsed = time.monotonic() - self.started
        fraction = min(max(fraction, 0.0), 1.0)
        if self.tty:
            filled = int(fraction * 30)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction * 100:5.1f}% "
                              f"{elapsed:6.1f}s {stage:<40.40}")
            self.stream.flush()
        elif stage != self._last_text or elapsed - self._last_line >= self.every_s:
            self.stream.write(f"[{elapsed:7.1f}s] {fraction * 100:5.1f}% {stage}\n")
            self.stream.flush()
            self._last_text, self._last_line = stage, elapsed

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --- mlops train -----------------------------------------------------------------------------------------------


class _Follower:
    """Reads the outcome topics from their current end (positions taken before the request is sent)."""

    def __init__(self, kafka: Any):
        from confluent_kafka import Consumer, TopicPartition

        from mlops.bus import watermarks
        from mlops.topics import MODEL_CANDIDATES, MODEL_PROMOTED, REGISTRY_LOG, TRAINING_FAILURES, topic_name

        self.names = {spec.name: topic_name(spec, kafka)
                      for spec in (MODEL_CANDIDATES, TRAINING_FAILURES, MODEL_PROMOTED, REGISTRY_LOG)}
        self.consumer = Consumer(kafka.client_config() | {"group.id": f"cli-train-{uuid.uuid4().hex[:8]}",
                                                          "enable.auto.commit": False,
                                                          "fetch.max.bytes": kafka.max_message_bytes,
                                                          "max.partition.fetch.bytes": kafka.max_message_bytes})
        assignment = []
        for topic in self.names.values():
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                _, high = watermarks(self.consumer, topic, p)
                assignment.append(TopicPartition(topic, p, high))
        self.consumer.assign(assignment)

    def poll(self, timeout: float) -> list[tuple[str, Any]]:
        from mlops import contracts
        from mlops.contracts import models_pb2

        types = {"model.candidates": models_pb2.ModelCandidate, "training.failures": models_pb2.TrainingFailed,
                 "model.promoted": models_pb2.ModelPromoted, "registry.log": models_pb2.RegistryEvent}
        by_topic = {v: k for k, v in self.names.items()}
        out = []
        for msg in self.consumer.consume(100, timeout):
            if msg.error() or msg.value() is None:
                continue
            spec = by_topic[msg.topic()]
            try:
                out.append((spec, contracts.decode(types[spec], msg.value())))
            except contracts.ContractError:
                continue
        return out

    def close(self) -> None:
        self.consumer.close()


def _train(args: argparse.Namespace) -> int:
    from mlops.bus import Producer
    from mlops.contracts import models_pb2
    from mlops.settings import KafkaSettings
    from mlops.topics import RETRAIN_REQUESTED, topic_name

    kafka = KafkaSettings()
    request_id = f"cli-{uuid.uuid4().hex[:12]}"
    progress = Progress()
    follower = _Follower(kafka) if (args.wait or args.local) else None
    producer = Producer(kafka, client_id="mlops-cli")
    candidate: Any = None
    try:
        if args.local:
            from services.trainer.data import offline_store_loader
            from services.trainer.jobs import RetrainAsk, RetrainJob
            from services.trainer.service import TrainerService
            from services.trainer.settings import TrainerSettings

            settings = TrainerSettings()
            seed = settings.seed if args.seed is None else args.seed
            ask = RetrainAsk(args.model, request_id, args.reason, "manual", int(time.time() * 1000),
                             f"cli:{getpass.getuser()}", seed)
            outcome = TrainerService(settings, kafka, producer, offline_store_loader(
                kafka, labels_within_features=settings.labels_within_features)).run_job(
                RetrainJob(args.model, seed, ask, (request_id,)), progress)
            progress.done()
            if outcome.failure is not None:
                print(f"training failed: {outcome.failure.reason}", file=sys.stderr)
                return 1
            candidate = outcome.candidate
            print(f"candidate {candidate.candidate_id} sha256={candidate.artifact_sha256} "
                  f"rows={candidate.lineage.row_count} in {outcome.seconds:.1f}s; metrics: "
                  + ", ".join(f"{k}={v:.4f}" for k, v in sorted(candidate.metrics.items())))
        else:
            req = models_pb2.RetrainRequest(
                model_name=args.model, request_id=request_id, reason=args.reason, detector="manual",
                requested_at_ms=int(time.time() * 1000), requested_by=f"cli:{getpass.getuser()}")
            if args.seed is not None:
                req.seed = args.seed
            producer.send(topic_name(RETRAIN_REQUESTED, kafka), req, key=args.model)
            producer.flush()
            print(f"retrain requested: model={args.model} request_id={request_id}")
        if not args.wait:
            return 0
        assert follower is not None
        return _follow(follower, args, request_id, candidate, progress)
    finally:
        if follower is not None:
            follower.close()


def _follow(follower: _Follower, args: argparse.Namespace, request_id: str, candidate: Any,
            progress: Progress) -> int:
    deadline = time.monotonic() + args.timeout
    stage = "waiting for the registry" if candidate is not None else "waiting for the trainer"
    base = 0.5 if candidate is not None else 0.1
    while time.monotonic() < deadline:
        progress(stage, base)
        for topic, msg in follower.poll(1.0):
            ours = topic == "model.candidates" and (request_id in msg.lineage.coalesced_request_ids
                                                    or msg.lineage.retrain_request_id == request_id)
            if candidate is None and ours:
                candidate, stage, base = msg, "waiting for the registry", 0.5
                progress(f"candidate {msg.artifact_sha256[:12]}", base)
            elif candidate is None and topic == "training.failures" and msg.model_name == args.model:
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


# --- mlops models ... -------------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from mlops_tools.registry_client import RegistryClient

    return RegistryClient(args.registry)


def _run(args: argparse.Namespace, fn: Any) -> int:
    from mlops_tools.registry_client import RegistryCallError

    try:
        with _client(args) as client:
            fn(client)
        return 0
    except RegistryCallError as exc:
        print(f"mlops models {args.action}: {exc.code.name}: {exc.detail}", file=sys.stderr)
        return 1


def _metrics(m: Any) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in sorted(m.items()) if k in ("auc", "accuracy", "logloss"))


def _list(args: argparse.Namespace) -> int:
    def show(client: Any) -> None:
        models = client.list_models().models
        if not models:
            print("no models registered")
        print(f"{'MODEL':<20} {'CHAMPION':>8} {'LATEST':>6} {'VERSIONS':>8}  SHA256")
        for m in models:
            print(f"{m.name:<20} {m.champion_version or '-':>8} {m.latest_version:>6} {m.version_count:>8}  "
                  f"{m.champion_sha256[:16] or '-'}")

    return _run(args, show)


def _show(args: argparse.Namespace) -> int:
    def show(client: Any) -> None:
        r = client.get_model(args.name, args.version)
        print(f"model {r.name}: champion v{r.champion_version or '-'}")
        print(f"{'VER':>4} {'STATUS':<12} {'DECISION':<9} {'ROWS':>7}  {'SHA256':<16}  GATE METRICS / REASON")
        for v in r.versions:
            print(f"{v.version:>4} {v.status:<12} {v.gate_decision:<9} {v.lineage.row_count:>7}  "
                  f"{v.artifact_sha256[:16]}  {_metrics(v.gate_metrics)}\n{'':>54}{v.gate_reason}")
        print("audit:")
        for a in r.audit:
            if not args.version or a.version == args.version:
                ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.at_ms / 1000))
                print(f"  #{a.sequence:<4} {ts}Z v{a.version:<4} {a.action:<9} by {a.actor}: {a.why}")

    return _run(args, show)


def _promote(args: argparse.Namespace) -> int:
    def do(client: Any) -> None:
        r = client.promote(args.name, args.version, args.actor or getpass.getuser(), args.reason)
        print(f"promoted {r.promoted.model_name} v{r.promoted.version} "
              f"(previous v{r.promoted.previous_version or '-'}), audit #{r.sequence}")

    return _run(args, do)


def _rollback(args: argparse.Namespace) -> int:
    def do(client: Any) -> None:
        r = client.rollback(args.name, args.actor or getpass.getuser(), args.reason)
        print(f"rolled back {r.promoted.model_name} to v{r.promoted.version} "
              f"(from v{r.promoted.previous_version}), audit #{r.sequence}")

    return _run(args, do)


def _diff(args: argparse.Namespace) -> int:
    return _run(args, lambda client: print(client.diff(args.name, args.a, args.b).text))


def _card(args: argparse.Namespace) -> int:
    return _run(args, lambda client: print(client.model_card(args.name, args.version).markdown, end=""))
