"""The local stack: a real Apache Kafka 4.x broker (KRaft, single node, jars from Maven Central) and Redis.

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
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlops.errors import MlopsError
from mlops.settings import KafkaSettings, RedisSettings, settings_config
from mlops.topics import ensure_topics
from pydantic import Field
from pydantic_settings import BaseSettings

from mlops_tools.procs import ManagedProcess, port_open

__all__ = ["ComponentStatus", "Stack", "StackError", "StackSettings", "apt_install", "go_tool"]

log = logging.getLogger("mlops_tools.stack")


class StackError(MlopsError):
    """The stack could not be brought up; the message says what to do."""


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
    kafka_heap: str = Field("768m", description="Broker JVM heap (-Xms/-Xmx).")
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
    def __init__(self, settings: StackSettings | None = None):
        self.s = settings or StackSettings()
        self.run_dir = self.s.run_dir.resolve()
        self.kafka = ManagedProcess("kafka", self.run_dir)
        self.redis = ManagedProcess("redis", self.run_dir)

    # -- settings the clients use -------------------------------------------------------------------------------
    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=f"{self.s.host}:{self.s.kafka_port}")

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
        _require("java", "Java 17+ is required to run the Kafka 4.x broker (Debian: apt-get install openjdk-17-jre)")
        _require("mvn", "Maven is required to fetch the Kafka jars (Debian: apt-get install maven)")
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

    def _kafka_dir(self) -> Path:
        return self.run_dir / "kafka"

    def _write_kafka_config(self) -> Path:
        kdir = self._kafka_dir()
        kdir.mkdir(parents=True, exist_ok=True)
        h, kp, cp = self.s.host, self.s.kafka_port, self.s.controller_port
        props = kdir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={h}:{cp}",
                    f"listeners=PLAINTEXT://{h}:{kp},CONTROLLER://{h}:{cp}",
                    f"advertised.listeners=PLAINTEXT://{h}:{kp}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={kdir / 'data'}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    f"message.max.bytes={self.kafka_settings().max_message_bytes}",
                    f"replica.fetch.max.bytes={self.kafka_settings().max_message_bytes}",
                    "log.cleaner.backoff.ms=1000",
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )
        log4j = kdir / "log4j2.properties"
        log4j.write_text((resources.files("mlops_tools.stack") / "log4j2.properties").read_text())
        return props

    def _java_cmd(self, main: str, *args: str, heap: str | None = None) -> list[str]:
        cmd = ["java"]
        if heap:
            cmd += [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
        cmd += [
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self._kafka_dir() / 'logs'}",
            f"-Dlog4j2.configurationFile={self._kafka_dir() / 'log4j2.properties'}",
            "-cp", f"{self.jar_dir}/*", main, *args,
        ]
        return cmd

    def format_storage(self, props: Path, cluster_id: str) -> None:
        """Format KRaft storage once, for a new cluster id."""
        fmt = subprocess.run(
            # `--cluster-id=ID` in one word: a URL-safe base64 id may start with "-", which the tool's argument
            # parser would take for an option (it did, once in 64 formats)
            self._java_cmd("kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cluster_id}",
                           "-c", str(props), "-g"),
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise StackError(f"formatting KRaft storage failed:\n{(fmt.stdout + fmt.stderr)[-2000:]}")

    def start_kafka(self) -> str:
        if self.kafka.running() and port_open(self.s.host, self.s.kafka_port):
            return "already running"
        for port in (self.s.kafka_port, self.s.controller_port):
            if port_open(self.s.host, port):
                raise StackError(
                    f"port {self.s.host}:{port} is taken by a process this stack did not start; stop it or set "
                    "MLOPS_STACK_KAFKA_PORT / MLOPS_STACK_CONTROLLER_PORT (and MLOPS_KAFKA_BOOTSTRAP_SERVERS)"
                )
        self.fetch_kafka()
        props = self._write_kafka_config()
        if not (self._kafka_dir() / "data" / "meta.properties").exists():
            self.format_storage(props, base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        self.kafka.start(self._java_cmd("kafka.Kafka", str(props), heap=self.s.kafka_heap))
        self._wait("kafka", self.kafka, self.s.kafka_port)
        return "started"

    def kafka_tool(self, main_class: str, *args: str, timeout: float = 60.0) -> str:
        """Run one of the broker's own admin CLIs (e.g. org.apache.kafka.tools.TopicCommand) against the local
        broker; returns its output, raises StackError on failure."""
        proc = subprocess.run(
            ["java", "-cp", f"{self.jar_dir}/*", "-Dlog4j2.level=WARN", main_class,
             "--bootstrap-server", f"{self.s.host}:{self.s.kafka_port}", *args],
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
        tools (Jaeger)."""
        result = {"redis": self.start_redis(), "kafka": self.start_kafka()}
        if ops:
            from mlops_tools.stack import jaeger

            result["jaeger"] = jaeger.start(self)
        from mlops.bus import wait_for_broker

        settings = self.kafka_settings()
        wait_for_broker(settings, timeout=self.s.start_timeout_s)
        created = ensure_topics(settings)
        result["topics"] = f"created {len(created)}" if created else "all present"
        return result

    def down(self, wipe: bool = False) -> dict[str, str]:
        """Stop what `up` started; with `wipe`, also delete the broker's log dirs (every topic and offset)."""
        result = {
            name: ("stopped" if proc.stop() else "was not running")
            for name, proc in (("kafka", self.kafka), ("redis", self.redis))
        }
        from mlops_tools.stack import jaeger

        result["jaeger"] = jaeger.stop(self)
        if wipe:
            data = self._kafka_dir() / "data"
            shutil.rmtree(data, ignore_errors=True)
            result["data"] = f"wiped {data}"
        return result

    def status(self) -> list[ComponentStatus]:
        out = []
        for name, proc, port in (("kafka", self.kafka, self.s.kafka_port), ("redis", self.redis, self.s.redis_port)):
            pid, listening = proc.pid(), port_open(self.s.host, port)
            if pid and listening:
                out.append(ComponentStatus(name, "running", f"pid {pid}, {self.s.host}:{port}"))
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


