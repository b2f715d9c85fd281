"""End to end: the closed loop on the real stack with the six services as real processes (mlops_tools.demo, smaller).

Drift run: SEA variant 2 → 3 (plus an x2 shift) at a known record; the monitor must detect it within a bounded
delay, ask for exactly one retrain, the registry must promote v2, and v2 must beat v1 on the post-drift stream,
with zero failed inference requests throughout. Control run: the same loop without drift asks for no retrain.
Every service process is stopped by the fixture, pass or fail. Run with -s (and MLOPS_TEST_WORKERS=0 under
./mlops test) to see the timeline and the figures.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mlops_tools.demo import Demo, DemoResult, ModelLoop

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(360)]

DRIFT_AT = 2_000  # at the earliest: the drift waits until the monitor is armed
# drift point → the monitor's RetrainRequest, in records streamed since the drift (the seconds are printed, not
# asserted: wall-clock targets belong to loadtests/)
MAX_DETECTION_DELAY_RECORDS = 2_500


def _report(label: str, result: DemoResult) -> None:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    print(result.table())
    for r in result.loops.values():
        print(f"\n[{label}/{r.model}] detection delay: {fmt(r.detection_delay_s)} s / {r.detection_delay_records} "
              f"records; false alarms: {r.false_alarms}; loop time drift → v2 serving: {fmt(r.loop_time_s)} s; "
              f"retrains: {r.retrains}; failed requests: {r.failed_requests}/{r.requests + r.failed_requests}",
              flush=True)


def _logs_on_failure(demo: Demo) -> str:
    tails = []
    for name, proc in demo._started_procs:
        tails.append(f"--- {name}\n{proc.log_tail(8)}")
    return "\n".join(tails)


def test_drift_is_detected_retrained_promoted_and_served(demo_factory: Callable[..., Demo]) -> None:
    # the drift from record 2,000 on, once the monitor is armed; the streams end once v2 has answered 200
    # post-drift predictions (end_when_done), at most after 12,000 records
    demo = demo_factory("drift", records=12_000, drift_at=DRIFT_AT, wait_for_monitor=True, end_when_done=True)
    result = demo.run()
    _report("drift", result)
    assert not result.error and not result.interrupted, result.error + "\n" + _logs_on_failure(demo)
    assert result.dlq == 0
    r: ModelLoop = result.loop("sea")
    assert r.false_alarms == 0, "the monitor asked for a retrain before the drift"
    assert r.detections, "the drift was not detected"
    delay = r.detection_delay_records
    assert delay is not None and 0 <= delay <= MAX_DETECTION_DELAY_RECORDS, r.detections
    assert r.monitor_requests == 1 and r.retrains == 1, "exactly one retrain per drift episode"
    v1, v2 = r.v1, r.v2
    assert v1 is not None and v2 is not None and v2 != v1, f"no new version promoted: {r.gate}"
    assert v2 in r.serving, "v2 was promoted but never answered a request"
    acc_v1_post, acc_v2_post = r.value(v1, True), r.value(v2, True)
    assert acc_v1_post is not None and acc_v2_post is not None
    assert r.count(v2, True) >= demo.cfg.done_after_requests
    assert acc_v2_post > acc_v1_post, f"v2 {acc_v2_post:.3f} is not better than v1 {acc_v1_post:.3f} after the drift"
    assert r.value(v1, False) is not None and r.value(v1, False) > acc_v1_post  # the drift hurt v1
    assert r.failed_requests == 0, r.last_error
    assert r.requests > 500


def test_no_drift_no_retrain(demo_factory: Callable[..., Demo]) -> None:
    # the streams end once v1 has answered the monitor's warm-up and two of its windows more (end_when_done), at
    # most after 8,000 records
    demo = demo_factory("control", records=8_000, drift_at=None, end_when_done=True)
    result = demo.run()
    _report("control", result)
    assert not result.error and not result.interrupted, result.error + "\n" + _logs_on_failure(demo)
    r = result.loop("sea")
    assert r.v1 is not None and r.v1 in r.serving
    # the monitor was armed (past its warm-up) for two of its windows, so "no retrain" means something
    assert r.count(r.v1, False) >= demo.cfg.watched_requests > demo.cfg.monitor_min_records
    assert r.monitor_requests == 0 and r.false_alarms == 0 and r.retrains == 0
    assert r.failed_requests == 0, r.last_error
    assert r.value(r.v1, False) is not None and r.value(r.v1, False) > 0.9
