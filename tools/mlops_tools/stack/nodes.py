"""The Kafka nodes of the local stack: one (the default) or a KRaft cluster (`mlops stack up --brokers 3`).

Every node is broker and controller (combined mode): with three, the controller quorum outlives one node, as the
partitions (replication factor 3, min.insync.replicas 2) do. Node n listens on the stack's ports shifted by
`(n - 1) * node_port_step` (defaults: 9092/9093, 9192/9193, 9292/9293) and keeps its files in `<run dir>/kafka`
(node 1, the single node's folder) or `<run dir>/kafka-<n>`. The layout a run dir was formatted with is recorded
in `<run dir>/kafka-layout.json`, so `status` and `down` cover every node without being told again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mlops_tools.stack.secure import SecureMaterial

__all__ = ["Layout", "Node", "server_properties"]


@dataclass(frozen=True)
class Layout:
    brokers: int = 1
    secure: bool = False

    @classmethod
    def recorded(cls, run_dir: Path) -> Layout | None:
        try:
            return cls(**json.loads((run_dir / "kafka-layout.json").read_text()))
        except FileNotFoundError:
            return None

    def record(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "kafka-layout.json").write_text(json.dumps(asdict(self)) + "\n")

    def describe(self) -> str:
        what = "1 broker" if self.brokers == 1 else f"{self.brokers}-broker KRaft cluster"
        return f"{what}, {'SASL_SSL' if self.secure else 'PLAINTEXT'}"

    @property
    def replication_factor(self) -> int:
        return min(3, self.brokers)

    @property
    def min_insync_replicas(self) -> int:
        return max(1, self.replication_factor - 1)


@dataclass(frozen=True)
class Node:
    node_id: int
    name: str  # the process name: "kafka" (node 1) or "kafka-<n>"
    host: str
    port: int
    controller_port: int
    folder: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def server_properties(node: Node, nodes: list[Node], layout: Layout, max_message_bytes: int,
                      secure: SecureMaterial | None) -> str:
    """server.properties of `node` in a stack of `nodes`."""
    h = node.host
    listener = "SASL_SSL" if secure else "PLAINTEXT"
    rf, min_isr = layout.replication_factor, layout.min_insync_replicas
    if len(nodes) == 1:
        # a dynamic quorum of one, formatted --standalone (the single-node stack as it always was)
        quorum = f"controller.quorum.bootstrap.servers={h}:{node.controller_port}"
    else:
        quorum = "controller.quorum.voters=" + ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in nodes)
    lines = [
        "process.roles=broker,controller",
        f"node.id={node.node_id}",
        quorum,
        f"listeners={listener}://{h}:{node.port},CONTROLLER://{h}:{node.controller_port}",
        f"advertised.listeners={listener}://{h}:{node.port}",
        "controller.listener.names=CONTROLLER",
        *(secure.broker_properties() if secure else [
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]),
        f"log.dirs={node.folder / 'data'}",
        "num.partitions=3",
        # replicated internal topics and a durable default on a cluster: acks=all waits for min.insync.replicas
        f"default.replication.factor={rf}",
        f"min.insync.replicas={min_isr}",
        f"offsets.topic.replication.factor={rf}",
        "offsets.topic.num.partitions=10",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={rf}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        "unclean.leader.election.enable=false",
        "group.initial.rebalance.delay.ms=0",
        f"message.max.bytes={max_message_bytes}",
        f"replica.fetch.max.bytes={max_message_bytes}",
        # a killed node's partitions move to the others within seconds, and it rejoins the ISR soon after restart
        "replica.lag.time.max.ms=10000",
        "broker.session.timeout.ms=6000",
        "broker.heartbeat.interval.ms=1000",
        "log.cleaner.backoff.ms=1000",
        "auto.create.topics.enable=false",
        "",
    ]
    return "\n".join(lines)