def go_tool(package: str, binary: str, timeout: float = 900.0, replace: Mapping[str, str] | None = None) -> Path | None:
    """A Go command-line tool that benchmarks, tests and the stack use (ghz, grpc-health-probe, jaeger): on PATH,
    in the tool cache, or installed there now from the Go module proxy (`package` is `module/cmd@version`). A module
    whose go.mod has `replace` directives cannot be `go install`ed by version: pass them as `replace` and it is built
    inside a throwaway module instead (`go get -tool`, then `go build`). None when Go is missing or the build fails
    (logged with go's own message)."""
    found = shutil.which(binary)
    if found:
        return Path(found)
    bin_dir = StackSettings().cache_dir.expanduser() / "bin"
    cached = bin_dir / binary
    if cached.exists():
        return cached
    if shutil.which("go") is None:
        log.warning("go not found: cannot install %s", package)
        return None
    bin_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"GOBIN": str(bin_dir), "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    if replace is None:
        steps = [["go", "install", package]]
    else:
        steps = [["go", "mod", "init", "mlops.local/tool-build"],
                 *(["go", "mod", "edit", f"-replace={old}={new}"] for old, new in replace.items()),
                 ["go", "get", "-tool", package],
                 ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(cached), package.split("@")[0]]]
    with tempfile.TemporaryDirectory(prefix="go-tool-") as workdir:
        log.info("building %s with go (once; cached in %s)", package, bin_dir)
        for step in steps:
            done = subprocess.run(step, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                log.warning("%s failed: %s", " ".join(step), done.stderr[-1000:])
                return None
    return cached if cached.exists() else None


def _require(binary: str, message: str) -> None:
    if shutil.which(binary) is None:
        raise StackError(f"{binary} not found: {message}")


def apt_install(package: str, binary: str) -> str:
    """Install Debian's `package` for `binary` (needs root; `apt-get update` first when the package lists are
    empty) and return the binary's path. The package's own daemon is kept from starting, or stopped: the stack
    runs its own under the run folder."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(f"{binary} not found; install it (Debian: apt-get install {package})")
    log.info("installing %s from Debian", package)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # policy-rc.d exit 101 keeps the package from starting its own daemon on our port; we start it ourselves
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for cmd in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise StackError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    finally:
        if added_policy:
            policy.unlink(missing_ok=True)
    # the package may still start its own daemon (seen here with redis-server despite policy-rc.d); it is ours to
    # stop, we just installed it
    if Path(f"/etc/init.d/{package}").exists():
        subprocess.run([f"/etc/init.d/{package}", "stop"], capture_output=True)
    path = shutil.which(binary)
    if path is None:
        raise StackError(f"{binary} still not found after apt-get install {package}")
    return path
