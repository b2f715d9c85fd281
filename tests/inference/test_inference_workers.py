"""`MLOPS_INFERENCE_WORKERS=2`: the real entry point (`python -m services.inference`) starts a second process on
the same gRPC port; connections spread over both, each counts its own requests on its own ops port, and SIGTERM
to worker 0 stops the whole group. No Kafka or Redis: a model from a local file."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from inference_helpers import SEA_FILE, K
from tritonclient.grpc import service_pb2, service_pb2_grpc

from services.inference.edge.workers import worker_env

ROOT = Path(__file__).resolve().parents[2]


def _free_port(span: int = 1) -> int:
    """A port p with p .. p+span-1 all free right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + span > 65535:
            continue
        try:
            socks = []
            for p in range(port, port + span):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


def _ok_requests(metrics: str) -> float:
    # summed over the model and version labels
    found = re.findall(r'^mlops_inference_requests_total\{code="OK",[^}]*\} ([0-9.e+]+)$', metrics, re.M)
    return sum(float(v) for v in found)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def group(model_file: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    port, metrics = _free_port(), _free_port(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")} | {
        "MLOPS_INFERENCE_HOST": "127.0.0.1", "MLOPS_INFERENCE_PORT": str(port), "MLOPS_INFERENCE_WORKERS": "2",
        "MLOPS_INFERENCE_REST_PORT": str(_free_port()),
        "MLOPS_INFERENCE_MODEL_PATH": str(model_file), "MLOPS_INFERENCE_DEFINITIONS_FILE": str(SEA_FILE),
        "MLOPS_INFERENCE_WATCH_PROMOTIONS": "false",
        "MLOPS_INFERENCE_LOG_PREDICTIONS": "false", "MLOPS_INFERENCE_ONLINE_JOIN": "false",
        "MLOPS_INFERENCE_USE_CUDA": "false", "MLOPS_TELEMETRY_METRICS_PORT": str(metrics),
        "MLOPS_TELEMETRY_LOG_LEVEL": "WARNING", "PYTHONPATH": f"{ROOT / 'libs'}:{ROOT}",
    }
    proc = subprocess.Popen([sys.executable, "-m", "services.inference"], cwd=ROOT, env=env)
    try:
        yield proc, port, metrics
    finally:
        kids = _children(proc.pid) if proc.poll() is None else []
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for kid in kids:  # never leave a worker behind, whatever the test did
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_workers_share_the_port_and_stop_together(group) -> None:  # type: ignore[no-untyped-def]
    proc, port, metrics = group
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker 0 exited with {proc.returncode}"
        if all(_get(f"http://127.0.0.1:{metrics + i}/readyz")[0] == 200 for i in (0, 1)):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the two workers did not get ready")
    kids = _children(proc.pid)
    assert len(kids) == 1

    # 24 separate connections (a local subchannel pool each): the kernel spreads them over both processes
    x = np.random.default_rng(0).uniform(0, 10, (3, K)).astype(np.float32)
    req = service_pb2.ModelInferRequest(model_name="sea")
    req.inputs.add(name="input", datatype="FP32", shape=[3, K])
    req.raw_input_contents.append(x.tobytes())
    sent = 0
    for _ in range(24):
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            resp = service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=10)
            sent += 1
            probs = next(i for i, o in enumerate(resp.outputs) if o.name == "probabilities")
            assert np.frombuffer(resp.raw_output_contents[probs], np.float32).reshape(3, 2).sum(axis=1) == \
                pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    counts = [_ok_requests(_get(f"http://127.0.0.1:{metrics + i}/metrics")[1]) for i in (0, 1)]
    assert sum(counts) == sent and all(c > 0 for c in counts), counts

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{kids[0]}").exists() and \
            "zombie" not in Path(f"/proc/{kids[0]}/status").read_text().lower():
        time.sleep(0.1)
    status = Path(f"/proc/{kids[0]}/status")
    assert not status.exists() or "zombie" in status.read_text().lower(), "worker 1 outlived worker 0"


def test_worker_env_carries_port_index_and_ops_port() -> None:
    env = worker_env(2, 8001, 9105, base={"MLOPS_INFERENCE_WORKERS": "3", "OTHER": "x"})
    assert env["MLOPS_INFERENCE_WORKER_INDEX"] == "2" and env["MLOPS_INFERENCE_PORT"] == "8001"
    assert env["MLOPS_TELEMETRY_METRICS_PORT"] == "9107" and env["OTHER"] == "x"
    assert worker_env(1, 8001, 0, base={})["MLOPS_TELEMETRY_METRICS_PORT"] == "0"
