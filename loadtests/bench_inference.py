"""Inference benchmark, all phases in one run: raw in-process onnxruntime, the client's ceiling (an empty gRPC
servicer), this service over gRPC, MLServer over gRPC (same client, same ONNX model, onnxruntime runtime),
single-row latency at a fixed rate, and a hot swap under load.

    .venv/bin/python loadtests/bench_inference.py [--seconds 4] [--skip-mlserver] [--skip-swap]
        [--client raw|triton] [--connections 1] [--workers 1] [--sampling RATIO]

The model is what the trainer exports: HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=31) on the
feature set, via skl2onnx (no ZipMap). Servers and the load client each run in their own process; the client is
tritonclient.grpc.aio (closed loop with N requests in flight, or open loop at a fixed rate). MLServer runs from
loadtests/.venv-mlserver, created from loadtests/mlserver/requirements.txt on first use.

Fairness: every server is its own process, warmed up (50 requests) before each phase, driven by the same client
process with the same payload; the client is the raw one by default (the request serialized once, each response
parsed and checked) because on 2 cores the load generator shares the CPU with the server, and tritonclient's
per-call request building takes CPU the server then lacks (`--client triton` for the old client). Process counts
are equal: ours runs `--workers` processes, MLServer `parallel_workers` = the same (0 with one process: inference
in its only process, its fastest setting here: at batch 64, 55-63k rows/s over three runs, against 39k with
parallel_workers 2). The "client ceiling" phase is an empty grpc.aio servicer: no Python gRPC server can beat it
with this client on this machine, so it bounds what "ours / raw ORT" can reach; at 1k req/s it is timed by both
clients too, the floor under our p99. Targets: >= 2x MLServer throughput; >= 60% of raw ORT throughput at batch
64; single-row p99 <= 3 ms at 1k req/s; zero failed requests during hot swaps.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from mlops_tools.procs import free_port, stop_child
from mlops_tools.stack import go_tool

ROOT = Path(__file__).resolve().parent.parent
MLSERVER_VENV = ROOT / "loadtests" / ".venv-mlserver"
MLSERVER_REQUIREMENTS = ROOT / "loadtests" / "mlserver" / "requirements.txt"
SEA_DEFINITIONS = ROOT / "examples" / "sea" / "definitions.yaml"  # what our server serves: the declared SEA model



def _sea_width() -> int:
    """Inputs of the declared SEA model (examples/sea/definitions.yaml), the model both benchmarks serve."""
    from mlops.definitions import load

    return len(load(Path(__file__).resolve().parents[1] / "examples" / "sea" / "definitions.yaml")
               .model("sea").features)

def make_model(seed: int = 0) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    k = _sea_width()
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, (5000, k)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 10) ^ (rng.random(5000) < 0.1)).astype(np.int64)
    model = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=31, early_stopping=False,
                                           random_state=seed).fit(x, y)
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, k]))],
                   options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString()


# --- the load client (runs in its own process) ----------------------------------------------------------------


class _RawClient:
    """ModelInfer over a plain grpc.aio channel with the request serialized once (the same message tritonclient
    builds) and every response parsed and checked: a load generator that spends less of the shared CPU than
    tritonclient's per-call request building, so more of the machine measures the server."""

    def __init__(self, url: str, model: str, x: np.ndarray):
        import grpc
        from tritonclient.grpc import service_pb2

        self._pb = service_pb2
        # a local subchannel pool: each client is its own TCP connection (a multi-worker server sees several)
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20),
                ("grpc.use_local_subchannel_pool", 1)]
        self._channel = grpc.aio.insecure_channel(url, options=opts)
        self._call = self._channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        req = service_pb2.ModelInferRequest(model_name=model)
        req.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
        req.outputs.add(name="probabilities")
        req.raw_input_contents.append(x.tobytes())
        self._payload = req.SerializeToString()
        self._expect = len(x) * 2 * 4  # [n, 2] FP32 probabilities

    async def infer(self) -> None:
        resp = self._pb.ModelInferResponse.FromString(await self._call(self._payload))
        for i, out in enumerate(resp.outputs):  # servers may add outputs nobody asked for, or answer in `contents`
            if out.name == "probabilities":
                n = (len(resp.raw_output_contents[i]) if len(resp.raw_output_contents) > i
                     else 4 * len(out.contents.fp32_contents))
                if n == self._expect:
                    return
        raise RuntimeError(f"no FP32 probabilities of {self._expect} bytes in the response: {resp.outputs}"[:300])

    async def close(self) -> None:
        await self._channel.close()


