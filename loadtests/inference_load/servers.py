"""The servers compared, each its own process: ours in several configurations (`OURS`: the shipped defaults first),
MLServer (its own virtualenv, created from loadtests/mlserver/requirements.txt on first use) and the thinnest
grpc.aio servicer (the client's ceiling); plus their CPU time and our prediction-log counters (from /metrics)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlops_tools.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "loadtests" / "bench_inference.py"
MLSERVER_VENV = ROOT / "loadtests" / ".venv-mlserver"
MLSERVER_REQUIREMENTS = ROOT / "loadtests" / "mlserver" / "requirements.txt"
SEA_DEFINITIONS = ROOT / "examples" / "sea" / "definitions.yaml"  # what our server serves: the declared SEA model
LOG = ROOT / ".run" / "bench-inference.log"

# Our configurations: the service's defaults with a trace exporter on (the file exporter, at the default sampling
# ratio) is the headline; the others change one thing. Values: environment on top of the common one (a None value
# is filled in per run: the trace file).
OURS: dict[str, dict[str, str | None]] = {
    "ours": {"MLOPS_TELEMETRY_EXPORTER": "file", "MLOPS_TELEMETRY_FILE_PATH": None},
    "ours, log off": {"MLOPS_TELEMETRY_EXPORTER": "file", "MLOPS_TELEMETRY_FILE_PATH": None,
                      "MLOPS_INFERENCE_LOG_PREDICTIONS": "false"},
    "ours, tracing off": {"MLOPS_TELEMETRY_EXPORTER": "none", "MLOPS_TELEMETRY_SAMPLING_RATIO": "0"},
}


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str
    metrics_ports: list[int] = field(default_factory=list)  # ours: one per worker process

    def metric(self, name: str, **labels: str) -> float:
        """The sum of metric `name`'s samples that carry `labels` (whatever their order), over every worker; 0 when
        none."""
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        for port in self.metrics_ports:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                sample, _, value = line.rpartition(" ")
                metric, _, rest = sample.partition("{")
                if metric == name and set(wanted) <= set(rest.rstrip("}").split(",")):
                    total += float(value)
        return total

    def prediction_log(self) -> tuple[float, float]:
        """(rows delivered, rows dropped) by the prediction log, over every worker; (0, 0) for other servers."""
        logged = dropped = 0.0
        for port in self.metrics_ports:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("mlops_inference_prediction_logs_total "):
                    logged += float(line.split()[-1])
                elif line.startswith("mlops_inference_prediction_logs_dropped_total{"):
                    dropped += float(line.split()[-1])
        return logged, dropped


def make_model(seed: int = 0) -> bytes:
    """What the trainer exports: HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=31) via skl2onnx."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    from inference_load.client import sea_width

    k = sea_width()
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, (5000, k)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 10) ^ (rng.random(5000) < 0.1)).astype(np.int64)
    model = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=31, early_stopping=False,
                                           random_state=seed).fit(x, y)
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, k]))],
                   options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString()


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


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT / "libs", ROOT, ROOT / "loadtests"))}


def start_floor() -> Server:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(BENCH), "floor", "--url", str(port)], cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=open(LOG, "ab"))
    return Server("thin grpc.aio servicer", proc, f"127.0.0.1:{port}")


def start_ours(name: str, model_path: Path | None, extra_env: dict[str, str], workers: int = 1) -> Server:
    """Our server as `python -m services.inference`: the service's own defaults unless `extra_env` says otherwise
    (no promotions followed when serving `model_path`; the metrics port is free, one per worker)."""
    port, metrics = free_port(), free_port()
    env = _env() | {
        "MLOPS_INFERENCE_HOST": "127.0.0.1", "MLOPS_INFERENCE_PORT": str(port), "MLOPS_INFERENCE_USE_CUDA": "false",
        "MLOPS_INFERENCE_REST_PORT": str(free_port()),  # REST stays on as shipped, on a port of its own
        "MLOPS_INFERENCE_WORKERS": str(workers), "MLOPS_TELEMETRY_METRICS_PORT": str(metrics),
        "MLOPS_TELEMETRY_LOG_LEVEL": "WARNING",
    } | ({"MLOPS_INFERENCE_MODEL_PATH": str(model_path), "MLOPS_INFERENCE_DEFINITIONS_FILE": str(SEA_DEFINITIONS),
          "MLOPS_INFERENCE_WATCH_PROMOTIONS": "false"} if model_path else {}) | extra_env
    proc = subprocess.Popen([sys.executable, "-m", "services.inference"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(LOG, "ab"))
    return Server(name, proc, f"127.0.0.1:{port}", [metrics + i for i in range(workers)])


def wait_ready(server: Server, timeout: float = 90.0) -> None:
    import tritonclient.grpc as tc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode} (see {LOG})")
        try:
            c = tc.InferenceServerClient(server.url)
            ready = c.is_server_ready() and c.is_model_ready("sea")
            c.close()
            if ready:
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{server.name} at {server.url} not ready after {timeout}s")


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


def start_mlserver(mlserver: Path, model_path: Path, workdir: Path, parallel_workers: int | None = 0,
                   name: str = "MLServer") -> Server:
    """MLServer serving `model_path` as "sea"; `parallel_workers` None leaves MLServer's own default (1: inference in
    a worker process beside the gRPC front end), 0 runs inference in its one process."""
    port = free_port()
    model_dir = workdir / "sea"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.onnx").write_bytes(model_path.read_bytes())
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": "sea", "implementation": "ort_runtime.OrtModel", "parameters": {"uri": "./model.onnx"}}))
    settings = {"grpc_port": port, "http_port": free_port(), "metrics_port": free_port(), "host": "127.0.0.1",
                "debug": False}
    (workdir / "settings.json").write_text(json.dumps(
        settings if parallel_workers is None else settings | {"parallel_workers": parallel_workers}))
    env = os.environ | {"PYTHONPATH": str(ROOT / "loadtests" / "mlserver")}
    proc = subprocess.Popen([str(mlserver), "start", str(workdir)], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(ROOT / ".run" / "bench-mlserver.log", "ab"))
    return Server(name, proc, f"127.0.0.1:{port}")


def family(pid: int) -> list[int]:
    """`pid` and its descendants (MLServer's and our workers)."""
    out = [pid]
    try:
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out += family(int(child))
    except OSError:
        pass
    return out


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")
