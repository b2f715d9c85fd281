"""End to end: challengers judged on live traffic, on the real stack with the six services as real processes (the
demo, smaller; the SEA model declared with `rollout: {mode: shadow}` by examples/sea/shadow/definitions.yaml).

Better challenger: a permanent drift, so the monitor's retrain makes a v2 that passes the offline gate; it becomes
a shadow challenger (its rows logged with role "shadow" beside the champion's, same request ids), the monitor's
verdict promotes it on at most 500 labelled predictions with an interval above 0, the registry makes it champion
(audited with the verdict as evidence) and it serves; the previous champion may guard it, and is never rolled back
to. Worse challenger: a transient episode, so the retrain's candidate passes the offline gate on an unrepresentative
holdout (the episode); back on normal traffic the verdict retires it, audited, and it never serves as champion.
Both: 0 failed requests through every switch. Sized for a busy machine (a training took 35-60 s on two shared
cores): the drift comes once the monitor is armed (from record 4,000 on), and 24,000 records leave room after it
for detection, a retrain (two, when the first alarm came too early in the episode and its candidate is refused) and
the verdict; the streams end once the story is told (`end_when_done`: the drift's challenger decided with its
verdict; a promoted one serving, its guard judged, replaced, or 1,000 mirrored requests without a rollback), not
after all of them.
Every service process is stopped by the fixture, pass or fail. Run with -s (and MLOPS_TEST_WORKERS=0 under
./mlops test) to see the timelines and the figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from mlops.contracts import models_pb2
from mlops.prediction_log import BATCH_TYPE, HEADER_MESSAGE_TYPE, from_batch
from mlops.topics import PREDICTIONS
from mlops_tools.demo import Demo, DemoResult, ModelLoop
from mlops_tools.registry_client import RegistryClient

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

MAX_LABELS_TO_PROMOTE = 500  # issue 20's target for a challenger >= 5 accuracy points better (this one: ~20)


def _logs(demo: Demo) -> str:
    return "\n".join(f"--- {name}\n{proc.log_tail(12)}" for name, proc in demo._started_procs)


def _run(demo: Demo) -> tuple[DemoResult, ModelLoop]:
    result = demo.run()
    print(result.table(), flush=True)
    for t, what in ((e.t_s, e.what) for e in result.timeline):
        print(f"[{t:7.1f}s] {what}")
    assert not result.error and not result.interrupted, result.error + "\n" + _logs(demo)
    r = result.loop("sea")
    assert r.failed_requests == 0, r.last_error
    assert r.requests > 500 and all(s.failed == 0 for s in r.live.switches), r.live.switches
    return result, r


def _prediction_roles(demo: Demo) -> tuple[Counter[tuple[str, str]], dict[str, set[str]]]:
    """Rows on the run's `predictions` topic per (role, version), and each role's request ids, read as the
    contract writes them (PredictionBatch.role)."""
    assert demo.traffic is not None
    bus = demo.traffic.bus
    reader = bus.reader([bus.topic(PREDICTIONS)], client_id="test-challengers", start="beginning")
    rows: Counter[tuple[str, str]] = Counter()
    requests: dict[str, set[str]] = {}
    try:
        idle = 0
        while idle < 3:
            batch = reader.consume(max_records=2_000, timeout=1.0)
            idle = 0 if batch else idle + 1
            for record in batch:
                if (record.header(HEADER_MESSAGE_TYPE) or BATCH_TYPE) != BATCH_TYPE:
                    continue
                m = record.decode(models_pb2.PredictionBatch)
                role = m.role or "champion"
                rows[(role, m.model_version)] += m.rows
                requests.setdefault(role, set()).update(c.request_id for c in from_batch(m).split())
    finally:
        reader.close()
    return rows, requests


def _audit(demo: Demo) -> list[models_pb2.ChallengerVerdict]:
    """The evidence of every audit entry of a live decision, through the registry's gRPC API."""
    client = RegistryClient(f"127.0.0.1:{demo.ports['registry']}", timeout=10)
    return [a.evidence for a in client.get_model("sea").audit if a.evidence.verdict_id]


