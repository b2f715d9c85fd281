"""The named fault scenarios and the figures of each (one `Row`).

Every scenario streams `records` SEA records of its own entities at `rate`/s through the running platform and
injects its fault a third of the way in; predictions by entity id flow all along. A row then says, from what the
services wrote: records in, out (distinct events that reached features.log), dead-lettered, duplicates (events
ingest wrote twice, vectors features.log got twice, and entities whose online view differs from the reference —
the derived state that must equal the de-duplicated stream's), seconds until the faulted part processed again
(measured from its restart), and the prediction requests that failed meanwhile (with their status codes).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos_kit.observe import Tailer
from chaos_kit.platform import SERVICES, Platform
from chaos_kit.traffic import QUIET, RecordStream, Requests, entity_ids
from chaos_kit.verify import Reference

__all__ = ["Row", "Suite", "kill_service", "table"]


CRASHED = "Crashed reason="  # faust's log line when an agent's handler raised (its batch is acked all the same)


@dataclass
class Row:
    scenario: str
    tag: str = ""  # the scenario's entities are `<tag>.e<i>` (the name, numbered when a run repeats it)
    records_in: int = 0
    valid_in: int = 0
    out: int = 0
    dead_lettered: int = 0
    dup_events: int = 0  # events ingest wrote twice (at-least-once; features folds each once)
    dup_log: int = 0  # (view, event) vectors features.log got twice (at-least-once offline store)
    state_diff: int = 0  # entities whose online view differs from the reference
    resumed_s: float | None = None
    requests: int = 0
    codes: Counter = field(default_factory=Counter)  # status code → count, of the failed requests
    note: str = ""
    error: str = ""
    diffs: list[str] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)  # what a scenario observed beyond the columns

    @property
    def lost(self) -> int:
        return self.valid_in - self.out

    @property
    def failed(self) -> int:
        return sum(self.codes.values())


def table(rows: list[Row]) -> str:
    head = ("scenario", "in", "out", "lost", "DLQ", "dup events", "dup log", "views≠ref", "resumed s",
            "failed req", "note")
    lines = []
    for r in rows:
        res = "-" if r.resumed_s is None else f"{r.resumed_s:.1f}"
        codes = ", ".join(f"{c} {n}" for c, n in r.codes.most_common())
        failed = f"{r.failed}/{r.requests}" + (f" ({codes})" if codes else "")
        note = f"ERROR {r.error}" if r.error else r.note
        lines.append((r.scenario, str(r.records_in), str(r.out), str(r.lost), str(r.dead_lettered),
                      str(r.dup_events), str(r.dup_log), str(r.state_diff), res, failed, note))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = " | ".join(f"{{:{w}}}" for w in widths[:-1]) + " | {}"
    out = [fmt.format(*head), "-|-".join("-" * w for w in widths[:-1]) + "-|-" + "-" * widths[-1]]
    return "\n".join([*out, *(fmt.format(*line) for line in lines)])


class Suite:
    """The platform, the tailer, the reference and the prediction traffic the scenarios share."""

    def __init__(self, platform: Platform, records: int, rate: float, entities: int = 50,
                 say: Callable[[str], None] = print, redis_latency_s: float = 0.25, resume_timeout_s: float = 120.0):
        self.p, self.records, self.rate, self.entities, self.say = platform, records, rate, entities, say
        self.redis_latency_s, self.resume_timeout_s = redis_latency_s, resume_timeout_s
        self.tailer = Tailer(platform.kafka)
        self.warm: list[str] = []
        self.requests: Requests | None = None
        self.reference: Reference | None = None
        self._req = 0
        self._runs: dict[str, int] = {}

    # --- set-up: a served model v1 -----------------------------------------------------------------------------------
    def start(self, warm_records: int = 600, v1_timeout_s: float = 240.0) -> None:
        self.tailer.start()
        self.reference = Reference(self.p.kafka, self.p.redis_direct)
        warm = RecordStream(self.p.kafka, "warm", warm_records, rate=max(self.rate, 200.0), entities=self.entities)
        warm.start().join()
        self.warm = entity_ids("warm", self.entities)
        self._drain("warm", warm_records, 120)
        t0 = time.monotonic()
        while not self._served():
            request_id = self.retrain("bootstrap v1")
            self.tailer.wait(lambda rid=request_id: self.tailer.outcome_of(rid), 120)
            end = time.monotonic() + 30
            while time.monotonic() < end and not self._served():
                time.sleep(0.5)
            if time.monotonic() - t0 > v1_timeout_s:
                raise RuntimeError(f"model v1 not served after {v1_timeout_s:.0f}s; trainer log:\n"
                                   f"{self.p.log_tail('trainer')}\nregistry log:\n{self.p.log_tail('registry')}")
        self.say(f"chaos: model v1 served after {time.monotonic() - t0:.0f}s")
        self.requests = Requests(self.p.ports["inference"], "sea", lambda: self.warm, rate=20.0).start()

    def close(self) -> None:
        if self.requests is not None:
            self.requests.stop()
        self.tailer.stop()
        if self.reference is not None:
            self.reference.close()

    def _served(self) -> bool:
        return _http_ok_ready(self.p)

    def retrain(self, reason: str) -> str:
        from mlops.bus import Producer
        from mlops.contracts import models_pb2
        from mlops.topics import RETRAIN_REQUESTED, topic_name

        self._req += 1
        request_id = f"chaos-{self._req}-{int(time.time())}"
        producer = Producer(self.p.kafka, client_id="chaos-retrain", extra=QUIET)
        producer.send(topic_name(RETRAIN_REQUESTED, self.p.kafka), models_pb2.RetrainRequest(
            model_name="sea", request_id=request_id, reason=f"chaos: {reason}", detector="manual",
            requested_at_ms=int(time.time() * 1000), requested_by="mlops-chaos"), key="sea")
        producer.flush(60)
        return request_id

    # --- one scenario --------------------------------------------------------------------------------------------
    def run(self, name: str) -> Row:
        from chaos_kit.faults import SCENARIOS

        scenario = SCENARIOS[name]
        self._runs[name] = self._runs.get(name, 0) + 1
        tag = name.replace("-", "_") + (f"_{self._runs[name]}" if self._runs[name] > 1 else "")
        row = Row(name, tag)
        if name == "broker-1-of-3" and self.p.brokers < 3:
            row.note = "pending: needs a 3-broker stack (`mlops chaos --brokers 3`; `mlops stack up --brokers` first)"
            return row
        started, crashes = time.time(), self.p.log_count(CRASHED)
        stream = RecordStream(self.p.kafka, tag, self.records, self.rate, entities=self.entities)
        try:
            stream.more.set()  # the stream goes on until the fault is over (and its recovery measured)
            stream.start()
            stream.at(self.records // 3)
            try:
                scenario(self, row, stream)
            finally:
                stream.more.clear()
            stream.join(600)
            row.valid_in = stream.count
            row.records_in += stream.count
            self._revive(row)
            self._drain(tag, stream.count, self.resume_timeout_s, row)
            self._figures(tag, row)
        except Exception as exc:
            row.error = f"{type(exc).__name__}: {exc}"[:300]
            try:
                stream.more.clear()
                stream.join(600)
                row.valid_in, row.records_in = stream.count, row.records_in + stream.count
                self._revive(row)
                self._drain(tag, stream.count, 60, row)
                self._figures(tag, row, settle_s=0)
            except Exception:
                pass
        row.facts["agent_crashes"] = self.p.log_count(CRASHED) - crashes
        if row.facts["agent_crashes"]:
            row.note += f"; faust agent crashed {row.facts['agent_crashes']}x (features log)"
        if self.requests is not None:
            outcomes = self.requests.between(started, time.time())
            row.requests = len(outcomes)
            row.codes = Counter(code for _, code in outcomes if code != "OK")
        return row

    def _revive(self, row: Row) -> None:
        """A service that died by itself (not killed by the scenario) is a finding: note why, start it again so
        the records still get through and later scenarios run on a whole platform."""
        for key in SERVICES:
            if self.p.alive(key):
                continue
            last = next((line for line in reversed(self.p.log_tail(key, 60).splitlines())
                         if "Error" in line or "Exception" in line), "no error logged")
            row.facts.setdefault("died", []).append(f"{key}: {last.strip()[:160]}")  # type: ignore[union-attr]
            row.note += f"; {key.upper()} DIED ({last.strip()[:120]}), restarted"
            self.p.restart(key)

    def _drain(self, tag: str, expected: int, stall_s: float, row: Row | None = None) -> bool:
        """Wait until `expected` distinct events of `tag` reached features.log, as long as they keep coming (a
        backlog after a long outage is worked off, not counted as lost); False when they stopped short."""
        def out() -> int:
            return len({o.event_id.split("/", 1)[1] for o in self.tailer.snapshot(tag)[1]})

        last, since = out(), time.monotonic()
        while last < expected:
            if self.tailer.error:
                raise RuntimeError(f"the tailer stopped: {self.tailer.error}")
            time.sleep(0.5)
            if row is not None:
                self._revive(row)
            now = out()
            if now > last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since > stall_s:
                return False
        return True

    def _figures(self, tag: str, row: Row, settle_s: float = 30.0) -> None:
        assert self.reference is not None
        events, log, dead = self.tailer.snapshot(tag)
        ids = [o.event_id for o in events]
        row.dup_events = len(ids) - len(set(ids))
        vectors = [o.event_id for o in log]
        row.dup_log = len(vectors) - len(set(vectors))
        logged = {v.split("/", 1)[1] for v in vectors}
        row.out = len(logged)
        missing = sorted(set(ids) - logged)
        if missing:  # on events but never on features.log: say where, for the report
            where = {o.event_id: f"p{o.partition}@{o.offset} written {o.ts_ms}" for o in events}
            row.facts["missing_from_features_log"] = [f"{m} ({where[m]})" for m in missing[:10]]
        row.facts["never_on_events"] = row.valid_in - len(set(ids))
        row.dead_lettered = len(dead)
        # features.log and the Redis write of a batch go out side by side: give the last write a moment
        entities = entity_ids(tag, self.entities)
        deadline = time.monotonic() + settle_s
        while True:
            row.diffs = self.reference.mismatches(events, entities)
            if not row.diffs or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        row.state_diff = len({d.split(":", 1)[0] for d in row.diffs})

    # --- probes ------------------------------------------------------------------------------------------------
    def wait_for(self, probe: Callable[[], float | None], what: str) -> float:
        deadline = time.monotonic() + self.resume_timeout_s
        while time.monotonic() < deadline:
            value = probe()
            if value is not None:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{what} not within {self.resume_timeout_s:.0f}s")


def _ready(p: Platform, key: str) -> bool:
    from chaos_kit.platform import _http_ok

    return _http_ok(f"http://127.0.0.1:{p.ports[f'ops-{key}']}/readyz")


def _http_ok_ready(p: Platform) -> bool:
    from chaos_kit.platform import _http_ok

    return _http_ok(f"http://127.0.0.1:{p.ports['ops-inference']}/readyz")


def _committed(p: Platform, group: str, topic: str) -> int:
    """The sum of `group`'s committed offsets on `topic` (from the broker)."""
    from confluent_kafka import Consumer, TopicPartition

    raw = Consumer(p.kafka.client_config() | {"group.id": group, "enable.auto.commit": False})
    try:
        parts = raw.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(max(tp.offset, 0) for tp in raw.committed([TopicPartition(topic, n) for n in parts], timeout=10))
    finally:
        raw.close()


