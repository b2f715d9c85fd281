"""Integration: `mlops stack down` stops only what its own `up` started, and `--wipe` deletes the broker's data.

A second stack runs from its own run folder on its own ports (the shared stack the suite uses is never touched:
the test checks it is still running afterwards, same pids). A decoy process whose pid is written into that stack's
pid file without the matching start time (as after a reboot, when the pid was reused) must survive `down`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from mlops_tools.procs import free_port, port_open
from mlops_tools.stack import Stack, StackSettings
from testkit import process_alive, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlops_tools.cli", "stack", *args], env=env, capture_output=True,
                          text=True, timeout=300)



def test_down_stops_only_its_own_processes_and_wipe_deletes_the_data(stack: Stack, tmp_path: Path) -> None:
    shared = {"kafka": stack.kafka.pid(), "redis": stack.redis.pid()}
    assert all(shared.values()), "the shared stack is expected to run (the session fixture started it)"
    ports = {"KAFKA_PORT": free_port(), "CONTROLLER_PORT": free_port(), "REDIS_PORT": free_port()}
    env = {**os.environ, "MLOPS_STACK_RUN_DIR": str(tmp_path / "run"), "MLOPS_STACK_KAFKA_HEAP": "256m"} | {
        f"MLOPS_STACK_{k}": str(v) for k, v in ports.items()}
    mine = Stack(StackSettings(run_dir=tmp_path / "run", kafka_port=ports["KAFKA_PORT"],
                               controller_port=ports["CONTROLLER_PORT"], redis_port=ports["REDIS_PORT"]))
    decoy = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        up = _cli(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        pids = {"kafka": mine.kafka.pid(), "redis": mine.redis.pid()}
        assert all(pids.values()) and set(pids.values()).isdisjoint(shared.values())
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports['KAFKA_PORT']}", "log_level": 0})
        [created] = admin.create_topics([NewTopic("wipe.probe", 1, 1)]).values()
        created.result(30)

        down = _cli(env, "down")
        assert down.returncode == 0 and "kafka    stopped" in down.stdout and "redis    stopped" in down.stdout, (
            down.stdout + down.stderr)
        assert not any(process_alive(pid) for pid in pids.values())
        assert not port_open("127.0.0.1", ports["KAFKA_PORT"]) and not port_open("127.0.0.1", ports["REDIS_PORT"])
        # the shared stack: the same processes, still answering
        assert {"kafka": stack.kafka.pid(), "redis": stack.redis.pid()} == shared
        assert port_open(stack.s.host, stack.s.kafka_port) and port_open(stack.s.host, stack.s.redis_port)

        # a recorded pid whose start time does not match is somebody else's process: left alone
        mine.kafka.pid_file.write_text(f"{decoy.pid} 1\n")
        again = _cli(env, "down")
        assert again.returncode == 0 and "kafka    was not running" in again.stdout, again.stdout
        assert decoy.poll() is None and process_alive(decoy.pid)

        # without --wipe the broker keeps its topics across a restart; with --wipe they are gone
        data = tmp_path / "run" / "kafka" / "data"
        assert (data / "meta.properties").exists()
        assert _cli(env, "up").returncode == 0
        wait_until(lambda: "wipe.probe" in admin.list_topics(timeout=10).topics, timeout=60)
        wiped = _cli(env, "down", "--wipe")
        assert wiped.returncode == 0 and f"wiped {data}" in wiped.stdout, wiped.stdout
        assert not data.exists()
        assert _cli(env, "up").returncode == 0  # formats fresh storage
        fresh = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports['KAFKA_PORT']}", "log_level": 0})
        topics = fresh.list_topics(timeout=10).topics
        assert "wipe.probe" not in topics and "registry.log" in topics  # `up` made the registry's topics again
    finally:
        mine.down(wipe=True)
        decoy.send_signal(signal.SIGKILL)
        decoy.wait(10)
    assert {"kafka": stack.kafka.pid(), "redis": stack.redis.pid()} == shared
