"""The local stack: a real Apache Kafka 4.x broker (KRaft, jars from Maven Central) and Redis.

One node by default; `--brokers 3` runs a KRaft cluster (stack/nodes.py), `--secure` a SASL_SSL listener with
locally made certificates and credentials (stack/secure.py).

`up` is idempotent: it fetches the broker jars once into a cache folder, formats KRaft storage once, starts what is
not running, waits until each component answers, and creates the topics of the registry. `down` stops only what
`up` started (pids recorded in the run folder). Failures say what is missing and exit non-zero.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlops.settings import KafkaSettings, RedisSettings, settings_config
from mlops.topics import ensure_topics
from pydantic import Field
from pydantic_settings import BaseSettings

from mlops_tools.procs import ManagedProcess, port_open
from mlops_tools.stack import acls
from mlops_tools.stack.install import StackError, apt_install, exclusive, go_tool, require
from mlops_tools.stack.nodes import Layout, Node, server_properties
from mlops_tools.stack.secure import CLIENT_USER, SERVICE_USERS, SecureMaterial

__all__ = ["ComponentStatus", "Stack", "StackError", "StackSettings", "apt_install", "exclusive", "go_tool"]

log = logging.getLogger("mlops_tools.stack")


class StackSettings(BaseSettings):
    model_config = settings_config("MLOPS_STACK_")

    run_dir: Path = Field(Path(".run"), description="Logs, pids and data of the local stack and services.")
    cache_dir: Path = Field(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlops",
        description="Where the Kafka jars are cached between runs.",
    )
    kafka_version: str = Field("4.1.1", description="Apache Kafka broker version fetched from Maven Central.")
    host: str = Field("127.0.0.1", description="Loopback address the broker and Redis listen on.")
    kafka_port: int = Field(9092, description="Broker listener port.")
    controller_port: int = Field(9093, description="KRaft controller listener port.")
    redis_port: int = Field(6379, description="Redis port.")
    prometheus_port: int = Field(9090, description="Prometheus port (`mlops stack up --ops`, `mlops demo`).")
    kafka_heap: str = Field("768m", description="Broker JVM heap (-Xms/-Xmx) of a single-node stack.")
    brokers: int = Field(1, ge=1, le=9, description="Kafka nodes (broker + controller each); 3: replication "
                         "factor 3, min.insync.replicas 2 (`mlops stack up --brokers 3`).")
    secure: bool = Field(False, description="SASL_SSL listener (SCRAM-SHA-512 + mutual TLS) with certificates and "
                         "credentials generated into the run dir (`mlops stack up --secure`).")
    node_port_step: int = Field(100, ge=2, description="Node n listens on kafka_port and controller_port plus "
                                "(n - 1) * this.")
    kafka_node_heap: str = Field("384m", description="JVM heap of each node of a multi-node cluster.")
    kafka_jvm_opts: str = Field("", description="More JVM options for the brokers and Kafka's tools, split on "
                                "spaces (the test suite's own brokers: `-XX:TieredStopAtLevel=1`, tests/conftest.py).")
    start_timeout_s: float = Field(90.0, description="How long to wait for each component to answer.")
    # the ops group (`mlops stack up --ops`): Jaeger v2, built once from the Go module proxy (stack/jaeger.py)
    jaeger_version: str = Field("v1.76.0", description="Jaeger v2 binary (Go module version) built and cached.")
    jaeger_query_port: int = Field(16686, description="Jaeger query HTTP API (/api/traces, /api/services).")
    jaeger_query_grpc_port: int = Field(16685, description="Jaeger query gRPC API.")
    jaeger_max_traces: int = Field(100_000, description="Traces Jaeger's in-memory store keeps (oldest dropped).")
    otlp_grpc_port: int = Field(4317, description="Jaeger's OTLP/gRPC receiver (MLOPS_TELEMETRY_OTLP_ENDPOINT).")
    otlp_http_port: int = Field(4318, description="Jaeger's OTLP/HTTP receiver.")


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # running | stopped | foreign (port held by a process we did not start) | exited
    detail: str


class Stack:
    def __init__(self, settings: StackSettings | None = None, *, brokers: int | None = None,
                 secure: bool | None = None):
        """`brokers` / `secure` (the CLI's flags) win over the layout recorded in the run dir, which wins over the
        settings; a layout that differs from the recorded one is refused by `up` (see `_check_layout`)."""
        self.s = settings or StackSettings()
        self.run_dir = self.s.run_dir.resolve()
        base = Layout.recorded(self.run_dir) or Layout(self.s.brokers, self.s.secure)
        self.layout = Layout(brokers if brokers is not None else base.brokers,
                             secure if secure is not None else base.secure)
        self.nodes = [
            Node(n, "kafka" if n == 1 else f"kafka-{n}", self.s.host,
                 self.s.kafka_port + (n - 1) * self.s.node_port_step,
                 self.s.controller_port + (n - 1) * self.s.node_port_step,
                 self.run_dir / ("kafka" if n == 1 else f"kafka-{n}"))
            for n in range(1, self.layout.brokers + 1)
        ]
        self.node_procs = {node.name: ManagedProcess(node.name, self.run_dir) for node in self.nodes}
        self.kafka = self.node_procs["kafka"]  # node 1
        self.redis = ManagedProcess("redis", self.run_dir)

    @property
    def secure_material(self) -> SecureMaterial | None:
        return SecureMaterial(self.run_dir / "kafka-secure") if self.layout.secure else None

    # -- settings the clients use -------------------------------------------------------------------------------
    def kafka_settings(self, user: str = CLIENT_USER) -> KafkaSettings:
        """What a client of this stack sets: every node's address, the replication factor of its topics, and on a
        secure stack the SASL user (`user`: `mlops`, `admin` or a service's), its password file and the TLS files
        (no secret itself)."""
        secure = self.secure_material
        return KafkaSettings(bootstrap_servers=",".join(node.address for node in self.nodes),
                             replication_factor=self.layout.replication_factor,
                             **(secure.client_settings(user) if secure else {}))  # type: ignore[arg-type]

    def service_user_env(self, service: str) -> dict[str, str]:
        """On a secure stack, the MLOPS_KAFKA_* lines that make `service` act as its own Kafka user (stack/acls.py:
        only the registry may write model.promoted, only the trainer model.artifacts); else nothing."""
        secure = self.secure_material
        if secure is None or service not in SERVICE_USERS:
            return {}
        return {"MLOPS_KAFKA_SASL_USERNAME": service,
                "MLOPS_KAFKA_SASL_PASSWORD_FILE": str(secure.password_file(service))}

    def protect_topics(self, prefix: str) -> None:
        """Keep the protected topics of topic prefix `prefix` to their owners (stack/acls.py; secure stack only)."""
        from mlops.bus import create_acls

        secure = self.secure_material
        if secure is None:
            raise StackError("topic ACLs need the secure stack (`mlops stack up --secure`)")
        create_acls(self._node_settings(secure), acls.protect_acls(prefix))

    def _node_settings(self, secure: SecureMaterial) -> KafkaSettings:
        return self.kafka_settings().model_copy(update=secure.node_settings())

    def _secure_setup(self, secure: SecureMaterial) -> None:
        """The users and ACLs of a secure stack (idempotent): what `start_kafka` ends with."""
        from mlops.bus import create_acls, ensure_scram_users, wait_for_broker

        nodes = self._node_settings(secure)
        wait_for_broker(nodes, timeout=self.s.start_timeout_s, brokers=len(self.nodes))
        created = ensure_scram_users(nodes, secure.client_passwords())
        if created:
            log.info("created Kafka users %s", ", ".join(created))
        create_acls(nodes, acls.base_acls() + acls.protect_acls(KafkaSettings().topic_prefix))

    def redis_settings(self) -> RedisSettings:
        return RedisSettings(url=f"redis://{self.s.host}:{self.s.redis_port}/0")

    # -- Kafka ------------------------------------------------------------------------------------------------------
    @property
    def jar_dir(self) -> Path:
        return self.s.cache_dir.expanduser() / f"kafka-{self.s.kafka_version}" / "libs"

    def fetch_kafka(self) -> Path:
        """Copy the broker's runtime jars from Maven Central into the cache (once)."""
        done = self.jar_dir / ".complete"
        if done.exists():
            return self.jar_dir
        require("java", "Java 17+ is required to run the Kafka 4.x broker (Debian: apt-get install openjdk-17-jre)")
        require("mvn", "Maven is required to fetch the Kafka jars (Debian: apt-get install maven)")
        self.jar_dir.mkdir(parents=True, exist_ok=True)
        pom = resources.files("mlops_tools.stack") / "kafka-pom.xml"
        with resources.as_file(pom) as pom_path:
            cmd = [
                "mvn", "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
                f"-Dkafka.version={self.s.kafka_version}", "-DincludeScope=runtime",
                f"-DoutputDirectory={self.jar_dir}",
            ]
            log.info("fetching Kafka %s jars from Maven Central", self.s.kafka_version)
            proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError(
                f"downloading the Kafka {self.s.kafka_version} jars with Maven failed (exit {proc.returncode}):\n"
                + (proc.stdout + proc.stderr)[-2000:]
            )
        if not list(self.jar_dir.glob("kafka_2.13-*.jar")):
            raise StackError(f"Maven finished but no kafka_2.13 jar is in {self.jar_dir}")
        done.touch()
        return self.jar_dir

    def _kafka_dir(self, node: Node | None = None) -> Path:
        return (node or self.nodes[0]).folder

    def _write_kafka_config(self, node: Node | None = None) -> Path:
        node = node or self.nodes[0]
        kdir = node.folder
        kdir.mkdir(parents=True, exist_ok=True)
        props = kdir / "server.properties"
        text = server_properties(node, self.nodes, self.layout, self.kafka_settings().max_message_bytes,
                                 self.secure_material)
        # a secure node's config holds its users' passwords: readable by the owner only
        props.touch(mode=0o600)
        props.chmod(0o600)
        props.write_text(text)
        log4j = kdir / "log4j2.properties"
        log4j.write_text((resources.files("mlops_tools.stack") / "log4j2.properties").read_text())
        return props

    def _java_cmd(self, main: str, *args: str, heap: str | None = None, node: Node | None = None) -> list[str]:
        kdir = self._kafka_dir(node)
        cmd = ["java", *self.s.kafka_jvm_opts.split()]
        if heap:
            cmd += [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
        cmd += [
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={kdir / 'logs'}",
            f"-Dlog4j2.configurationFile={kdir / 'log4j2.properties'}",
            "-cp", f"{self.jar_dir}/*", main, *args,
        ]
        return cmd

    def format_storage(self, props: Path, cluster_id: str, node: Node | None = None) -> None:
        """Format KRaft storage once, for a new cluster id (all nodes of a cluster share it)."""
        secure = self.secure_material
        fmt = subprocess.run(
            # `--cluster-id=ID` in one word: a URL-safe base64 id may start with "-", which the tool's argument
            # parser would take for an option (it did, once in 64 formats)
            self._java_cmd("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props),
                           "-g", *(["--standalone"] if len(self.nodes) == 1 else []),
                           *(secure.scram_users() if secure else []), node=node),
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            output = secure.redact(fmt.stdout + fmt.stderr) if secure else fmt.stdout + fmt.stderr
            raise StackError(f"formatting KRaft storage failed:\n{output[-2000:]}")

    def _check_layout(self) -> None:
        """Refuse to start a layout other than the one the run dir's data was formatted with."""
        recorded = Layout.recorded(self.run_dir)
        formatted = any((node.folder / "data" / "meta.properties").exists() for node in self.nodes)
        if recorded is not None and recorded != self.layout and (formatted or self.kafka.running()):
            raise StackError(
                f"{self.run_dir} holds a {recorded.describe()}, not a {self.layout.describe()}: run `mlops stack "
                "down --wipe` first, or use another MLOPS_STACK_RUN_DIR"
            )
        if recorded is None and formatted and self.layout != Layout():
            raise StackError(f"{self.run_dir} holds a single-node PLAINTEXT broker's data: run `mlops stack down "
                             "--wipe` first, or use another MLOPS_STACK_RUN_DIR")

    def start_kafka(self) -> str:
        """Start every node that is not running (a killed node of a cluster rejoins); wait until all answer."""
        self._check_layout()
        pending = [node for node in self.nodes
                   if not (self.node_procs[node.name].running() and port_open(node.host, node.port))]
        if not pending:
            return "already running"
        for node in pending:
            for port in (node.port, node.controller_port):
                if port_open(node.host, port):
                    raise StackError(
                        f"port {node.host}:{port} is taken by a process this stack did not start; stop it or set "
                        "MLOPS_STACK_KAFKA_PORT / MLOPS_STACK_CONTROLLER_PORT (and MLOPS_KAFKA_BOOTSTRAP_SERVERS)"
                    )
        self.fetch_kafka()
        if self.secure_material is not None:
            self.secure_material.create(self.s.host)
        self.layout.record(self.run_dir)
        cluster_id = _cluster_id(self.nodes)
        heap = self.s.kafka_heap if len(self.nodes) == 1 else self.s.kafka_node_heap
        for node in pending:
            props = self._write_kafka_config(node)
            if not (node.folder / "data" / "meta.properties").exists():
                self.format_storage(props, cluster_id, node)
            self.node_procs[node.name].start(self._java_cmd("kafka.Kafka", str(props), heap=heap, node=node))
        for node in pending:
            self._wait(node.name, self.node_procs[node.name], node.port)
        if self.secure_material is not None:
            self._secure_setup(self.secure_material)
        return "started"

    def kafka_tool(self, main_class: str, *args: str, timeout: float = 60.0) -> str:
        """Run one of the broker's own admin CLIs (e.g. org.apache.kafka.tools.TopicCommand) against the local
        broker; returns its output, raises StackError on failure."""
        secure = self.secure_material
        proc = subprocess.run(
            ["java", *self.s.kafka_jvm_opts.split(), "-cp", f"{self.jar_dir}/*", "-Dlog4j2.level=WARN", main_class,
             "--bootstrap-server", ",".join(node.address for node in self.nodes),
             *(["--command-config", str(secure.client_properties)] if secure else []), *args],
            capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise StackError(f"{main_class} failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
        return proc.stdout

    # -- Redis ------------------------------------------------------------------------------------------------------
    def start_redis(self) -> str:
        if self.redis.running() and port_open(self.s.host, self.s.redis_port):
            return "already running"
        if port_open(self.s.host, self.s.redis_port):
            raise StackError(
                f"port {self.s.host}:{self.s.redis_port} is taken by a process this stack did not start; stop it "
                "or set MLOPS_STACK_REDIS_PORT (and MLOPS_REDIS_URL)"
            )
        server = shutil.which("redis-server") or apt_install("redis-server", "redis-server")
        rdir = self.run_dir / "redis"
        rdir.mkdir(parents=True, exist_ok=True)
        self.redis.start(
            [server, "--bind", self.s.host, "--port", str(self.s.redis_port), "--dir", str(rdir),
             # persistence on: a restarted Redis comes back with its views (AOF, fsync each second; the features
             # service still rebuilds from features.log when they are gone)
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
             "--protected-mode", "yes", "--daemonize", "no",
             "--pidfile", str(rdir / "redis-server.pid")]
        )
        self._wait("redis", self.redis, self.s.redis_port)
        return "started"

    # -- all --------------------------------------------------------------------------------------------------------
    def up(self, ops: bool = False) -> dict[str, str]:
        """Start Redis and Kafka (idempotent) and create the registry's topics; with `ops`, also the operators'
        tools (Jaeger). Two at once on one run folder take turns: the second finds it all running."""
        with exclusive("stack-up", self.run_dir):
            return self._up(ops)

    def _up(self, ops: bool) -> dict[str, str]:
        result = {"redis": self.start_redis(), "kafka": self.start_kafka()}
        if self.layout != Layout():
            result["layout"] = f"{self.layout.describe()}: {self.kafka_settings().bootstrap_servers}"
        if ops:
            from mlops_tools.stack import jaeger

            result["jaeger"] = jaeger.start(self)
        from mlops.bus import wait_for_broker

        settings = self.kafka_settings()
        wait_for_broker(settings, timeout=self.s.start_timeout_s, brokers=len(self.nodes))
        created = ensure_topics(settings)
        result["topics"] = f"created {len(created)}" if created else "all present"
        return result

    def down(self, wipe: bool = False) -> dict[str, str]:
        """Stop what `up` started (every node); with `wipe`, also delete the nodes' log dirs (every topic and
        offset) and a secure stack's credentials (its SCRAM users live in those logs)."""
        result = {name: ("stopped" if proc.stop() else "was not running")
                  for name, proc in [*self.node_procs.items(), ("redis", self.redis)]}
        from mlops_tools.stack import jaeger

        result["jaeger"] = jaeger.stop(self)
        if wipe:
            for node in self.nodes:
                shutil.rmtree(node.folder / "data", ignore_errors=True)
            shutil.rmtree(self.run_dir / "kafka-secure", ignore_errors=True)
            (self.run_dir / "kafka-layout.json").unlink(missing_ok=True)
            result["data"] = f"wiped {', '.join(str(node.folder / 'data') for node in self.nodes)}"
        return result

    def status(self) -> list[ComponentStatus]:
        out = []
        listeners = [(node.name, self.node_procs[node.name], node.port) for node in self.nodes]
        for name, proc, port in [*listeners, ("redis", self.redis, self.s.redis_port)]:
            pid, listening = proc.pid(), port_open(self.s.host, port)
            protocol = (" SASL_SSL" if self.layout.secure else "") if name.startswith("kafka") else ""
            if pid and listening:
                out.append(ComponentStatus(name, "running", f"pid {pid}, {self.s.host}:{port}{protocol}"))
            elif listening:
                out.append(ComponentStatus(name, "foreign", f"{self.s.host}:{port} held by a process we did not start"))
            elif pid:
                out.append(ComponentStatus(name, "starting", f"pid {pid}, {self.s.host}:{port} not answering yet"))
            else:
                out.append(ComponentStatus(name, "stopped", f"log: {proc.log_file}"))
        from mlops_tools.stack import jaeger

        ops = jaeger.status(self)  # an ops component is listed once this stack started it (`up --ops`)
        return out if ops.state in ("stopped", "foreign") else [*out, ops]

    def _wait(self, name: str, proc: ManagedProcess, port: int) -> None:
        deadline = time.monotonic() + self.s.start_timeout_s
        while time.monotonic() < deadline:
            if port_open(self.s.host, port):
                return
            if proc.exited_early():
                raise StackError(f"{name} exited during start-up; last log lines:\n{proc.log_tail()}")
            time.sleep(0.25)
        raise StackError(f"{name} did not answer on {self.s.host}:{port} within {self.s.start_timeout_s}s:\n"
                         f"{proc.log_tail()}")


def _cluster_id(nodes: list[Node]) -> str:
    """The cluster id a formatted node already has (a wiped node rejoins its cluster), else a new one."""
    for node in nodes:
        meta = node.folder / "data" / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.partition("=")[2].strip()
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
