"""Phases beside the server comparison: raw onnxruntime in process, the Kafka side of a run (a topic prefix of its
own with the SEA definitions applied, deleted at exit), the monitor draining what the servers logged, and a hot
swap under load."""

from __future__ import annotations

import atexit
import threading
import time
import uuid

import numpy as np
from mlops.settings import KafkaSettings
from mlops_tools.procs import stop_child

from inference_load.client import run_client
from inference_load.servers import SEA_DEFINITIONS, make_model, start_ours, wait_ready


def raw_ort(data: bytes, batch: int, seconds: float) -> float:
    """Rows/s of one onnxruntime session in this process, one thread: what no server can beat."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    k = int(sess.get_inputs()[0].shape[1])
    x = np.random.default_rng(1).uniform(0, 10, (batch, k)).astype(np.float32)
    for _ in range(50):
        sess.run(None, {"input": x})
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sess.run(None, {"input": x})
        n += 1
    return n * batch / (time.perf_counter() - start)


def kafka_for_run() -> KafkaSettings:
    """The local stack (started if needed), a fresh topic prefix with every topic made (deleted at exit: leftover
    partitions slow the broker down) and the SEA definitions applied as its first revision."""
    from mlops.bus import KafkaBus
    from mlops.definitions import load, plan
    from mlops.definitions.store import publish
    from mlops.topics import delete_topics, ensure_topics
    from mlops_tools.stack import Stack

    stack = Stack()
    stack.up()
    kafka = stack.kafka_settings().model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}."})
    ensure_topics(kafka)
    atexit.register(delete_topics, kafka)
    declared = plan(None, load(SEA_DEFINITIONS), "bench").revision
    assert declared is not None
    publish(KafkaBus(kafka), declared, client_id="bench-apply")
    return kafka


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    return {"MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix, "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}


def monitor_drain(kafka: KafkaSettings, rows: int, timeout: float = 300.0) -> dict:
    """The drift monitor (its Kafka edge and core, in this process, alone on the machine) reading every prediction
    the run logged: rows/s from its first prediction to the last, and whether it got them all."""
    from mlops.bus import KafkaBus, StopFlag
    from mlops.service import freeze_survivors

    from services.monitor.edge import MonitorService
    from services.monitor.settings import MonitorSettings

    service = MonitorService(MonitorSettings(group_id=f"bench-monitor-{uuid.uuid4().hex[:6]}"), KafkaBus(kafka))
    freeze_survivors()  # as the service's __main__ does before its loop
    stop = StopFlag(install_signals=False)
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    first_t, first_n = 0.0, 0
    deadline = time.monotonic() + timeout
    try:
        while (seen := service.monitor.predictions) < rows and time.monotonic() < deadline and thread.is_alive():
            if seen and not first_t:
                first_t, first_n = time.monotonic(), seen
            time.sleep(0.02)
        end = time.monotonic()
    finally:
        stop.set()
        thread.join(30)
    seen = service.monitor.predictions
    rate = (seen - first_n) / (end - first_t) if first_t and end > first_t else float("nan")
    return {"rows": seen, "expected": rows, "rows_per_s": rate}


def hot_swap(kafka: KafkaSettings, seconds: float, rate: float) -> dict:
    """Our server (defaults, prediction log on) following model.promoted on the real Kafka; promotions published
    while the client runs at `rate`."""
    from mlops.artifacts import publish_artifact
    from mlops.bus import Producer
    from mlops.contracts import models_pb2
    from mlops.definitions import load
    from mlops.topics import MODEL_PROMOTED, topic_name

    features = list(load(SEA_DEFINITIONS).model("sea").features)
    producer = Producer(kafka, client_id="bench-registry")
    models = [make_model(seed) for seed in range(4)]

    def promote(i: int) -> None:
        sha = publish_artifact(producer, kafka, models[i])
        producer.send(topic_name(MODEL_PROMOTED, kafka), models_pb2.ModelPromoted(
            model_name="sea", version=str(i + 1), artifact_sha256=sha, feature_names=features), key="sea")
        producer.flush()

    promote(0)
    server = start_ours("ours, following promotions", None, kafka_env(kafka))
    swap_times: list[float] = []
    try:
        wait_ready(server)

        def swapper() -> None:
            time.sleep(seconds * 0.2)
            for i in (1, 2, 3):
                swap_times.append(time.perf_counter())
                promote(i)
                time.sleep(seconds * 0.2)

        t = threading.Thread(target=swapper)
        t.start()
        res = run_client(server.url, batch=1, seconds=seconds, rate=rate, keep_samples=True)
        t.join()
    finally:
        stop_child(server.proc, 15)
    # latency of requests completed in the second after each promotion was published (load + warm + swap)
    window = [lat for ts, lat in res["stamps_lat"] for s in swap_times if s <= ts <= s + 1.0]
    res["swap_window_p99_ms"] = float(np.percentile(np.array(window) * 1000, 99)) if window else float("nan")
    res["swaps"] = len(swap_times)
    res.pop("stamps_lat")
    return res
