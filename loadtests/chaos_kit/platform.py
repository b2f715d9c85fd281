"""The platform under test: its own Kafka + Redis (the project's `Stack`, in a run folder of its own and on free
ports, so a chaos run never touches a stack anyone else uses) and the six services as real processes
(`python -m services.NAME`, like `mlops up`), each killable with SIGKILL and restartable with the same settings.

Services reach Redis through a `LatencyProxy` (slow-Redis scenario); everything else is direct. Every process is
started here and stopped by `close()`; nothing that this object did not start is ever signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mlops.settings import KafkaSettings, RedisSettings
from mlops_tools.cli.services_cmd import replica_env
from mlops_tools.procs import ManagedProcess, free_port, port_open
from mlops_tools.stack import Stack, StackSettings
from mlops_tools.stack.secure import ADMIN_USER

from chaos_kit.proxy import LatencyProxy

__all__ = ["SERVICES", "Platform"]

SERVICES = ("ingest", "features", "trainer", "registry", "inference", "monitor")
PREFIX = "chaos."
NODE_PORT_STEP = 100  # the stack's node_port_step default: node n listens on the ports + (n - 1) * 100


def _free_ports(nodes: int) -> int:
    """A free port p with p + k * NODE_PORT_STEP free too for every other node k of a cluster."""
    while True:
        port = free_port()
        if nodes == 1 or all(not port_open("127.0.0.1", port + k * NODE_PORT_STEP) and
                             port + k * NODE_PORT_STEP < 32_768 for k in range(1, nodes)):
            return port


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:  # noqa: S310 (loopback)
            return bool(resp.status == 200)
    except Exception:
        return False


class Platform:
    def __init__(self, work_dir: Path, say: Callable[[str], None] = print, brokers: int = 1, secure: bool = False):
        """`secure`: the stack's SASL_SSL listener (`mlops stack up --secure`), each service as its own Kafka user
        under the broker's ACLs (mlops_tools/stack/acls.py), the definitions applied as the admin."""
        self.work_dir = work_dir.resolve()
        self.say = say
        self.brokers = brokers
        stack_options: dict[str, object] = {
            "run_dir": self.work_dir / "stack", "kafka_port": _free_ports(brokers), "controller_port":
            _free_ports(brokers), "redis_port": free_port(),
            # a node killed -9 recovers its logs on restart: minutes, with three JVMs on a loaded machine
            "start_timeout_s": 300.0}
        if brokers > 1:  # a KRaft cluster (`mlops stack up --brokers N`: node n on the ports + (n - 1) * 100)
            if "brokers" not in StackSettings.model_fields:
                raise RuntimeError("this stack runs one broker only (no `mlops stack up --brokers` yet)")
            stack_options["brokers"] = brokers
        self.stack = Stack(StackSettings(**stack_options), secure=secure)  # type: ignore[arg-type]
        self.kafka = self.stack.kafka_settings().model_copy(update={"topic_prefix": PREFIX})
        self.admin_kafka = self.stack.kafka_settings(ADMIN_USER).model_copy(update={"topic_prefix": PREFIX})
        self.redis_direct = RedisSettings(url=self.stack.redis_settings().url, key_prefix="chaos")
        self.proxy = LatencyProxy(self.stack.s.host, self.stack.s.redis_port)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, ManagedProcess] = {}
        self.restarts: dict[str, int] = {}
        self.extra_env: dict[str, dict[str, str]] = {}  # service key → settings a scenario added (kept on restart)

    # --- up / down ------------------------------------------------------------------------------------------------
    def up(self, ready_timeout_s: float = 180.0) -> None:
        from mlops.topics import ensure_topics
        from mlops_tools.examples import apply_definitions, definitions_path

        t0 = time.monotonic()
        self.say(f"chaos: own stack in {self.stack.run_dir} (Kafka {self.stack.s.kafka_port}, "
                 f"Redis {self.stack.s.redis_port})")
        self.stack.up()
        if self.stack.layout.secure:
            self.stack.protect_topics(PREFIX)
        proxy_port = self.proxy.start()
        self.redis = self.redis_direct.model_copy(update={"url": f"redis://127.0.0.1:{proxy_port}/0"})
        ensure_topics(self.kafka)
        apply_definitions(self.admin_kafka, definitions_path("sea"), applied_by="mlops-chaos")
        self.ports = {"inference": free_port(), "registry": free_port(), "rest": free_port()}
        for name in SERVICES:
            self.start(name)
        self.wait_ready(SERVICES, ready_timeout_s)
        self.say(f"chaos: stack and six services ready in {time.monotonic() - t0:.0f}s")

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop(timeout=10)
        self.procs.clear()
        self.proxy.stop()
        self.stack.down()

    # --- services -------------------------------------------------------------------------------------------------
    def env(self, name: str, instance: str = "") -> dict[str, str]:
        key = f"{name}{instance}"
        self.ports.setdefault(f"ops-{key}", free_port())
        common = {
            **self.kafka.environ(),  # address, prefix, replication; on a secure stack its TLS files and SASL user
            **self.stack.service_user_env(name),  # … the service's own user there
            "MLOPS_REDIS_URL": self.redis.url,
            "MLOPS_REDIS_KEY_PREFIX": self.redis.key_prefix,
            "MLOPS_TELEMETRY_EXPORTER": "none",
            "MLOPS_TELEMETRY_LOG_FORMAT": "text",
            "MLOPS_TELEMETRY_METRICS_PORT": str(self.ports[f"ops-{key}"]),
        }
        per = {
            "ingest": {"MLOPS_INGEST_GROUP_ID": "chaos-ingest"},
            "features": {"MLOPS_FEATURES_APP_ID": f"{PREFIX}features",
                         "MLOPS_FEATURES_DATA_DIR": str(self.work_dir / f"faust{instance}")},
            "trainer": {"MLOPS_TRAINER_GROUP_ID": "chaos-trainer", "MLOPS_TRAINER_MAX_ITER": "30",
                        "MLOPS_TRAINER_LABELS_WITHIN_FEATURES": "true"},
            "registry": {"MLOPS_REGISTRY_GROUP_ID": "chaos-registry", "MLOPS_REGISTRY_GRPC_HOST": "127.0.0.1",
                         "MLOPS_REGISTRY_GRPC_PORT": str(self.ports["registry"])},
            "inference": {"MLOPS_INFERENCE_HOST": "127.0.0.1", "MLOPS_INFERENCE_PORT": str(self.ports["inference"]),
                          "MLOPS_INFERENCE_REST_PORT": str(self.ports["rest"]), "MLOPS_INFERENCE_USE_CUDA": "false"},
            # no drift is injected: the monitor must not ask for retrains the scenarios did not
            "monitor": {"MLOPS_MONITOR_GROUP_ID": "chaos-monitor"},
        }
        return common | per[name] | self.extra_env.get(key, {})

    def start(self, name: str, instance: str = "") -> ManagedProcess:
        """Start service `name` (a second instance of it with `instance`, e.g. "-2": same group, own ports)."""
        import sys

        key = f"{name}{instance}"
        proc = ManagedProcess(f"svc-{key}", self.work_dir / "services")
        # as `mlops up` starts it (features a static group member), then what the scenario changed
        env = replica_env(name, proc) | self.env(name, instance)
        proc.start([sys.executable, "-m", f"services.{name}"], env=env)
        self.procs[key] = proc
        return proc

    def kill(self, key: str) -> None:
        """SIGKILL the service's whole process group (a crash: no flush, no commit, no goodbye)."""
        pid = self.procs[key].pid()
        if pid is None:
            raise RuntimeError(f"{key} is not running; log:\n{self.procs[key].log_tail()}")
        os.killpg(pid, signal.SIGKILL)
        while self.procs[key].pid() is not None:
            time.sleep(0.02)

    def restart(self, key: str) -> float:
        """Start the killed service again with the same settings; returns the wall-clock time of the start."""
        name, _, instance = key.partition("-")
        started = time.time()
        self.start(name, f"-{instance}" if instance else "")
        self.restarts[key] = self.restarts.get(key, 0) + 1
        return started

    def stop(self, key: str) -> None:
        self.procs.pop(key).stop(timeout=20)

    def alive(self, key: str) -> bool:
        return self.procs[key].running()

    def pid(self, key: str) -> int | None:
        return self.procs[key].pid()

    def ready(self, key: str) -> bool:
        path = "healthz" if key.startswith("inference") else "readyz"
        return _http_ok(f"http://127.0.0.1:{self.ports[f'ops-{key}']}/{path}")

    def wait_ready(self, keys: tuple[str, ...] | list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = list(keys)
        while waiting:
            for key in list(waiting):
                if self.procs[key].exited_early():
                    raise RuntimeError(f"{key} exited at start; log:\n{self.procs[key].log_tail(30)}")
                if self.ready(key):
                    waiting.remove(key)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout_s:.0f}s: {waiting}")
            time.sleep(0.3)

    def log_count(self, text: str) -> int:
        """Lines holding `text` in every service log of this platform (e.g. faust's "Crashed reason")."""
        logs = (self.work_dir / "services" / "logs").glob("*.log")
        return sum(line.count(text) for path in logs for line in path.read_text(errors="replace").splitlines())

    def log_tail(self, key: str, lines: int = 30) -> str:
        return self.procs[key].log_tail(lines)

    # --- the broker and Redis -------------------------------------------------------------------------------------
    def kill_broker(self, node: int = 1) -> None:
        """SIGKILL broker `node` (1: the only one of a one-broker stack)."""
        procs = getattr(self.stack, "node_procs", None)  # a stack with --brokers keeps one process per node
        proc = procs["kafka" if node == 1 else f"kafka-{node}"] if procs else self.stack.kafka
        port = self.stack.s.kafka_port + (node - 1) * NODE_PORT_STEP
        pid = proc.pid()
        assert pid is not None, f"broker {node} of the chaos stack is not running"
        os.killpg(pid, signal.SIGKILL)
        while proc.pid() is not None or port_open(self.stack.s.host, port):
            time.sleep(0.05)

    def leader_of(self, topic: str, partition: int) -> int:
        """The node id leading `partition` of the platform's topic `topic` (e.g. "events")."""
        from confluent_kafka.admin import AdminClient

        name = f"{self.kafka.topic_prefix}{topic}"
        meta = AdminClient(self.kafka.client_config()).list_topics(name, timeout=10).topics[name]
        return int(meta.partitions[partition].leader)

    def fully_in_sync(self) -> bool:
        """Every partition of the cluster has all its replicas in sync (a restarted node has caught up)."""
        from confluent_kafka.admin import AdminClient

        try:
            topics = AdminClient(self.kafka.client_config()).list_topics(timeout=5).topics
        except Exception:
            return False
        return all(len(part.isrs) == len(part.replicas) for meta in topics.values()
                   for part in meta.partitions.values())

    def start_broker(self) -> float:
        """Start what of the broker(s) is not running; returns when it began (it returns once they answer)."""
        started = time.time()
        self.stack.start_kafka()
        return started

    def kill_redis(self, wipe: bool = False) -> None:
        """SIGKILL Redis; with `wipe`, also delete its files (the data is lost, as on a new node)."""
        pid = self.stack.redis.pid()
        assert pid is not None, "the chaos stack's Redis is not running"
        os.killpg(pid, signal.SIGKILL)
        while self.stack.redis.pid() is not None:
            time.sleep(0.02)
        if wipe:
            rdir = self.stack.run_dir / "redis"
            for path in rdir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.suffix in (".aof", ".rdb") or path.name.startswith("appendonly"):
                    path.unlink()

    def start_redis(self) -> float:
        started = time.time()
        self.stack.start_redis()
        return started

    def kafka_settings(self) -> KafkaSettings:
        return self.kafka
