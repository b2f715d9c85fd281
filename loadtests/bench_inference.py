"""Inference benchmark, all phases in one run: raw in-process onnxruntime, this service over gRPC (tritonclient),
MLServer over gRPC (same client, same ONNX model, onnxruntime runtime), single-row latency at a fixed rate, and a
hot swap under load.

    .venv/bin/python loadtests/bench_inference.py [--seconds 4] [--skip-mlserver] [--skip-swap]

The model is what the trainer exports: HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=31) on the
feature set, via skl2onnx (no ZipMap). Servers and the load client each run in their own process; the client is
tritonclient.grpc.aio (closed loop with N requests in flight, or open loop at a fixed rate). MLServer runs from
loadtests/.venv-mlserver (see loadtests/mlserver/). Targets: >= 2x MLServer throughput; >= 60% of raw ORT
throughput at batch 64; single-row p99 <= 3 ms at 1k req/s; zero failed requests during hot swaps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MLSERVER_VENV = ROOT / "loadtests" / ".venv-mlserver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_model(seed: int = 0) -> bytes:
    from mlops.schema import FEATURE_SET
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    k = len(FEATURE_SET.names)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, (5000, k)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 10) ^ (rng.random(5000) < 0.1)).astype(np.int64)
    model = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=31, early_stopping=False,
                                           random_state=seed).fit(x, y)
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, k]))],
                   options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString()


# --- the load client (runs in its own process) ----------------------------------------------------------------


async def _client(args: argparse.Namespace) -> dict:
    import tritonclient.grpc.aio as tca

    client = tca.InferenceServerClient(args.url)
    k = args.features
    x = np.random.default_rng(1).uniform(0, 10, (args.batch, k)).astype(np.float32)
    inp = tca.InferInput("input", [args.batch, k], "FP32")
    inp.set_data_from_numpy(x)
    outs = [tca.InferRequestedOutput("probabilities")]
    lat: list[float] = []
    stamps: list[float] = []
    failures: list[str] = []
    for _ in range(50):  # warm-up
        await client.infer(args.model, [inp], outputs=outs)

    async def one() -> None:
        t0 = time.perf_counter()
        try:
            await client.infer(args.model, [inp], outputs=outs)
            lat.append(time.perf_counter() - t0)
            stamps.append(time.perf_counter())
        except Exception as exc:
            failures.append(str(exc)[:200])

    start = time.perf_counter()
    end = start + args.seconds
    if args.rate:  # open loop: a request every 1/rate s whatever the server does
        tasks = []
        i = 0
        while True:
            due = start + i / args.rate
            if due >= end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
            i += 1
        await asyncio.gather(*tasks)
    else:  # closed loop: `concurrency` requests always in flight
        async def worker() -> None:
            while time.perf_counter() < end:
                await one()

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - start
    await client.close()
    arr = np.array(lat) * 1000 if lat else np.array([float("nan")])
    return {"requests": len(lat), "failures": len(failures), "failure_samples": failures[:3],
            "rows_per_s": len(lat) * args.batch / elapsed, "req_per_s": len(lat) / elapsed,
            "p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()), "start": start, "stamps_lat": list(zip(stamps, lat, strict=True))
            if args.keep_samples else []}


def run_client(url: str, *, batch: int, seconds: float, concurrency: int = 8, rate: float = 0.0,
               keep_samples: bool = False) -> dict:
    from mlops.schema import FEATURE_SET

    cmd = [sys.executable, __file__, "client", "--url", url, "--batch", str(batch), "--seconds", str(seconds),
           "--concurrency", str(concurrency), "--rate", str(rate), "--features", str(len(FEATURE_SET.names))]
    if keep_samples:
        cmd.append("--keep-samples")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- servers --------------------------------------------------------------------------------------------------


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    import tritonclient.grpc as tc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            c = tc.InferenceServerClient(url)
            if c.is_server_ready() and c.is_model_ready("sea"):
                c.close()
                return
            c.close()
        except Exception:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server at {url} not ready after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def start_ours(model_path: Path | None, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {
        "MLOPS_INFERENCE_HOST": "127.0.0.1", "MLOPS_INFERENCE_PORT": str(port),
        "MLOPS_INFERENCE_WATCH_PROMOTIONS": "false", "MLOPS_INFERENCE_LOG_PREDICTIONS": "false",
        "MLOPS_INFERENCE_ONLINE_JOIN": "false", "MLOPS_TELEMETRY_METRICS_PORT": "0",
        "MLOPS_TELEMETRY_LOG_LEVEL": "WARNING", "PYTHONPATH": f"{ROOT / 'libs'}:{ROOT}",
    } | ({"MLOPS_INFERENCE_MODEL_PATH": str(model_path)} if model_path else {}) | (extra_env or {})
    proc = subprocess.Popen([sys.executable, "-m", "services.inference"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(ROOT / ".run" / "bench-inference.log", "ab"))
    return proc, f"127.0.0.1:{port}"


def start_mlserver(model_path: Path, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    model_dir = workdir / "sea"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.onnx").write_bytes(model_path.read_bytes())
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": "sea", "implementation": "ort_runtime.OrtModel", "parameters": {"uri": "./model.onnx"}}))
    (workdir / "settings.json").write_text(json.dumps({
        "grpc_port": port, "http_port": free_port(), "metrics_port": free_port(), "parallel_workers": 0,
        "host": "127.0.0.1", "debug": False}))
    env = os.environ | {"PYTHONPATH": str(ROOT / "loadtests" / "mlserver")}
    proc = subprocess.Popen([str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(workdir)], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(ROOT / ".run" / "bench-mlserver.log", "ab"))
    return proc, f"127.0.0.1:{port}"


# --- phases ---------------------------------------------------------------------------------------------------


def raw_ort(data: bytes, batch: int, seconds: float) -> float:
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


def hot_swap(seconds: float, rate: float) -> dict:
    """Our server following model.promoted on the real Kafka; promotions published while the client runs."""
    from mlops.artifacts import publish_artifact
    from mlops.bus import Producer
    from mlops.contracts import models_pb2
    from mlops.schema import FEATURE_SET
    from mlops.stack import Stack
    from mlops.topics import MODEL_PROMOTED, ensure_topics, topic_name

    stack = Stack()
    stack.up()
    kafka = stack.kafka_settings().model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}."})
    ensure_topics(kafka)
    producer = Producer(kafka, client_id="bench-registry")
    models = [make_model(seed) for seed in range(4)]

    def promote(i: int) -> None:
        sha = publish_artifact(producer, kafka, models[i])
        producer.send(topic_name(MODEL_PROMOTED, kafka), models_pb2.ModelPromoted(
            model_name="sea", version=str(i + 1), artifact_sha256=sha, feature_names=list(FEATURE_SET.names)),
            key="sea")
        producer.flush()

    promote(0)
    env = {"MLOPS_INFERENCE_WATCH_PROMOTIONS": "true", "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
           "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    proc, url = start_ours(None, env)
    try:
        wait_ready(url, proc)
        import threading

        swap_times: list[float] = []

        def swapper() -> None:
            time.sleep(seconds * 0.2)
            for i in (1, 2, 3):
                swap_times.append(time.perf_counter())
                promote(i)
                time.sleep(seconds * 0.2)

        t = threading.Thread(target=swapper)
        t.start()
        res = run_client(url, batch=1, seconds=seconds, rate=rate, keep_samples=True)
        t.join()
    finally:
        stop(proc)
    # latency of requests completed in the second after each promotion was published (load + warm + swap)
    window = [lat for ts, lat in res["stamps_lat"] for s in swap_times if s <= ts <= s + 1.0]
    res["swap_window_p99_ms"] = float(np.percentile(np.array(window) * 1000, 99)) if window else float("nan")
    res["swaps"] = len(swap_times)
    res.pop("stamps_lat")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "client"])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--skip-swap", action="store_true")
    parser.add_argument("--url", default="")
    parser.add_argument("--model", default="sea")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--features", type=int, default=6)
    parser.add_argument("--keep-samples", action="store_true")
    args = parser.parse_args()
    if args.mode == "client":
        print(json.dumps(asyncio.run(_client(args))))
        return

    (ROOT / ".run").mkdir(exist_ok=True)
    secs = args.seconds
    data = make_model()
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    model_path = tmp / "model.onnx"
    model_path.write_bytes(data)
    rows: list[tuple[str, str]] = []
    raw64, raw1 = raw_ort(data, 64, secs), raw_ort(data, 1, secs)
    rows += [("raw onnxruntime, batch 64 (rows/s)", f"{raw64:,.0f}"), ("raw onnxruntime, batch 1 (rows/s)",
                                                                      f"{raw1:,.0f}")]
    proc, url = start_ours(model_path)
    try:
        wait_ready(url, proc)
        ours64 = run_client(url, batch=64, seconds=secs, concurrency=8)
        ours1 = run_client(url, batch=1, seconds=secs, concurrency=16)
        paced = run_client(url, batch=1, seconds=secs, rate=1000)
    finally:
        stop(proc)
    rows += [("ours gRPC, batch 64, 8 in flight (rows/s)",
              f"{ours64['rows_per_s']:,.0f}  p99 {ours64['p99_ms']:.2f} ms"),
             ("ours gRPC, batch 1, 16 in flight (req/s)",
              f"{ours1['req_per_s']:,.0f}  p99 {ours1['p99_ms']:.2f} ms"),
             ("ours single row at 1k req/s: p50 / p99 (ms)",
              f"{paced['p50_ms']:.2f} / {paced['p99_ms']:.2f}  ({paced['req_per_s']:,.0f} req/s achieved, "
              f"{paced['failures']} failed)"),
             ("ours / raw ORT at batch 64", f"{ours64['rows_per_s'] / raw64:.0%}  (target >= 60%)")]
    if not args.skip_mlserver:
        if not (MLSERVER_VENV / "bin" / "mlserver").exists():
            rows.append(("MLServer", f"not installed in {MLSERVER_VENV}"))
        else:
            proc, url = start_mlserver(model_path, tmp / "mlserver")
            try:
                wait_ready(url, proc)
                ml64 = run_client(url, batch=64, seconds=secs, concurrency=8)
                ml1 = run_client(url, batch=1, seconds=secs, concurrency=16)
            finally:
                stop(proc)
            rows += [("MLServer gRPC, batch 64 (rows/s)",
                      f"{ml64['rows_per_s']:,.0f}  p99 {ml64['p99_ms']:.2f} ms"),
                     ("MLServer gRPC, batch 1 (req/s)", f"{ml1['req_per_s']:,.0f}  p99 {ml1['p99_ms']:.2f} ms"),
                     ("ours / MLServer, batch 64",
                      f"{ours64['rows_per_s'] / ml64['rows_per_s']:.2f}x  (target >= 2x)"),
                     ("ours / MLServer, batch 1", f"{ours1['req_per_s'] / ml1['req_per_s']:.2f}x  (target >= 2x)")]
    if not args.skip_swap:
        swap = hot_swap(max(secs * 2, 6.0), 500)
        rows += [("hot swap: swaps / requests / failed",
                  f"{swap['swaps']} / {swap['requests']} / {swap['failures']}"),
                 ("hot swap at 500 req/s: p99 overall / in the 1 s after each promotion (ms)",
                  f"{swap['p99_ms']:.2f} / {swap['swap_window_p99_ms']:.2f}")]
    width = max(len(r[0]) for r in rows)
    print(f"inference benchmark ({secs:.0f} s per phase, {os.cpu_count()} cores)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
