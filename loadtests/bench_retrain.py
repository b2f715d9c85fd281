"""End-to-end retrain time: RetrainRequest published → ModelPromoted (or the registry's rejection) seen, with
the trainer and the registry as real processes (`python -m services.trainer|registry`) on the local broker.

Data: N labelled rows of river's SEA stream (mlops_tools.datagen, no drift) written to features.log + labels under a
fresh topic prefix. Baseline: the same training in this process (offline-store read + fit/export/verify), no bus.
Usage: .venv/bin/python loadtests/bench_retrain.py [--rows 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import atexit
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "libs"), str(ROOT / "tools")]

from mlops import contracts  # noqa: E402
from mlops.bus import Producer  # noqa: E402
from mlops.contracts import events_pb2, models_pb2  # noqa: E402
from mlops.schema import FEATURE_SET  # noqa: E402
from mlops.settings import KafkaSettings  # noqa: E402
from mlops.topics import (  # noqa: E402
    FEATURES_LOG,
    LABELS,
    MODEL_PROMOTED,
    REGISTRY_LOG,
    RETRAIN_REQUESTED,
    TRAINING_FAILURES,
    delete_topics,
    ensure_topics,
    topic_name,
)
from mlops_tools.datagen import StreamConfig, generate  # noqa: E402
from mlops_tools.procs import free_port  # noqa: E402
from mlops_tools.registry_client import RegistryClient  # noqa: E402


def feed(kafka: KafkaSettings, rows: int, start: int = 0) -> None:
    producer = Producer(kafka, client_id="bench-feed")
    cfg = StreamConfig(count=start + rows, drift_at=None, seed=7)
    for rec in generate(cfg):
        if rec.index < start:
            continue
        v = rec.values
        values = dict(zip(FEATURE_SET.names, [v["x0"], v["x1"], v["x2"], v["x0"], v["x1"], 1.0], strict=True))
        producer.send(topic_name(FEATURES_LOG, kafka), events_pb2.FeatureVector(
            entity_id=rec.entity_id, feature_set=FEATURE_SET.name, feature_set_version=FEATURE_SET.version,
            as_of_ms=rec.event_time_ms, values=values, event_id=rec.event_id), key=rec.entity_id)
        producer.send(topic_name(LABELS, kafka), events_pb2.Label(
            entity_id=rec.entity_id, event_time_ms=rec.event_time_ms, label=float(rec.label),
            event_id=rec.event_id), key=rec.entity_id)
    producer.flush(120)


def decision_after(kafka: KafkaSettings, request_id: str, timeout: float) -> tuple[str, float]:
    """Publish a RetrainRequest and wait for model.promoted / a rejection on registry.log / training.failures."""
    from confluent_kafka import Consumer, TopicPartition

    names = [topic_name(s, kafka) for s in (MODEL_PROMOTED, REGISTRY_LOG, TRAINING_FAILURES)]
    c = Consumer(kafka.client_config()
                 | {"group.id": f"bench-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    c.assign([TopicPartition(t, 0, c.get_watermark_offsets(TopicPartition(t, 0), timeout=10)[1]) for t in names])
    producer = Producer(kafka, client_id="bench")
    started = time.perf_counter()
    producer.send(topic_name(RETRAIN_REQUESTED, kafka), models_pb2.RetrainRequest(
        model_name="sea", request_id=request_id, reason="benchmark", detector="manual",
        requested_at_ms=int(time.time() * 1000), seed=int(request_id.rsplit("-", 1)[1])), key="sea")
    producer.flush()
    try:
        while time.perf_counter() - started < timeout:
            for msg in c.consume(50, 0.2):
                if msg.error() or msg.value() is None:
                    continue
                if msg.topic() == names[0]:
                    p = contracts.decode(models_pb2.ModelPromoted, msg.value())
                    return f"promoted v{p.version}", time.perf_counter() - started
                if msg.topic() == names[2]:
                    return "training failed: " + contracts.decode(models_pb2.TrainingFailed, msg.value()).reason, \
                        time.perf_counter() - started
                e = contracts.decode(models_pb2.RegistryEvent, msg.value())
                if e.record_kind == "state" and e.status == "rejected":
                    return f"rejected v{e.version}", time.perf_counter() - started
    finally:
        c.close()
    return "timeout", time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    kafka = KafkaSettings().model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}."})
    ensure_topics(kafka)
    atexit.register(delete_topics, kafka)  # leftover partitions slow the broker down
    t = time.perf_counter()
    feed(kafka, args.rows)
    print(f"fed {args.rows} labelled SEA rows in {time.perf_counter() - t:.1f}s (prefix {kafka.topic_prefix})")

    # baseline: the training alone, in this process
    from mlops.offline_store import KafkaTrainingData

    from services.trainer.core import train_config, train_model
    from services.trainer.settings import TrainerSettings

    t = time.perf_counter()
    data = KafkaTrainingData(kafka, labels_within_features=True).training_set()
    read_s = time.perf_counter() - t
    model = train_model(data, train_config(TrainerSettings()), FEATURE_SET.names)
    tm = model.timings_s

    grpc_port = free_port()
    env = {**os.environ, "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix, "MLOPS_TELEMETRY_METRICS_PORT": "0",
           "MLOPS_REGISTRY_GRPC_PORT": str(grpc_port), "MLOPS_TELEMETRY_LOG_FORMAT": "text",
           "PYTHONPATH": f"{ROOT}:{ROOT / 'libs'}"}
    logdir = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    procs = {}
    try:
        for name in ("registry", "trainer"):
            log = (logdir / f"{name}.log").open("wb")
            procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                                           stdout=log, stderr=subprocess.STDOUT)
        RegistryClient(f"127.0.0.1:{grpc_port}").wait_ready(60)
        deadline = time.monotonic() + 60
        while b"trainer started" not in (logdir / "trainer.log").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # let the trainer's consumer join its group
        results = []
        for i in range(args.rounds):
            if i:  # new data since the last training: a new data version, so a genuinely new candidate
                feed(kafka, args.rows // 10, start=args.rows + (i - 1) * (args.rows // 10))
            results.append(decision_after(kafka, f"bench-{i + 1}", 300))
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    coalesce = TrainerSettings().coalesce_window_s
    print(f"\nretrain benchmark: {args.rows} rows (train {model.train_rows}, holdout {model.holdout_rows}), "
          f"HistGradientBoosting max_iter={TrainerSettings().max_iter}")
    print(f"{'measure':<52} {'seconds':>8}")
    print(f"{'baseline: offline-store read (features.log ⋈ labels)':<52} {read_s:>8.2f}")
    print(f"{'baseline: fit':<52} {tm['fit']:>8.2f}")
    print(f"{'baseline: ONNX export + onnxruntime parity check':<52} {tm['export'] + tm['verify']:>8.2f}")
    print(f"{'baseline: training only (read + fit + export + verify)':<52} {read_s + tm['total']:>8.2f}")
    for i, (what, secs) in enumerate(results, 1):
        print(f"{f'end-to-end round {i}: request → {what}':<52} {secs:>8.2f}")
    print("(round 2+: 10% more rows appended first, so the candidate is gated against the round-1 champion)")
    print(f"(end-to-end includes the trainer's {coalesce:g}s coalescing window, the artifact + candidate on the "
          f"bus, the registry's artifact fetch, champion/challenger scoring and registry.log write; logs in "
          f"{logdir})")
    return 0 if all(w != "timeout" and not w.startswith("training failed") for w, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