class _TritonClient:
    def __init__(self, url: str, model: str, x: np.ndarray):
        import tritonclient.grpc.aio as tca

        self._client = tca.InferenceServerClient(url)
        self._model = model
        self._inp = tca.InferInput("input", list(x.shape), "FP32")
        self._inp.set_data_from_numpy(x)
        self._outs = [tca.InferRequestedOutput("probabilities")]

    async def infer(self) -> None:
        await self._client.infer(self._model, [self._inp], outputs=self._outs)

    async def close(self) -> None:
        await self._client.close()


async def _client(args: argparse.Namespace) -> dict:
    k = args.features
    x = np.random.default_rng(1).uniform(0, 10, (args.batch, k)).astype(np.float32)
    kind = _RawClient if args.client == "raw" else _TritonClient
    clients = [kind(args.url, args.model, x) for _ in range(max(1, args.connections))]
    lat: list[float] = []
    stamps: list[float] = []
    failures: list[str] = []
    for i in range(50):  # warm-up
        await clients[i % len(clients)].infer()

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            await clients[i % len(clients)].infer()
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
            tasks.append(asyncio.ensure_future(one(i)))
            i += 1
        await asyncio.gather(*tasks)
    else:  # closed loop: `concurrency` requests always in flight
        async def worker(i: int) -> None:
            while time.perf_counter() < end:
                await one(i)

        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    elapsed = time.perf_counter() - start
    for client in clients:
        await client.close()
    arr = np.array(lat) * 1000 if lat else np.array([float("nan")])
    return {"requests": len(lat), "failures": len(failures), "failure_samples": failures[:3],
            "rows_per_s": len(lat) * args.batch / elapsed, "req_per_s": len(lat) / elapsed,
            "p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()), "start": start, "stamps_lat": list(zip(stamps, lat, strict=True))
            if args.keep_samples else []}


CLIENT = "raw"  # set from --client in main()
CONNECTIONS = 1  # set from --connections in main()


def run_client(url: str, *, batch: int, seconds: float, concurrency: int = 8, rate: float = 0.0,
               keep_samples: bool = False) -> dict:

    cmd = [sys.executable, __file__, "client", "--url", url, "--batch", str(batch), "--seconds", str(seconds),
           "--concurrency", str(concurrency), "--rate", str(rate), "--features", str(_sea_width()),
           "--client", CLIENT, "--connections", str(CONNECTIONS)]
    if keep_samples:
        cmd.append("--keep-samples")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- ghz: a Go load generator, for latency at a fixed rate without a Python client's own scheduling delays -------

GHZ = "github.com/bojand/ghz/cmd/ghz@v0.120.0"
OIP_PROTO = ROOT / "proto" / "mlops" / "contracts" / "oip" / "grpc_predict_v2.proto"


