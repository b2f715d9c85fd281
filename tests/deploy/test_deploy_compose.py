"""compose.yaml, Dockerfile and .dockerignore, checked without a container engine.

The schema check is the Compose Specification's own JSON schema as vendored by check-jsonschema
(`--builtin-schema vendor.compose-spec`, offline); the other tests check what a schema cannot know: that each
service runs the right command, is health-checked on its own ops port and starts after its dependencies.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import COMPOSE, GRPC_PORTS, HTTP_PORTS, OPS_PORTS, ROOT, dockerfile_instructions, load_yaml
from mlops_tools.cli.services_cmd import SERVICES


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    proc = check_compose_schema(COMPOSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validation done" in proc.stdout


def test_compose_schema_check_rejects_a_misspelt_key(tmp_path: Path) -> None:
    # the validator must bite: a typo inside a service (here in the shared anchor) fails validation
    text = COMPOSE.read_text()
    assert "  stop_grace_period: 30s\n" in text
    bad = tmp_path / "compose.yaml"
    bad.write_text(text.replace("  stop_grace_period: 30s\n", "  stop_grace_periode: 30s\n", 1))
    proc = check_compose_schema(bad)
    assert proc.returncode != 0
    assert "stop_grace_periode" in proc.stdout + proc.stderr


def test_compose_runs_each_service_from_the_repository_image(compose: dict) -> None:
    services = compose["services"]
    assert set(SERVICES) <= set(services), f"missing: {set(SERVICES) - set(services)}"
    for name in SERVICES:
        svc = services[name]
        assert svc["build"]["context"] == "." and svc["build"]["dockerfile"] == "Dockerfile", name
        assert svc["command"] == [name], f"{name} must run `python -m services {name}`"
        assert "entrypoint" not in svc, f"{name} must keep the image's `python -m services` entrypoint"
        env = svc["environment"]
        assert env["MLOPS_TELEMETRY_METRICS_PORT"] == str(OPS_PORTS[name]), name
        assert env["MLOPS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert env["MLOPS_REDIS_URL"].startswith("redis://redis:"), name
        assert env["MLOPS_TELEMETRY_OTLP_ENDPOINT"] == "http://jaeger:4317", name


def test_compose_health_checks_probe_each_service_s_own_endpoint(compose: dict) -> None:
    for name in SERVICES:
        check = compose["services"][name]["healthcheck"]
        test = check["test"]
        assert test[0] == "CMD" and test[1] == "mlops-healthcheck", (name, test)
        if name == "inference":
            assert test[2:] == ["grpc", f"127.0.0.1:{GRPC_PORTS['inference']}"]
        else:
            assert test[2:] == ["http", f"http://127.0.0.1:{OPS_PORTS[name]}/readyz"], (name, test)
        assert check["start_period"] and check["retries"] >= 3, name


def test_compose_starts_services_after_their_dependencies(compose: dict) -> None:
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:") and not kafka["image"].endswith(":latest")
    assert "KAFKA_PROCESS_ROLES" in kafka["environment"], "single-node KRaft (broker + controller)"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in SERVICES:
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["topics"]["condition"] == "service_completed_successfully", name
        assert "jaeger" in deps, name
    # the broker's record limit is the clients' (MLOPS_KAFKA_MAX_MESSAGE_BYTES)
    assert (
        kafka["environment"]["KAFKA_MESSAGE_MAX_BYTES"]
        == services["ingest"]["environment"]["MLOPS_KAFKA_MAX_MESSAGE_BYTES"]
    )


def test_compose_publishes_the_apis_but_no_ops_port(compose: dict) -> None:
    for name in SERVICES:
        published = [str(p) for p in compose["services"][name].get("ports", [])]
        api_ports = [p for p in (GRPC_PORTS.get(name), HTTP_PORTS.get(name)) if p]
        if api_ports:
            assert published == [f"{p}:{p}" for p in api_ports], name
        else:
            assert published == [], f"{name}: a published port would break `--scale {name}=N`"


# ---- Dockerfile / .dockerignore -------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_pinned_non_root_and_runs_a_service() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    froms = [a for i, a in instructions if i == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    user = [a for i, a in instructions if i == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0"), user
    assert [a for i, a in instructions if i == "ENTRYPOINT"] == ['["python", "-m", "services"]']
    assert any(i == "RUN" and "pip install ." in a for i, a in instructions), "installs the project from pyproject"
    # the runtime stage copies the built environment, not the build tools
    runtime = instructions[[n for n, (i, _) in enumerate(instructions) if i == "FROM"][-1] :]
    assert any(i == "COPY" and "--from=build" in a for i, a in runtime)
    assert not any(i == "RUN" and "pip install" in a for i, a in runtime)


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    ignore = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert ignore[0] == "**", "deny by default"
    allowed = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    copied = []
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY" and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            copied += [s.rstrip("/") for s in sources]
    assert copied, "the Dockerfile copies something"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        assert source in allowed, f"COPY {source} is excluded by .dockerignore"
