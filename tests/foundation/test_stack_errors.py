"""`mlops stack up` fails clearly: missing Java or Maven, a port held by someone else, a failed download."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlops_tools.procs import free_port
from mlops_tools.stack import Stack, StackError, StackSettings
from testkit import tool


def _stack(tmp_path: Path, **overrides) -> Stack:
    settings = StackSettings(run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", kafka_port=free_port(),
                             controller_port=free_port(), redis_port=free_port(), **overrides)
    return Stack(settings)


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(StackError, match="java not found: Java 17"):
        _stack(tmp_path).fetch_kafka()


def test_missing_maven_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(Path(subprocess.check_output(["sh", "-c", "command -v java"], text=True).strip()))
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(StackError, match="mvn not found: Maven"):
        _stack(tmp_path).fetch_kafka()


def test_failed_download_says_so(tmp_path: Path) -> None:
    # a version that does not exist on Maven Central: Maven fails, and the error says what failed
    with pytest.raises(StackError, match="downloading the Kafka 0.0.0-nonexistent jars with Maven failed"):
        _stack(tmp_path, kafka_version="0.0.0-nonexistent").fetch_kafka()


def test_port_taken_by_a_stranger(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.s.redis_port))
        squatter.listen()
        with pytest.raises(StackError, match=f"port 127.0.0.1:{stack.s.redis_port} is taken"):
            stack.start_redis()
    assert not stack.redis.pid_file.exists()


def test_cli_exits_non_zero_with_the_message(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "MLOPS_STACK_CACHE_DIR": str(tmp_path / "cache"),
           "MLOPS_STACK_RUN_DIR": str(tmp_path / "run"), "MLOPS_STACK_KAFKA_PORT": str(free_port()),
           "MLOPS_STACK_CONTROLLER_PORT": str(free_port()), "MLOPS_STACK_REDIS_PORT": str(free_port())}
    if "PYTHONPATH" in os.environ:  # a checkout run without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    redis = tool("redis-server")  # installed from Debian when missing, as the stack does
    (tmp_path / "redis-server").symlink_to(redis)
    cli = [sys.executable, "-m", "mlops_tools.cli", "stack"]
    proc = subprocess.run([*cli, "up"], env=env, capture_output=True, text=True, timeout=60)
    subprocess.run([*cli, "down"], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 1
    assert "mlops stack up: java not found" in proc.stderr


def test_storage_formats_with_a_cluster_id_that_starts_with_a_dash(tmp_path: Path) -> None:
    """A URL-safe base64 cluster id starts with "-" once in 64: the format must not take it for an option."""
    scratch = Stack(StackSettings(run_dir=tmp_path))
    scratch.fetch_kafka()  # the broker's jars (cached once per machine); no broker is started
    props = scratch._write_kafka_config()
    scratch.format_storage(props, "-Ab1cD2eF3gH4iJ5kL6mNw")
    meta = (tmp_path / "kafka" / "data" / "meta.properties").read_text()
    assert "cluster.id=-Ab1cD2eF3gH4iJ5kL6mNw" in meta


def test_jvm_options_reach_the_broker_and_the_tools(tmp_path: Path) -> None:
    """MLOPS_STACK_KAFKA_JVM_OPTS is passed to every JVM the stack starts: an option the JVM refuses fails the
    storage format and a Kafka tool, with the JVM's own message."""
    stack = Stack(StackSettings(run_dir=tmp_path, kafka_jvm_opts="-Xss1m -XX:+NoSuchOptionAnywhere"))
    stack.fetch_kafka()
    with pytest.raises(StackError, match="Unrecognized VM option 'NoSuchOptionAnywhere'"):
        stack.format_storage(stack._write_kafka_config(), "Ab1cD2eF3gH4iJ5kL6mNw")
    with pytest.raises(StackError, match="Unrecognized VM option 'NoSuchOptionAnywhere'"):
        stack.kafka_tool("org.apache.kafka.tools.TopicCommand", "--list", timeout=30)