def ghz_paced(binary: Path, url: str, rate: int, seconds: float, features: int = 6) -> dict:
    """Single-row ModelInfer at a fixed `rate` for `seconds`, sent and timed by ghz (open loop)."""
    request = {"model_name": "sea", "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, features],
                                               "contents": {"fp32_contents": [1.0] * features}}],
               "outputs": [{"name": "probabilities"}]}
    cmd = [str(binary), "--insecure", "--proto", str(OIP_PROTO), "--import-paths", str(OIP_PROTO.parent),
           "--call", "inference.GRPCInferenceService.ModelInfer", "-d", json.dumps(request),
           "--rps", str(rate), "--total", str(int(rate * seconds)), "--concurrency", "16", "--connections", "1",
           "--format", "json", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"ghz failed: {out.stderr[-1500:]}")
    report = json.loads(out.stdout)
    dist = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    codes = report.get("statusCodeDistribution") or {}
    return {"p50_ms": dist.get(50, float("nan")), "p99_ms": dist.get(99, float("nan")), "req_per_s": report["rps"],
            "requests": report["count"], "failures": sum(n for code, n in codes.items() if code != "OK"),
            "errors": report.get("errorDistribution") or {}}


# --- servers --------------------------------------------------------------------------------------------------


def floor_server(port: int) -> None:
    """The ceiling of this client on this machine: a grpc.aio servicer that parses the request and answers zeros of
    the right shape without any model, batching, metrics or tracing. No server can beat it with this client."""
    import grpc
    from mlops.contracts.oip import pb2, pb2_grpc

    class Floor(pb2_grpc.GRPCInferenceServiceServicer):
        async def ServerReady(self, request: object, context: object) -> object:  # noqa: N802
            return pb2.ServerReadyResponse(ready=True)

        async def ModelReady(self, request: object, context: object) -> object:  # noqa: N802
            return pb2.ModelReadyResponse(ready=True)

        async def ModelInfer(self, request: object, context: object) -> object:  # noqa: N802
            n = request.inputs[0].shape[0]  # type: ignore[attr-defined]
            out = pb2.ModelInferResponse(model_name="sea")
            out.outputs.add(name="probabilities", datatype="FP32", shape=[n, 2])
            out.raw_output_contents.append(bytes(8 * n))
            return out

    async def run() -> None:
        server = grpc.aio.server()
        pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Floor(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


def start_floor() -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"PYTHONPATH": f"{ROOT / 'libs'}:{ROOT}"}
    proc = subprocess.Popen([sys.executable, __file__, "floor", "--url", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(ROOT / ".run" / "bench-inference.log", "ab"))
    return proc, f"127.0.0.1:{port}"


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


def start_ours(model_path: Path | None, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {
        "MLOPS_INFERENCE_HOST": "127.0.0.1", "MLOPS_INFERENCE_PORT": str(port), "MLOPS_INFERENCE_REST": "false",
        "MLOPS_INFERENCE_WATCH_PROMOTIONS": "false", "MLOPS_INFERENCE_LOG_PREDICTIONS": "false",
        "MLOPS_INFERENCE_ONLINE_JOIN": "false", "MLOPS_TELEMETRY_METRICS_PORT": "0",
        "MLOPS_TELEMETRY_LOG_LEVEL": "WARNING", "PYTHONPATH": f"{ROOT / 'libs'}:{ROOT}",
    } | ({"MLOPS_INFERENCE_MODEL_PATH": str(model_path), "MLOPS_INFERENCE_DEFINITIONS_FILE": str(SEA_DEFINITIONS)}
         if model_path else {}) | (extra_env or {})
    proc = subprocess.Popen([sys.executable, "-m", "services.inference"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(ROOT / ".run" / "bench-inference.log", "ab"))
    return proc, f"127.0.0.1:{port}"


def mlserver_binary() -> Path | None:
    """MLServer's `mlserver` in its own virtualenv, (re)created from loadtests/mlserver/requirements.txt when missing
    or made from another version of that file (None: the install failed; the reason is in the log)."""
    binary, stamp = MLSERVER_VENV / "bin" / "mlserver", MLSERVER_VENV / "requirements.txt"
    wanted = MLSERVER_REQUIREMENTS.read_text()
    if binary.exists() and stamp.exists() and stamp.read_text() == wanted:
        return binary
    with open(ROOT / ".run" / "bench-mlserver.log", "ab") as log:
        for cmd in ([sys.executable, "-m", "venv", "--clear", str(MLSERVER_VENV)],
                    [str(MLSERVER_VENV / "bin" / "pip"), "install", "-q", "-r", str(MLSERVER_REQUIREMENTS)]):
            if subprocess.run(cmd, stdout=log, stderr=log, timeout=1200).returncode != 0:
                return None
    stamp.write_text(wanted)
    return binary


def start_mlserver(mlserver: Path, model_path: Path, workdir: Path,
                   parallel_workers: int = 0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    model_dir = workdir / "sea"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.onnx").write_bytes(model_path.read_bytes())
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": "sea", "implementation": "ort_runtime.OrtModel", "parameters": {"uri": "./model.onnx"}}))
    (workdir / "settings.json").write_text(json.dumps({
        "grpc_port": port, "http_port": free_port(), "metrics_port": free_port(), "parallel_workers": parallel_workers,
        "host": "127.0.0.1", "debug": False}))
    env = os.environ | {"PYTHONPATH": str(ROOT / "loadtests" / "mlserver")}
    proc = subprocess.Popen([str(mlserver), "start", str(workdir)], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(ROOT / ".run" / "bench-mlserver.log", "ab"))
    return proc, f"127.0.0.1:{port}"


# --- phases ---------------------------------------------------------------------------------------------------


def _family(pid: int) -> list[int]:
    """`pid` and its descendants (MLServer's and our workers)."""
    out = [pid]
    try:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out += _family(int(child))
    except OSError:
        pass
    return out


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


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
    from mlops.bus import KafkaBus, Producer
    from mlops.contracts import models_pb2
    from mlops.definitions import load, plan
    from mlops.definitions.store import publish
    from mlops.topics import MODEL_PROMOTED, delete_topics, ensure_topics, topic_name
    from mlops_tools.stack import Stack

    stack = Stack()
    stack.up()
    kafka = stack.kafka_settings().model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}."})
    ensure_topics(kafka)
    atexit.register(delete_topics, kafka)  # leftover partitions slow the broker down
    declared = plan(None, load(SEA_DEFINITIONS), "bench").revision
    assert declared is not None
    publish(KafkaBus(kafka), declared, client_id="bench-apply")  # the server serves what is declared
    features = list(declared.definitions.model("sea").features)
    producer = Producer(kafka, client_id="bench-registry")
    models = [make_model(seed) for seed in range(4)]

    def promote(i: int) -> None:
        sha = publish_artifact(producer, kafka, models[i])
        producer.send(topic_name(MODEL_PROMOTED, kafka), models_pb2.ModelPromoted(
            model_name="sea", version=str(i + 1), artifact_sha256=sha, feature_names=features),
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
        stop_child(proc, 15)
    # latency of requests completed in the second after each promotion was published (load + warm + swap)
    window = [lat for ts, lat in res["stamps_lat"] for s in swap_times if s <= ts <= s + 1.0]
    res["swap_window_p99_ms"] = float(np.percentile(np.array(window) * 1000, 99)) if window else float("nan")
    res["swaps"] = len(swap_times)
    res.pop("stamps_lat")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "client", "floor"])
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
    parser.add_argument("--client", default="raw", choices=["raw", "triton"],
                        help="load client: raw (pre-serialized request on a grpc.aio channel) or tritonclient.grpc.aio")
    parser.add_argument("--connections", type=int, default=1, help="client connections (raw client only)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the server phases (medians)")
    parser.add_argument("--sampling", type=float, default=None,
                        help="our MLOPS_TELEMETRY_SAMPLING_RATIO (default: the service's default, 1.0; spans are "
                        "never exported here: MLServer traces nothing)")
    parser.add_argument("--workers", type=int, default=1,
                        help="our server processes (MLOPS_INFERENCE_WORKERS); MLServer then gets the same number of "
                        "parallel_workers (with 1: parallel_workers 0, inference in its one process)")
    args = parser.parse_args()
    if args.mode == "client":
        print(json.dumps(asyncio.run(_client(args))))
        return
    if args.mode == "floor":
        floor_server(int(args.url))
        return
    global CLIENT, CONNECTIONS
    CLIENT, CONNECTIONS = args.client, args.connections

    (ROOT / ".run").mkdir(exist_ok=True)
    load_before = os.getloadavg()[0]  # a busy machine (other jobs) lowers every figure: say so
    secs = args.seconds
    data = make_model()
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    model_path = tmp / "model.onnx"
    model_path.write_bytes(data)
    rows: list[tuple[str, str]] = []
    raw64, raw1 = raw_ort(data, 64, secs), raw_ort(data, 1, secs)
    rows += [("raw onnxruntime, batch 64 (rows/s)", f"{raw64:,.0f}"), ("raw onnxruntime, batch 1 (rows/s)",
                                                                      f"{raw1:,.0f}")]
    ours_env = {"MLOPS_INFERENCE_WORKERS": str(args.workers), "MLOPS_INFERENCE_USE_CUDA": "false"}
    if args.sampling is not None:
        ours_env["MLOPS_TELEMETRY_SAMPLING_RATIO"] = str(args.sampling)
    # All servers run side by side (idle ones cost nothing) and the phases interleave round by round, so a busy
    # neighbour on this shared machine hurts every server alike; medians over the rounds are reported.
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    mlserver = None if args.skip_mlserver else mlserver_binary()
    with_mlserver = mlserver is not None
    if not args.skip_mlserver and mlserver is None:
        rows.append(("MLServer", "could not be installed (see .run/bench-mlserver.log)"))
    results: dict[str, dict[str, list[dict]]] = {}
    paced: dict[tuple[str, str], list[dict]] = {}  # (server, client) -> one result per round
    ghz = go_tool(GHZ, "ghz")
    if ghz is None:
        rows.append(("ghz", "not available: no Go toolchain, or `go install` failed (see the warning above)"))
    try:
        servers["ceiling"] = start_floor()
        servers["ours"] = start_ours(model_path, ours_env)
        if with_mlserver:
            servers["MLServer"] = start_mlserver(mlserver, model_path, tmp / "mlserver",
                                                 args.workers if args.workers > 1 else 0)
        for proc, url in servers.values():
            wait_ready(url, proc)
        if args.workers > 1:
            time.sleep(5)  # our other workers load their model copies after worker 0 is ready
        for _ in range(args.rounds):
            for phase, batch, conc in (("b64", 64, 8), ("b1", 1, 16)):
                for name, (proc, url) in servers.items():
                    pids = _family(proc.pid)
                    c0 = _cpu_s(pids)
                    res = run_client(url, batch=batch, seconds=secs, concurrency=conc)
                    res["cpu_us"] = (_cpu_s(pids) - c0) / max(1, res["requests"] + 50) * 1e6  # warm-up included
                    results.setdefault(name, {}).setdefault(phase, []).append(res)
            for name in ("ceiling", "ours"):  # the empty servicer's tail is the floor under each client's figure
                url = servers[name][1]
                paced.setdefault((name, "Python"), []).append(run_client(url, batch=1, seconds=secs, rate=1000))
                if ghz:
                    paced.setdefault((name, "ghz (Go)"), []).append(ghz_paced(ghz, url, 1000, secs))
    finally:
        for proc, _ in servers.values():
            stop_child(proc, 15)

    def med(name: str, phase: str, key: str) -> float:
        return float(np.median([r[key] for r in results[name][phase]]))

    def show(name: str, phase: str) -> str:
        rs = results[name][phase]
        key = "rows_per_s" if phase == "b64" else "req_per_s"
        lo, hi = min(r[key] for r in rs), max(r[key] for r in rs)
        return (f"{med(name, phase, key):,.0f}  (range {lo:,.0f}-{hi:,.0f})  p99 {med(name, phase, 'p99_ms'):.2f} ms  "
                f"server CPU {med(name, phase, 'cpu_us'):,.0f} us/req  ({sum(r['failures'] for r in rs)} failed)")

    def show_paced(rs: list[dict]) -> str:
        p99s = ", ".join(f"{r['p99_ms']:.2f}" for r in rs)
        return (f"{np.median([r['p50_ms'] for r in rs]):.2f} / {np.median([r['p99_ms'] for r in rs]):.2f}  "
                f"(p99 per round {p99s}; {np.median([r['req_per_s'] for r in rs]):,.0f} req/s achieved, "
                f"{sum(r['failures'] for r in rs)} failed)")

    ours64, ours1 = med("ours", "b64", "rows_per_s"), med("ours", "b1", "req_per_s")
    ceil64, ceil1 = med("ceiling", "b64", "rows_per_s"), med("ceiling", "b1", "req_per_s")
    rows += [("client ceiling: empty gRPC servicer, batch 64 (rows/s)", show("ceiling", "b64")),
             ("client ceiling: empty gRPC servicer, batch 1 (req/s)", show("ceiling", "b1")),
             ("ours gRPC, batch 64, 8 in flight (rows/s)", show("ours", "b64")),
             ("ours gRPC, batch 1, 16 in flight (req/s)", show("ours", "b1")),
             *((f"{'ours' if name == 'ours' else 'empty servicer'} single row at 1k req/s, {client} client: "
                "p50 / p99 ms", show_paced(paced[name, client])) for name in ("ours", "ceiling")
               for client in ("Python", "ghz (Go)") if (name, client) in paced),
             ("ours / raw ORT at batch 64", f"{ours64 / raw64:.0%}  (target >= 60%)"),
             ("ours / client ceiling, batch 64 / batch 1", f"{ours64 / ceil64:.0%} / {ours1 / ceil1:.0%}")]
    if with_mlserver:
        ml64, ml1 = med("MLServer", "b64", "rows_per_s"), med("MLServer", "b1", "req_per_s")
        cpu64 = med("MLServer", "b64", "cpu_us") / med("ours", "b64", "cpu_us")
        cpu1 = med("MLServer", "b1", "cpu_us") / med("ours", "b1", "cpu_us")
        rows += [("MLServer gRPC, batch 64 (rows/s)", show("MLServer", "b64")),
                 ("MLServer gRPC, batch 1 (req/s)", show("MLServer", "b1")),
                 ("ours / MLServer, batch 64", f"{ours64 / ml64:.2f}x  (target >= 2x; {cpu64:.2f}x less server CPU "
                                               "per request)"),
                 ("ours / MLServer, batch 1", f"{ours1 / ml1:.2f}x  (target >= 2x; {cpu1:.2f}x less server CPU "
                                              "per request)")]
    if not args.skip_swap:
        swap = hot_swap(max(secs * 2, 6.0), 500)
        rows += [("hot swap: swaps / requests / failed",
                  f"{swap['swaps']} / {swap['requests']} / {swap['failures']}"),
                 ("hot swap at 500 req/s: p99 overall / in the 1 s after each promotion (ms)",
                  f"{swap['p99_ms']:.2f} / {swap['swap_window_p99_ms']:.2f}")]
    width = max(len(r[0]) for r in rows)
    print(f"inference benchmark ({secs:.0f} s per phase, {args.rounds} rounds, {os.cpu_count()} cores, load "
          f"average before {load_before:.2f}; client {CLIENT}, {CONNECTIONS} connection(s); ours {args.workers} "
          f"process(es), "
          f"MLServer parallel_workers {args.workers if args.workers > 1 else 0}; our trace sampling "
          f"{'default' if args.sampling is None else args.sampling})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
