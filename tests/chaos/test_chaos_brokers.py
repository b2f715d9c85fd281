"""The chaos suite's `broker-1-of-3` at CI size (`mlops chaos --brokers 3 --only broker-1-of-3` runs it full size):
a platform of its own on a three-node KRaft cluster (replication factor 3, min.insync.replicas 2; its own ports and
run dir, never the session's shared stack) and the six services as real processes; the node leading `events`
partition 0 is killed -9 mid-stream and, after the cluster has worked on with two, started again.

Asserted: no record lost, online views equal to the reference fold, no service died (none restarted by the suite),
and the restarted node is back in every in-sync replica set. Seconds — and whether features.log went on while the
node was down — are printed, not asserted (targets live in loadtests/).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.insert(0, str(LOADTESTS))

from chaos_kit.platform import Platform  # noqa: E402
from chaos_kit.scenarios import Suite, table  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

RECORDS, RATE = 300, 50.0


def test_one_broker_of_three_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    platform = Platform(tmp_path, brokers=3)
    suite = Suite(platform, RECORDS, RATE)
    try:
        platform.up()
        suite.start(warm_records=300)
        row = suite.run("broker-1-of-3")
        print("\n" + table([row]))
        assert not row.error, row.error
        assert row.valid_in >= RECORDS and row.lost == 0, row.facts.get("missing_from_features_log")
        assert row.state_diff == 0, row.diffs[:3]
        assert not row.facts.get("died"), row.facts["died"]  # every service rode it out by itself
        assert platform.fully_in_sync()
        assert row.resumed_s is not None
        # whether features.log went on while the node was down is printed (output_on_two_s; None: not within
        # the suite's 120 s), not asserted: once, under a load average of ~25, it did not (README, Faults)
        print(f"facts: {row.facts}")
    finally:
        suite.close()
        platform.close()
