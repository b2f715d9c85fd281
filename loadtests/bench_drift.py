"""Drift-quality benchmark: the monitor's own transport-free decision logic (`DriftMonitor`) replayed offline over a
suite of streams with a known change point, beside river's detectors run directly on the same error streams.

    .venv/bin/python loadtests/bench_drift.py [--quick] [--seeds 10] [--workers 2] [--plot docs/drift_benchmark.png]
        [--markdown docs/drift_benchmark.md] [--save outcomes.pkl] [--load outcomes.pkl]
    mlops bench drift -- --quick

Per stream: a scikit-learn model is trained on the concept before the change (its own sample, noisy labels as in
production) and kept fixed; it serves `pre` predictions of the old concept, then `post` of the new one (controls:
the old concept throughout). Each prediction's label arrives `--label-delay` predictions later (joined by request
id), with label noise 0 / 10 / 20 % (classification: flipped labels; regression: Gaussian noise of that fraction
of the label's standard deviation). 50 predictions/s of stream time, so the model's 60 s cool-down is 3,000.

Families (river.datasets.synth): SEA 1→2 (pure concept drift), SEA 1→2 with a covariate shift of the irrelevant x2,
Agrawal function 0→2, Hyperplane gradual (weights start moving), STAGGER 0→1, Sine 0→1, Friedman global abrupt
(regression), and a no-drift control of each. Reported per family and noise: detection rate, median / p90 delay in
labelled records and in predictions (first retrain decision after the change), retrain decisions per episode with
the model never replaced, false alarms per 100k predictions (controls + pre-change segments), the first data-drift
signal without labels (predictions), and the estimated (confidence-based) vs realised accuracy after the change.
Baselines (same error streams): river's ADWIN, PageHinkley, KSWIN, DDM, HDDM_A with their defaults.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import pickle
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the drift_load package beside this script
from drift_load.tables import (  # noqa: E402
    FAMILIES,
    MONITOR,
    NOISES,
    plot,
    report,
    summary,
)

STEP_MS = 20  # 50 predictions/s, the demo's rate


@dataclass(frozen=True)
class Case:
    family: str
    noise: float
    seed: int
    drift: bool  # False: the family's no-drift control
    pre: int
    post: int
    label_delay: int
    kswin: bool = True  # KSWIN costs ~0.4 ms per label: the most expensive baseline by far


@dataclass
class Outcome:
    case: Case
    predictions: int
    pre_change_predictions: int  # predictions in which an alarm is false (a control: all of them)
    false_alarms: dict[str, int] = field(default_factory=dict)
    delay_labels: dict[str, int | None] = field(default_factory=dict)  # None: missed
    delay_predictions: dict[str, int | None] = field(default_factory=dict)
    retrains: int = 0  # monitor decisions after the change
    data_signal_delay: int | None = None  # predictions from the change to the first significant data signal
    acc_before: float = math.nan
    acc_after: float = math.nan
    est_before: float = math.nan
    est_after: float = math.nan
    seconds: float = 0.0


def _gen(family: str, concept: int, seed: int):  # noqa: ANN202
    from river.datasets import synth

    if family in ("sea", "sea_covariate"):
        return synth.SEA(variant=(1, 2)[concept], seed=seed)
    if family == "agrawal":
        return synth.Agrawal(classification_function=(0, 2)[concept], seed=seed)
    if family == "stagger":
        return synth.STAGGER(classification_function=(0, 1)[concept], seed=seed)
    if family == "sine":
        return synth.Sine(classification_function=(0, 1)[concept], seed=seed)
    if family == "friedman":  # global recurring abrupt drift at `position[0]`: set by the caller
        raise AssertionError("friedman is generated in one piece")
    raise ValueError(family)


def _stream(family: str, seed: int, n_pre: int, n_post: int, drift: bool) -> tuple[np.ndarray, np.ndarray]:
    """Features and clean labels: n_pre of the old concept, then n_post of the new one (or the old: a control)."""
    from itertools import islice

    from river.datasets import synth

    if family == "friedman":
        gen = synth.FriedmanDrift(drift_type="gra", position=(n_pre if drift else 10**9, 10**9 + 1), seed=seed)
        rows = list(islice(gen, n_pre + n_post))
    elif family == "hyperplane":
        gen = synth.Hyperplane(seed=seed, n_features=10, n_drift_features=5, mag_change=0.0, noise_percentage=0.0)
        it = iter(gen)
        rows = list(islice(it, n_pre))
        if drift:
            gen.mag_change = 0.01  # gradual: the boundary starts to move
        rows += list(islice(it, n_post))
    else:
        rows = list(islice(_gen(family, 0, seed), n_pre))
        rows += list(islice(_gen(family, 1 if drift else 0, seed + 1000), n_post))
    keys = sorted(rows[0][0], key=str)
    x = np.array([[float(r[0][k]) for k in keys] for r in rows])
    y = np.array([float(r[1]) for r in rows])
    if family == "sea_covariate" and drift:
        x[n_pre:, 2] = x[n_pre:, 2] * 0.5 + 5.0  # x2 (irrelevant to SEA) moves: a covariate shift
    return x, y


def _noisy(y: np.ndarray, noise: float, regression: bool, rng: np.random.Generator) -> np.ndarray:
    if noise == 0:
        return y
    if regression:
        return y + rng.normal(0.0, noise * float(np.std(y)), size=len(y))
    flip = rng.random(len(y)) < noise
    return np.where(flip, 1.0 - y, y)


def run_case(case: Case) -> Outcome:
    from mlops.definitions import Task
    from river import drift
    from river.drift import binary
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    from services.monitor import DriftMonitor, LabelEvent, ModelPolicy, MonitorConfig, MonitorSettings, Prediction
    from services.monitor.core import Detection

    started = time.perf_counter()
    regression = case.family == "friedman"
    rng = np.random.default_rng(case.seed)
    x_train, y_train = _stream(case.family, case.seed + 50_000, 3000, 0, False)
    model = (DecisionTreeRegressor(max_depth=8, random_state=0) if regression
             else DecisionTreeClassifier(max_depth=8, min_samples_leaf=20, random_state=0))
    model.fit(x_train, _noisy(y_train, case.noise, regression, rng))
    x, y_clean = _stream(case.family, case.seed, case.pre, case.post, case.drift)
    y = _noisy(y_clean, case.noise, regression, rng)
    if regression:
        pred = model.predict(x)
        score = pred
    else:
        proba = model.predict_proba(x)
        score = proba[:, 1] if proba.shape[1] > 1 else np.zeros(len(x))
        pred = (score > 0.5).astype(float)
    n = len(y)
    change = case.pre if case.drift else n  # predictions before `change` are pre-change
    out = Outcome(case, n, change)

    class Obs:
        def __init__(self) -> None:
            self.first_data: int | None = None
            self.estimates: list[tuple[int, float]] = []
            self.i = 0

        def on_detection(self, d: Detection, suppressed: str | None) -> None:
            if d.kind != "concept" and d.counts and self.first_data is None and self.i >= change:
                self.first_data = self.i - change

        def on_window(self, *a: object) -> None:
            return None

        def on_version(self, *a: object) -> None:
            return None

        def on_estimate(self, model_name: str, version: str, expected: float, realised: float | None) -> None:
            self.estimates.append((self.i, expected))

    obs = Obs()
    task = Task.REGRESSION if regression else Task.BINARY
    monitor = DriftMonitor(MonitorSettings(), obs, config=MonitorConfig(
        fallback=ModelPolicy("", task=task, cooldown_ms=60_000)))
    detectors = {"ADWIN": drift.ADWIN(), "PageHinkley": drift.PageHinkley(), "KSWIN": drift.KSWIN(seed=case.seed),
                 "DDM": binary.DDM(), "HDDM_A": binary.HDDMA()}
    if not case.kswin:
        del detectors["KSWIN"]
    if regression:  # the binary detectors need 0/1 errors
        del detectors["DDM"], detectors["HDDM_A"]
    for name in [MONITOR, *detectors]:
        out.false_alarms[name] = 0
        out.delay_labels[name] = out.delay_predictions[name] = None
    t0 = 1_700_000_000_000
    names = [f"x{j}" for j in range(x.shape[1])]
    labels_after = 0

    def fired(name: str, label_of: int, i_now: int) -> None:
        if label_of < change:
            out.false_alarms[name] += 1
        elif out.delay_labels[name] is None:
            out.delay_labels[name] = labels_after
            out.delay_predictions[name] = i_now - change

    for i in range(n + case.label_delay):
        obs.i = i
        decisions = []
        if i < n:
            p = Prediction(f"r{i}", f"e{i % 997}", "m", "1", dict(zip(names, x[i].tolist(), strict=True)),
                           float(score[i]), float(pred[i]), t0 + i * STEP_MS)
            decisions += monitor.observe_prediction(p)
        j = i - case.label_delay  # the label arriving now answers prediction j
        if 0 <= j < n:
            if j >= change:
                labels_after += 1
            decisions += monitor.observe_label("m", LabelEvent(f"e{j % 997}", t0 + j * STEP_MS, float(y[j]),
                                                               request_id=f"r{j}"))
            err = abs(pred[j] - y[j]) if regression else float(pred[j] != y[j])
            for name, det in detectors.items():
                det.update(err)
                if det.drift_detected:
                    fired(name, j, i)
        for _d in decisions:
            if i < change:
                out.false_alarms[MONITOR] += 1
            else:
                out.retrains += 1
                if out.delay_labels[MONITOR] is None:
                    out.delay_labels[MONITOR] = labels_after
                    out.delay_predictions[MONITOR] = i - change
    out.data_signal_delay = obs.first_data
    if not regression:
        right = pred == y
        out.acc_before = float(right[max(0, change - 1000):change].mean())
        out.acc_after = float(right[-1000:].mean()) if case.drift else math.nan
        before = [e for i, e in obs.estimates if i < change]
        out.est_before = before[-1] if before else math.nan
        out.est_after = obs.estimates[-1][1] if case.drift and obs.estimates else math.nan
    out.seconds = time.perf_counter() - started
    return out


def cases(seeds: int, pre: int, post: int, label_delay: int, kswin: bool = True,
          families: tuple[str, ...] = FAMILIES) -> list[Case]:
    return [Case(f, noise, seed, d, pre, post, label_delay, kswin) for f in families for noise in NOISES
            for seed in range(seeds) for d in (True, False)]


def main(argv: list[str] | None = None) -> list[Outcome]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI size: 2 seeds, shorter streams, no KSWIN")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--pre", type=int, default=6000, help="predictions before the change")
    ap.add_argument("--post", type=int, default=6000, help="predictions after the change")
    ap.add_argument("--label-delay", type=int, default=50, help="predictions between a prediction and its label")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-kswin", action="store_true", help="leave out the KSWIN baseline (~0.4 ms per label)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of the stream families")
    ap.add_argument("--plot", type=Path, default=None, help="write the delay-vs-noise plot (PNG) here")
    ap.add_argument("--markdown", type=Path, default=None, help="write the summary and the full table here")
    ap.add_argument("--save", type=Path, default=None, help="pickle the outcomes here (`--load` renders them again)")
    ap.add_argument("--load", type=Path, default=None, help="render saved outcomes instead of running")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.pre, args.post, args.no_kswin = 2, 3000, 2000, True
    todo = cases(args.seeds, args.pre, args.post, args.label_delay, not args.no_kswin,
                 tuple(f for f in args.families.split(",") if f))
    random.Random(0).shuffle(todo)  # mix slow and fast families across workers
    started = time.perf_counter()
    if args.load is not None:
        outcomes = pickle.loads(args.load.read_bytes())
        return _render(args, outcomes, f"{len(outcomes)} streams (saved in {args.load})")
    # spawned workers: forking a process that runs other threads (gRPC, Kafka clients in a test session) can hang
    # or kill a child
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(run_case, todo, chunksize=2))
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_bytes(pickle.dumps(outcomes))
    return _render(args, outcomes, f"{len(outcomes)} streams, {time.perf_counter() - started:.0f} s on "
                                   f"{args.workers} workers")


def _render(args: argparse.Namespace, outcomes: list[Outcome], what: str) -> list[Outcome]:
    total = sum(o.predictions for o in outcomes)
    exposure = sum(o.pre_change_predictions for o in outcomes)
    head = f"{what}: {total:,} predictions ({exposure:,} in controls and pre-change segments)"
    fa = sum(o.false_alarms[MONITOR] for o in outcomes)
    tail = f"monitor false alarms in all: {fa} over {exposure:,} predictions"
    text = [head, "", *summary(outcomes), "", *report(outcomes), "", tail]
    print("\n".join(text))
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(text) + "\n")
    if args.plot is not None:
        plot(outcomes, args.plot)
        print(f"plot: {args.plot}")
    return outcomes


if __name__ == "__main__":
    main()
