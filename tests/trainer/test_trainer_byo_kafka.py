"""Integration: bring your own model end to end on the real broker — `mlops models register` (the CLI as a
process) → the trainer service (a process) checks and scores it → the registry service (a process) gates it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlops.contracts import models_pb2
from mlops.settings import KafkaSettings
from mlops.topics import REGISTRY_LOG
from mlops_tools.procs import free_port
from mlops_tools.registry_client import RegistryClient
from test_trainer_edge_kafka import declare, feed, read_all
from trainer_helpers import ROOT, sea_onnx


def env(kafka: KafkaSettings, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return base | {
        "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "MLOPS_TELEMETRY_METRICS_PORT": "0", "MLOPS_TELEMETRY_LOG_FORMAT": "text",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "libs"), str(ROOT / "tools")]),
    } | extra


@pytest.fixture
def services(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[Path]:
    """The trainer and the registry as processes under the test's prefix (logs in tmp_path)."""
    group, port = uuid.uuid4().hex[:8], free_port()
    extra = {"trainer": {"MLOPS_TRAINER_GROUP_ID": f"trainer-{group}", "MLOPS_TRAINER_LABELS_WITHIN_FEATURES": "false",
                         "MLOPS_TRAINER_CODE_VERSION": "test"},
             "registry": {"MLOPS_REGISTRY_GROUP_ID": f"registry-{group}", "MLOPS_REGISTRY_GRPC_PORT": str(port)}}
    procs = []
    for name, more in extra.items():
        with (tmp_path / f"{name}.log").open("wb") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT,
                                          env=env(kafka_settings, **more), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))
    try:
        RegistryClient(f"127.0.0.1:{port}").wait_ready(60)
        yield tmp_path
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def register(kafka: KafkaSettings, onnx_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlops_tools.cli", "models", "register", "--model", "sea", "--onnx",
                           str(onnx_file), "--wait", "--timeout", "150"], cwd=ROOT, env=env(kafka),
                          capture_output=True, text=True, timeout=200)


def test_a_registered_model_reaches_the_registry_gate_and_a_wrong_one_is_refused(
        kafka_settings: KafkaSettings, services: Path) -> None:
    declare(kafka_settings)
    feed(kafka_settings, 400)
    good, bad = services / "good.onnx", services / "bad.onnx"
    good.write_bytes(sea_onnx())
    bad.write_bytes(sea_onnx(width=4))

    done = register(kafka_settings, bad)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in services.glob("*.log"))
    assert done.returncode == 1, done.stdout + done.stderr + logs
    assert "refused: the ONNX model does not fit model 'sea': input 'features' has 4 columns, the model declares " \
           "6 features" in done.stderr

    done = register(kafka_settings, good)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in services.glob("*.log"))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    assert "checked and scored on 80 holdout rows" in done.stdout
    assert "promoted: sea v" in done.stdout or "rejected: sea v" in done.stdout  # the gate decided, either way
    states = [e for e in read_all(kafka_settings, REGISTRY_LOG, models_pb2.RegistryEvent, 50, 10)
              if e.record_kind == "state"]
    assert [e.candidate.framework for e in states] == ["onnx:byo"]
    assert states[0].candidate.params["registered_by"].startswith("cli:") and states[0].gate_decision