def test_a_better_challenger_is_shadowed_judged_on_live_labels_and_promoted(
        demo_factory: Callable[..., Demo]) -> None:
    demo = demo_factory("better", records=24_000, drift_at=4_000, shadow=True, wait_for_monitor=True, v2_wait_s=60.0,
                        end_when_done=True)
    _, r = _run(demo)
    assert r.detections and r.false_alarms == 0, "the drift was not detected (or a false alarm came first)"
    assert r.live.challengers, f"no challenger announced after the drift: gate {r.gate}"
    c = r.live.challengers[0]  # the drift's; a later retrain's may follow (it then replaces the guard)
    assert c.role == "shadow" and c.fraction == 1.0
    v = c.verdict
    assert v is not None and v.verdict == "promote", f"no promote verdict: {r.live.verdicts}"
    assert v.challenger_version == c.version and v.champion_version == r.v1
    assert 0 < v.labelled_rows <= MAX_LABELS_TO_PROMOTE, v
    assert v.ci_low > 0 and v.difference > 0 and v.challenger_metric > v.champion_metric, v
    assert c.outcome.startswith("promoted") and r.v2 == c.version and c.version in r.serving
    assert r.live.champions[:2] == [r.v1, c.version], "the challenger did not become champion after v1"
    assert not any(g.verdict == "rollback" for g in r.live.verdicts), "a better challenger was rolled back"
    # the shadow answered the same requests as the champion, off the response path
    rows, requests = _prediction_roles(demo)
    assert rows[("shadow", c.version)] > 0, rows
    assert requests["shadow"] <= requests["champion"], "a shadow row without its champion row"
    assert c.rows > 0 and r.live.shadow_rows >= c.rows
    evidence = _audit(demo)
    assert v.verdict_id in {e.verdict_id for e in evidence}, evidence
    e = next(e for e in evidence if e.verdict_id == v.verdict_id)
    assert e.labelled_rows == v.labelled_rows and e.ci_low == v.ci_low and e.verdict == "promote"
    print(f"\n[better] labels to verdict {v.labelled_rows}, {c.verdict_delay_s:.1f} s "
          f"after the announcement; {v.metrics}; {v.interval}; requests {r.requests}, failed {r.failed_requests}")


def test_a_worse_challenger_passes_the_offline_gate_and_is_retired_on_live_traffic(
        demo_factory: Callable[..., Demo]) -> None:
    demo = demo_factory("worse", records=24_000, drift_at=4_000, worse_challenger=True, shadow=True,
                        wait_for_monitor=True, v2_wait_s=60.0, end_when_done=True)
    _, r = _run(demo)
    v1 = r.v1
    assert v1 is not None and r.detections, "the episode was not detected"
    assert r.live.challengers, f"the episode's candidate did not pass the offline gate: {r.gate}"
    # the episode's candidate: retired by the live verdict (a later retrain's challenger, when the monitor asks
    # again with the episode still in its window, may be undecided at the end; it never serves either)
    first = r.live.challengers[0]
    assert first.outcome == "retired" and first.verdict is not None and first.verdict.verdict == "retire", \
        (first, r.live.verdicts)
    for c in r.live.challengers:
        assert c.version not in r.live.champions and c.version not in r.serving, "a worse challenger served"
    assert r.live.champions == [v1] and r.v2 is None, "a version after the episode became champion"
    assert not any(v.verdict == "promote" for v in r.live.verdicts)
    retired = first.verdict
    assert retired is not None and retired.ci_high < 0 and retired.challenger_metric < retired.champion_metric
    assert retired.verdict_id in {e.verdict_id for e in _audit(demo)}
    print(f"\n[worse] labels to verdict {retired.labelled_rows}; {retired.metrics}; {retired.interval}; "
          f"requests {r.requests}, failed {r.failed_requests}")
