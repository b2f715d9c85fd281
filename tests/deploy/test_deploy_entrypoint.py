"""The container contract, without a container: the image's ENTRYPOINT (`python -m services NAME`) started with a
deployment-style environment becomes ready (as the image's health check sees it) and stops cleanly on SIGTERM
(what `docker stop` and Kubernetes send). Runs against the real local Kafka and Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, dockerfile_instructions
from mlops.settings import KafkaSettings, RedisSettings
from mlops_tools.cli.services_cmd import SERVICES
from mlops_tools.procs import free_port
from testkit import wait_until

HELPER = DEPLOY / "docker" / "healthcheck.py"
# the image's ENTRYPOINT, with this interpreter in place of the image's `python`
ENTRYPOINT = [sys.executable if word == "python" else word
              for word in json.loads(next(a for i, a in dockerfile_instructions() if i == "ENTRYPOINT"))]
# generous deadlines for conditions, not performance targets (a 2-core machine shared with the broker)
READY_WITHIN_S = 180.0
STOP_WITHIN_S = 60.0


def deployment_env(kafka: KafkaSettings, redis: RedisSettings, metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return env | {
        "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "MLOPS_REDIS_URL": redis.url,
        "MLOPS_REDIS_KEY_PREFIX": redis.key_prefix,
        "MLOPS_TELEMETRY_EXPORTER": "none",
        "MLOPS_TELEMETRY_LOG_FORMAT": "json",
        "MLOPS_TELEMETRY_METRICS_PORT": str(metrics_port),
    }


def healthcheck(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HELPER), *args], capture_output=True, text=True, timeout=15, env=env
    )


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_becomes_ready_and_stops_on_sigterm(
    service: str, kafka_settings: KafkaSettings, redis_settings: RedisSettings, tmp_path: Path
) -> None:
    env = deployment_env(kafka_settings, redis_settings, free_port())
    group = f"deploy-{uuid.uuid4().hex[:8]}"
    grpc_port = free_port()
    env |= {
        "ingest": {"MLOPS_INGEST_GROUP_ID": group},
        "features": {"MLOPS_FEATURES_APP_ID": f"{kafka_settings.topic_prefix}features",
                     "MLOPS_FEATURES_DATA_DIR": str(tmp_path / "features")},
        "trainer": {"MLOPS_TRAINER_GROUP_ID": group},
        "registry": {
            "MLOPS_REGISTRY_GROUP_ID": group,
            "MLOPS_REGISTRY_GRPC_HOST": "127.0.0.1",
            "MLOPS_REGISTRY_GRPC_PORT": str(grpc_port),
        },
        "inference": {
            "MLOPS_INFERENCE_HOST": "127.0.0.1",
            "MLOPS_INFERENCE_PORT": str(grpc_port),
            "MLOPS_INFERENCE_REST_PORT": "0",
            "MLOPS_INFERENCE_USE_CUDA": "false",
        },
        "monitor": {"MLOPS_MONITOR_GROUP_ID": group},
        "console": {"MLOPS_CONSOLE_HOST": "127.0.0.1", "MLOPS_CONSOLE_PORT": str(grpc_port)},
    }[service]
    log = (tmp_path / f"{service}.log").open("w+")
    proc = subprocess.Popen(
        [*ENTRYPOINT, service], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # inference is ready (and /readyz says 200) only with a model loaded: without one it must be alive, and its
        # gRPC health service (compose's check) must answer NOT_SERVING on the configured port
        probe = ["http-env", "/healthz"] if service == "inference" else ["http-env"]
        checks = [healthcheck(*probe, env=env)]
        wait_until(lambda: checks[-1].returncode == 0 or proc.poll() is not None
                   or bool(checks.append(healthcheck(*probe, env=env))), timeout=READY_WITHIN_S, interval=0.5)
        check = checks[-1]
        log.seek(0)
        assert check.returncode == 0, f"{service} not ready: {check.stdout}{check.stderr}\n{log.read()[-3000:]}"
        assert healthcheck("http-env", "/healthz", env=env).returncode == 0
        if service == "inference":
            # the ops endpoint answers first; the gRPC port opens once the server has started
            grpc_checks = [healthcheck("grpc", f"127.0.0.1:{grpc_port}", env=env)]
            wait_until(lambda: "UNAVAILABLE" not in grpc_checks[-1].stdout or proc.poll() is not None
                       or bool(grpc_checks.append(healthcheck("grpc", f"127.0.0.1:{grpc_port}", env=env))),
                       timeout=READY_WITHIN_S, interval=0.5)
            grpc_check = grpc_checks[-1]
            assert grpc_check.returncode == 1 and "NOT_SERVING" in grpc_check.stdout, grpc_check.stdout
            assert healthcheck("http-env", "/readyz", env=env).returncode == 1
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STOP_WITHIN_S)
        log.seek(0)
        assert code == 0, f"{service} exited {code} on SIGTERM:\n{log.read()[-3000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_entrypoint_names_every_service_when_given_another() -> None:
    for argv in ([], ["nope"]):
        proc = subprocess.run([*ENTRYPOINT, *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert "run one of: " + ", ".join(sorted(SERVICES)) in proc.stderr, proc.stderr