# --- the scenarios: each injects its fault into the running stream and fills in its row's resume figure -----------
def kill_service(service: str, output: str | None = None) -> Callable[[Suite, Row, RecordStream], None]:
    def scenario(suite: Suite, row: Row, stream: RecordStream) -> None:
        tag, p = row.tag, suite.p
        if service == "trainer":  # killed while it trains: the request must still get exactly one outcome
            request_id = suite.retrain("killed trainer")
            time.sleep(2.5)  # past the 1 s coalescing window: training has begun
        before_pid = p.pid(service)
        if service == "registry":
            p.kill(service)
            request_id = suite.retrain("killed registry")  # its candidate waits on model.candidates
            suite.tailer.wait(lambda: suite.tailer.outcome_of(request_id), suite.resume_timeout_s)
        else:
            p.kill(service)
        killed = time.time()
        restarted = p.restart(service)
        row.facts |= {"killed_ms": int(killed * 1000), "restarted_ms": int(restarted * 1000)}
        # its readiness endpoint first (start-up, group join); the output's time is read from the records anyway
        ready_s = suite.wait_for(lambda: time.time() - restarted if _ready(p, service) else None, f"{service} ready")
        row.facts["ready_s"] = ready_s
        if output is not None:  # ingest → events, features → features.log
            row.resumed_s = suite.wait_for(lambda: suite.tailer.first_output_after(tag, output, restarted),
                                           f"{service} output")
        elif service == "inference":
            assert suite.requests is not None
            row.resumed_s = suite.wait_for(lambda: _since(suite.requests.first_ok_after(restarted), restarted),
                                           "a served request")
        elif service == "monitor":
            from mlops.topics import PREDICTIONS, topic_name

            topic = topic_name(PREDICTIONS, p.kafka)
            base = _committed(p, "chaos-monitor", topic)
            row.resumed_s = suite.wait_for(
                lambda: time.time() - restarted if _committed(p, "chaos-monitor", topic) > base else None,
                "the monitor's commits")
        elif service == "trainer":
            outcome = suite.wait_for(lambda: _first_ms(suite.tailer.outcome_of(request_id)), "the retrain outcome")
            row.resumed_s = outcome / 1000 - restarted
            outcomes = suite.tailer.outcome_of(request_id)
            row.facts["outcomes"] = [k for _, k in outcomes]
            row.note = (f"killed while training: {len(outcomes)} outcome(s) ({', '.join(k for _, k in outcomes)}); "
                        "resumed = the request's outcome, training included")
        elif service == "registry":
            ids = {c.candidate_id for _, c in suite.tailer.candidates
                   if request_id in (c.lineage.retrain_request_id, *c.lineage.coalesced_request_ids)}

            def decided() -> float | None:  # a new version, or (the same bytes as a version it has) a duplicate
                first = min(suite.tailer.decisions_of(ids).values(), default=None)
                if first is not None:
                    return first / 1000 - restarted
                return time.time() - restarted if _duplicates_ignored(p) else None

            row.resumed_s = suite.wait_for(decided, "the registry's decision")
            time.sleep(2)
            versions, duplicates = len(suite.tailer.decisions_of(ids)), _duplicates_ignored(p)
            row.facts |= {"candidates": len(ids), "versions": versions, "duplicates": duplicates}
            row.note = (f"candidate made while it was down: {len(ids)} candidate(s) → {versions} version(s)"
                        + (f", {duplicates:.0f} ignored as the same bytes as a version it has" if duplicates else ""))
        row.facts |= {"pid_before": before_pid, "pid_after": p.pid(service)}
        row.note = (row.note + "; " if row.note else "") + f"ready {ready_s:.1f}s after its restart"
    return scenario


def _duplicates_ignored(p: Platform) -> float:
    """Candidates the (restarted) registry ignored as duplicates: its own counter, from its ops endpoint."""
    import urllib.request

    url = f"http://127.0.0.1:{p.ports['ops-registry']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('mlops_registry_candidates_total{outcome="duplicate"}'))


def _since(t: float | None, t0: float) -> float | None:
    return None if t is None else t - t0


def _first_ms(outcomes: list[tuple[int, str]]) -> float | None:
    return float(outcomes[0][0]) if outcomes else None
