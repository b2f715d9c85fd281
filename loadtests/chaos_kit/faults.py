"""The faults beyond a service's kill -9: the broker, Redis (restarted with its files, or lost), a second consumer
joining, slow Redis, a near-limit poison record, bad labels, and one broker of three lost. `SCENARIOS` names them
all, in the order a full run takes them."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from chaos_kit.scenarios import Row, Suite, _since, kill_service
from chaos_kit.traffic import QUIET, RecordStream

__all__ = ["SCENARIOS"]

Scenario = Callable[[Suite, Row, RecordStream], None]
OUTAGE_S = 3.0  # how long the broker or Redis stays down
SHARED_S = 5.0  # rebalance: how long two features members share the work (and how long after the leave we watch)
SLOW_S = 10.0  # slow-redis: how long Redis is slow


def _tag(row: Row) -> str:
    return row.tag


def broker_kill(suite: Suite, row: Row, stream: RecordStream) -> None:
    tag = _tag(row)
    suite.p.kill_broker()
    time.sleep(OUTAGE_S)
    started = suite.p.start_broker()
    answering = time.time()  # start_broker returns once the broker answers (its log recovery done)
    row.resumed_s = suite.wait_for(lambda: suite.tailer.first_output_after(tag, "features.log", answering),
                                   "features.log after the broker restart")
    events_s = suite.tailer.first_output_after(tag, "events", answering)
    row.facts |= {"broker_start_s": answering - started, "events_s": events_s}
    row.note = (f"down {OUTAGE_S:.0f}s + {answering - started:.1f}s until the restarted broker answered; from then: "
                f"events again {_s(events_s)}s, features.log {row.resumed_s:.1f}s")


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def redis_restart(suite: Suite, row: Row, stream: RecordStream) -> None:
    """kill -9 and restart with its append-only file: the views come back from Redis itself."""
    _redis_outage(suite, row, wipe=False)


def redis_lost(suite: Suite, row: Row, stream: RecordStream) -> None:
    """kill -9 and restart *without* its files: the features service must rebuild every view from features.log."""
    _redis_outage(suite, row, wipe=True)


def _redis_outage(suite: Suite, row: Row, wipe: bool) -> None:
    assert suite.requests is not None and suite.reference is not None
    p, reference = suite.p, suite.reference
    layout = next(iter(reference.layouts.values()))
    killed = time.time()
    p.kill_redis(wipe=wipe)
    time.sleep(OUTAGE_S)
    restarted = p.start_redis()
    served = suite.wait_for(lambda: _since(suite.requests.first_ok_after(restarted), restarted), "a served request")
    row.resumed_s = served
    during = {code for _, code in suite.requests.between(killed, restarted) if code != "OK"}
    row.facts["codes_while_down"] = sorted(during)
    row.note = f"down {OUTAGE_S:.0f}s; while down: {', '.join(sorted(during)) or 'no failure'}"
    if wipe:
        def rebuilt() -> float | None:
            views = reference.store.read_many(layout, suite.warm)
            return None if any(v is None for v in views) else time.time() - restarted
        rebuilt_s = suite.wait_for(rebuilt, "the online store's rebuild")
        row.facts["rebuilt_s"] = rebuilt_s
        row.note += f"; every view rebuilt from features.log {rebuilt_s:.1f}s after the restart"


def rebalance(suite: Suite, row: Row, stream: RecordStream) -> None:
    """A second features member joins mid-stream and, a few seconds after it has partitions, leaves (SIGTERM):
    two rebalances while records flow."""
    p = suite.p
    joined = time.time()
    p.start("features", "-2")
    p.wait_ready(["features-2"], suite.resume_timeout_s)
    ready = time.time()
    time.sleep(SHARED_S)
    p.stop("features-2")
    left = time.time()
    time.sleep(SHARED_S)
    row.resumed_s = suite.tailer.longest_gap(row.tag, joined)
    row.facts |= {"member_ready_s": ready - joined}
    row.note = (f"features #2 joined at 1/3, had partitions after {ready - joined:.1f}s, left {left - ready:.1f}s "
                "later; resumed = longest features.log pause from the join on")


def slow_redis(suite: Suite, row: Row, stream: RecordStream) -> None:
    started = time.time()
    suite.p.proxy.latency_s = suite.redis_latency_s
    try:
        time.sleep(SLOW_S)
    finally:
        suite.p.proxy.latency_s = 0.0
    row.resumed_s = suite.tailer.longest_gap(row.tag, started)
    row.note = (f"+{suite.redis_latency_s * 1000:.0f} ms each way for {SLOW_S:.0f}s; resumed = longest "
                "features.log pause")


def kill_features_dynamic(suite: Suite, row: Row, stream: RecordStream) -> None:
    """kill -9 of features running with dynamic group membership (MLOPS_FEATURES_GROUP_INSTANCE_ID empty, the
    service's own default when no launcher names it): the restarted worker gets its partitions only after the dead
    member's session timeout. The shipped default (static membership) is kill-features."""
    p = suite.p
    p.extra_env["features"] = {"MLOPS_FEATURES_GROUP_INSTANCE_ID": ""}
    p.stop("features")
    p.start("features")
    p.wait_ready(["features"], suite.resume_timeout_s)
    try:
        kill_service("features", "features.log")(suite, row, stream)
    finally:
        p.extra_env.pop("features")
        p.stop("features")  # the next scenarios get the default (static) membership again
        p.start("features")
        p.wait_ready(["features"], suite.resume_timeout_s)
    row.note += "; dynamic membership"


def poison(suite: Suite, row: Row, stream: RecordStream) -> None:
    """One raw record just under the 16 MiB limit, invalid: dead-lettered with a capped original, no crash loop."""
    from mlops.bus import Producer

    p, tag = suite.p, _tag(row)
    pid = p.pid("ingest")
    size = p.kafka.max_message_bytes - 128 * 1024
    doc = {"entity_id": f"{tag}.e0", "event_time": int(time.time() * 1000), "schema_version": 1,
           "event_id": f"{tag}.poison", "values": {"x0": "x" * size, "x1": 1.0, "x2": 1.0}}
    producer = Producer(p.kafka, client_id="chaos-poison", extra=QUIET)
    sent = time.time()
    producer.send(f"{p.kafka.topic_prefix}raw.events", json.dumps(doc).encode(), key=f"{tag}.e0",
                  headers={"content-type": "application/json"})
    producer.flush(60)
    row.records_in = 1  # and the stream's
    suite.tailer.wait(lambda: suite.tailer.snapshot(tag)[2], suite.resume_timeout_s)
    dead = suite.tailer.snapshot(tag)[2]
    took = time.time() - sent
    if not dead:
        raise AssertionError(f"no dead letter for the poison record after {suite.resume_timeout_s:.0f}s; ingest "
                             f"log:\n{p.log_tail('ingest')}")
    dl = dead[0]
    row.facts |= {"error_type": dl.error_type, "kept": len(dl.original_value), "original_size": dl.original_size,
                  "truncated": dl.original_truncated, "pid_before": pid, "pid_after": p.pid("ingest"),
                  "sent_size": size}
    row.note = (f"{size / 2**20:.1f} MiB record → dead letter in {took:.1f}s ({dl.error_type}, "
                f"{len(dl.original_value)} B kept of {dl.original_size}, truncated={dl.original_truncated}); "
                f"ingest pid {pid} → {p.pid('ingest')}")


BAD_LABELS = (math.nan, 2.0, -1.0, math.inf)


def bad_labels(suite: Suite, row: Row, stream: RecordStream) -> None:
    """Labels that cannot be a binary model's (NaN, 2.0, -1, inf) go to the dead letters, and the next retrain
    still succeeds."""
    from mlops.bus import Producer
    from mlops.contracts import events_pb2
    from mlops.topics import LABELS, topic_name

    tag, n = _tag(row), 20
    producer = Producer(suite.p.kafka, client_id="chaos-bad-labels", extra=QUIET)
    now = int(time.time() * 1000)
    for i in range(n):
        entity = f"{tag}.e{i % stream.entities}"
        producer.send(topic_name(LABELS, suite.p.kafka), events_pb2.Label(
            entity_id=entity, event_time_ms=now + i, label=BAD_LABELS[i % len(BAD_LABELS)],
            event_id=f"{tag}.bad{i}"), key=entity)
    producer.flush(60)
    row.records_in = n  # and the stream's
    suite.tailer.wait(lambda: len(suite.tailer.snapshot(tag)[2]) >= n, suite.resume_timeout_s)
    request_id = suite.retrain("after bad labels")
    suite.wait_for(lambda: _first(suite.tailer.outcome_of(request_id)), "the retrain after bad labels")
    outcomes = [k for _, k in suite.tailer.outcome_of(request_id)]
    reasons = sorted({d.error_type for d in suite.tailer.snapshot(tag)[2]})
    row.facts |= {"outcomes": outcomes, "reasons": reasons}
    row.note = f"{n} bad labels (NaN, 2, -1, inf): dead letters {', '.join(reasons)}; retrain after: {outcomes}"


def _first(outcomes: list[tuple[int, str]]) -> float | None:
    return float(outcomes[0][0]) if outcomes else None


def three_brokers(suite: Suite, row: Row, stream: RecordStream) -> None:
    """One node of a 3-node KRaft cluster (RF 3, min.insync.replicas 2) killed -9 mid-stream: the one leading
    `events` partition 0, so the hot path must fail over. The cluster works on with two; the node is then started
    again and must rejoin every in-sync replica set. resumed = the longest features.log pause from the kill until
    the node is back in sync."""
    tag, p = _tag(row), suite.p
    node = p.leader_of("events", 0)
    killed = time.time()
    p.kill_broker(node)
    # with two of three, every partition gets a leader and acks=all still has its 2 in-sync replicas
    try:
        on_two: float | None = 1.0 + suite.wait_for(
            lambda: suite.tailer.first_output_after(tag, "features.log", killed + 1.0), "output on two nodes")
    except TimeoutError:  # a finding, not the end of the scenario: the restart below must still heal it
        on_two = None
    time.sleep(3 * OUTAGE_S)
    started = p.start_broker()
    answering = time.time()
    in_sync = suite.wait_for(lambda: time.time() - answering if p.fully_in_sync() else None,
                             f"node {node} back in every in-sync replica set")
    row.resumed_s = suite.tailer.longest_gap(tag, killed, until_s=time.time())
    row.facts |= {"node": node, "output_on_two_s": on_two, "restart_s": answering - started,
                  "in_sync_s": in_sync, "down_s": answering - killed}
    two = (f"output on two nodes {on_two:.1f}s after the kill" if on_two is not None else
           f"NO features.log output on two nodes within {suite.resume_timeout_s:.0f}s")
    row.note = (f"node {node} of 3 (leader of events-0) down {answering - killed:.0f}s: {two}; restarted node "
                f"answered after {answering - started:.0f}s, in every ISR {in_sync:.1f}s later")


SCENARIOS: dict[str, Scenario] = {
    "kill-ingest": kill_service("ingest", "events"),
    "kill-features": kill_service("features", "features.log"),
    "kill-features-dynamic": kill_features_dynamic,
    "kill-trainer": kill_service("trainer"),
    "kill-registry": kill_service("registry"),
    "kill-inference": kill_service("inference"),
    "kill-monitor": kill_service("monitor"),
    "broker-kill": broker_kill,
    "redis-restart": redis_restart,
    "redis-lost": redis_lost,
    "rebalance": rebalance,
    "slow-redis": slow_redis,
    "poison-record": poison,
    "bad-labels": bad_labels,
    "broker-1-of-3": three_brokers,
}
