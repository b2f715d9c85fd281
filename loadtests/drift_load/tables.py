"""The drift benchmark's tables and plot (what `loadtests/bench_drift.py` prints and saves), and the names of its
stream families, noise levels and detectors. Outcomes are `bench_drift.Outcome`s (typed `Any` here: the script
imports this module, not the other way round)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

FAMILIES = ("sea", "sea_covariate", "agrawal", "hyperplane", "stagger", "sine", "friedman")
ABRUPT = ("sea", "sea_covariate", "agrawal", "stagger", "sine", "friedman")  # hyperplane drifts gradually
NOISES = (0.0, 0.1, 0.2)
BASELINES = ("ADWIN", "PageHinkley", "KSWIN", "DDM", "HDDM_A")
MONITOR = "monitor"


def _pct(values: list[int], q: float) -> str:
    if not values:
        return "–"
    return f"{np.percentile(values, q):.0f}"


def report(outcomes: list[Any]) -> list[str]:
    lines = ["| family | noise | detector | detected | delay labels p50 / p90 | delay predictions p50 / p90 | "
             "false alarms / 100k | retrains / episode | data signal (pred.) p50 | est. vs real acc. after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for family in FAMILIES:
        for noise in NOISES:
            group = [o for o in outcomes if o.case.family == family and o.case.noise == noise]
            if not group:
                continue
            drifted = [o for o in group if o.case.drift]
            exposure = sum(o.pre_change_predictions for o in group)
            for det in [MONITOR, *BASELINES]:
                if det not in group[0].false_alarms:
                    continue
                delays = [o.delay_labels[det] for o in drifted if o.delay_labels[det] is not None]
                dpred = [o.delay_predictions[det] for o in drifted if o.delay_predictions[det] is not None]
                fa = sum(o.false_alarms[det] for o in group) / exposure * 100_000
                extra = ["", "", ""]
                if det == MONITOR:
                    data = [o.data_signal_delay for o in drifted if o.data_signal_delay is not None]
                    est = [(o.est_after, o.acc_after) for o in drifted if not math.isnan(o.est_after)]
                    extra = [f"{statistics.mean(o.retrains for o in drifted):.2f}",
                             _pct(data, 50) + (f" ({len(data)}/{len(drifted)})" if data else ""),
                             (f"{statistics.mean(e for e, _ in est):.3f} vs {statistics.mean(a for _, a in est):.3f}"
                              if est else "–")]
                name = f"**{det}**" if det == MONITOR else det
                lines.append(f"| {family} | {noise:.0%} | {name} | {len(delays)}/{len(drifted)} | "
                             f"{_pct(delays, 50)} / {_pct(delays, 90)} | {_pct(dpred, 50)} / {_pct(dpred, 90)} | "
                             f"{fa:.2f} | {' | '.join(extra)} |")
    return lines


def median_delay(outcomes: list[Any], det: str) -> tuple[float | None, int]:
    """(median delay in labels over the detected episodes, episodes detected)."""
    d = [o.delay_labels[det] for o in outcomes if o.case.drift and o.delay_labels.get(det) is not None]
    return (float(np.median(d)) if d else None), len(d)


def summary(outcomes: list[Any]) -> list[str]:
    """Per family and noise: the monitor beside ADWIN and the fastest river detector (median delay, among those
    detecting at least as many episodes as the monitor), and the monitor's delay as a multiple of each."""
    lines = ["| stream | noise | monitor: detected | labels p50 / p90 | false alarms /100k | ADWIN: detected, "
             "labels p50, FA /100k | fastest river (labels p50, detected, FA /100k) | monitor ÷ ADWIN | "
             "monitor ÷ fastest |", "|---|---|---|---|---|---|---|---|---|"]
    for family in FAMILIES:
        for noise in NOISES:
            group = [o for o in outcomes if o.case.family == family and o.case.noise == noise]
            if not group:
                continue
            episodes = sum(o.case.drift for o in group)
            exposure = sum(o.pre_change_predictions for o in group)

            def fa(det: str, group: list[Any] = group, exposure: int = exposure) -> float:
                return sum(o.false_alarms[det] for o in group) / exposure * 100_000

            mine, found = median_delay(group, MONITOR)
            delays = [o.delay_labels[MONITOR] for o in group if o.case.drift and o.delay_labels[MONITOR] is not None]
            adwin, adwin_found = median_delay(group, "ADWIN")
            rivals = [(m, det, n) for det in BASELINES if det in group[0].false_alarms
                      for m, n in [median_delay(group, det)] if m is not None and n >= found]
            best = min(rivals, default=None)

            def ratio(other: float | None, mine: float | None = mine) -> str:
                return f"{mine / other:.2f}" if mine is not None and other else "–"

            lines.append(
                f"| {family} | {noise:.0%} | {found}/{episodes} | {_pct(delays, 50)} / {_pct(delays, 90)} | "
                f"{fa(MONITOR):.2f} | {adwin_found}/{episodes}, {adwin if adwin is None else f'{adwin:.0f}'}, "
                f"{fa('ADWIN'):.2f} | "
                + (f"{best[1]} {best[0]:.0f} ({best[2]}/{episodes}), {fa(best[1]):.2f}" if best else "–")
                + f" | {ratio(adwin)} | {ratio(best[0] if best else None)} |")
    return lines


def plot(outcomes: list[Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(18, 8), sharex=True)
    for ax, family in zip(axes.flat, FAMILIES, strict=False):
        for det in [MONITOR, *BASELINES]:
            if not any(det in o.delay_labels for o in outcomes if o.case.family == family):
                continue
            ys = []
            for noise in NOISES:
                d = [o.delay_labels.get(det) for o in outcomes
                     if o.case.family == family and o.case.noise == noise and o.case.drift]
                d = [v for v in d if v is not None]
                ys.append(float(np.median(d)) if d else np.nan)
            ax.plot([n * 100 for n in NOISES], ys, marker="o", label=det, linewidth=3 if det == MONITOR else 1)
        ax.set_title(family)
        ax.set_yscale("log")
        ax.set_xlabel("label noise (%)")
        ax.set_ylabel("median delay (labelled records)")
    axes.flat[-1].axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Detection delay vs label noise (missed detections left out; see the table for rates)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
