"""The drift-quality benchmark at its quick size keeps the monitor's promises: no false alarm on any control or
pre-change segment, every abrupt concept drift detected (and, where river's ADWIN finds it on the same error
stream, within twice ADWIN's median delay, up to 10 % label noise), the covariate shift seen without labels."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "loadtests" / "bench_drift.py"


def _bench():  # noqa: ANN202
    # importable by name: the benchmark's spawned worker processes import it again (they get this sys.path)
    if str(BENCH.parent) not in sys.path:
        sys.path.insert(0, str(BENCH.parent))
    return importlib.import_module("bench_drift")


def test_quick_benchmark_no_false_alarm_and_abrupt_drifts_detected(tmp_path, capsys):
    bench = _bench()
    outcomes = bench.main(["--quick", "--workers", "2", "--plot", str(tmp_path / "delay.png")])
    assert len(outcomes) == len(bench.FAMILIES) * len(bench.NOISES) * 2 * 2
    assert sum(o.false_alarms[bench.MONITOR] for o in outcomes) == 0
    assert sum(o.pre_change_predictions for o in outcomes) > 250_000
    drifted = [o for o in outcomes if o.case.drift]
    for o in drifted:
        if o.case.family in ("agrawal", "stagger", "sine"):  # abrupt changes that cost tens of accuracy points
            assert o.delay_labels[bench.MONITOR] is not None, o.case
            assert o.delay_labels[bench.MONITOR] <= 300, o.case
        if o.case.family == "sea_covariate":  # x2 moved: a data signal, no label needed
            assert o.data_signal_delay is not None and o.data_signal_delay <= 1_000, o.case
        if o.case.family in ("agrawal", "stagger", "sine") and not math.isnan(o.acc_after):
            assert o.acc_after < o.acc_before - 0.05  # the suite's drifts do cost accuracy
    # not at 20 % noise: SEA's 5-11 point drop there needs ~1,100+ labels at the budget's level (Lorden's bound),
    # close to the 1,950 labels the quick size has after the change
    tables = importlib.import_module("drift_load.tables")  # beside the script, on the path _bench() set
    for family in tables.ABRUPT:
        for noise in (0.0, 0.1):
            group = [o for o in drifted if o.case.family == family and o.case.noise == noise]
            mine, _ = tables.median_delay(group, bench.MONITOR)
            adwin, _ = tables.median_delay(group, "ADWIN")
            if adwin is not None:
                assert mine is not None and mine <= 2 * adwin, (family, noise, mine, adwin)
    summary = bench.summary(outcomes)
    assert len(summary) == 2 + len(bench.FAMILIES) * len(bench.NOISES)
    controls = [o for o in outcomes if not o.case.drift]
    assert all(o.retrains == 0 for o in controls)
    assert (tmp_path / "delay.png").stat().st_size > 10_000
    assert "| family | noise | detector |" in capsys.readouterr().out
