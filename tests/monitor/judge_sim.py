"""Simulated live traffic for the challenger judge: a champion and a second version scoring the same requests
(shadow, guard) or sharing them (canary), with labels that may be noisy, late or early.

Paired outcomes follow the discordance model: on a share `discordant` of the rows exactly one of the two models is
right, and the second version is the one that is right on (discordant + delta) / 2 of all rows, so its accuracy
is `delta` above the champion's whatever the champion's accuracy. Retrained versions of one model mostly err on the
same hard rows; `discordant` says how often they disagree."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from mlops.definitions.model import RolloutPolicy

from services.monitor import LabelEvent, MonitorSettings, Prediction
from services.monitor.core import ChallengerJudge, ModelPolicy, Verdict

MODEL = "m"
CHAMPION_ACCURACY = 0.80


@dataclass(frozen=True)
class Outcome:
    verdict: str | None  # None: undecided when the stream ended
    labels: int  # labelled rows the verdict rests on (per arm for a canary); rows seen if undecided
    v: Verdict | None


def judge(rollout: RolloutPolicy, settings: MonitorSettings | None = None) -> ChallengerJudge:
    policy = ModelPolicy(MODEL, rollout=rollout)
    return ChallengerJudge(settings or MonitorSettings(), lambda name: policy if name == MODEL else None)


def row(rid: str, version: str, role: str, predicted: float, t: int) -> Prediction:
    return Prediction(rid, f"e{rid}", MODEL, version, {}, predicted, predicted, t, t, role=role)


def paired_stream(seed: int, delta: float, discordant: float, rows: int, *, role: str = "shadow",
                  noise: float = 0.0, delay: int = 0, early: float = 0.0, champion: str = "1",
                  second: str = "2") -> Iterator[tuple[str, object]]:
    """Events in arrival order: ("p", Prediction) and ("l", LabelEvent). Each request's champion row comes first,
    its `role` row next; its label `delay` requests later (a share `early` of labels before the rows), flipped
    with probability `noise`."""
    rng = np.random.default_rng(seed)
    u, y, flip = rng.random(rows), rng.integers(0, 2, rows), rng.random(rows) < noise
    only_second, only_champion = (discordant + delta) / 2, (discordant - delta) / 2
    both = CHAMPION_ACCURACY - only_champion
    late: deque[LabelEvent] = deque()
    for i in range(rows):
        champion_right = u[i] < both or only_second <= u[i] - both < only_second + only_champion
        second_right = u[i] < both + only_second
        rid, t = f"r{i}", 1_000_000 + i * 10
        label = LabelEvent(f"er{i}", t, float(y[i] ^ flip[i]), request_id=rid)
        if early and rng.random() < early:
            yield "l", label
        else:
            late.append(label)
        yield "p", row(rid, champion, "champion", float(y[i] if champion_right else 1 - y[i]), t)
        yield "p", row(rid, second, role, float(y[i] if second_right else 1 - y[i]), t)
        while len(late) > delay:
            yield "l", late.popleft()
    while late:
        yield "l", late.popleft()


def canary_stream(seed: int, delta: float, rows: int, fraction: float = 0.1) -> Iterator[tuple[str, object]]:
    """A canary: `fraction` of requests answered by v2 (accuracy + delta), the rest by v1; labels right after."""
    rng = np.random.default_rng(seed)
    y, u, arm = rng.integers(0, 2, rows), rng.random(rows), rng.random(rows) < fraction
    for i in range(rows):
        rid, t = f"r{i}", 1_000_000 + i * 10
        accuracy = CHAMPION_ACCURACY + (delta if arm[i] else 0.0)
        predicted = float(y[i] if u[i] < accuracy else 1 - y[i])
        yield "p", row(rid, "2" if arm[i] else "1", "canary" if arm[i] else "champion", predicted, t)
        yield "l", LabelEvent(f"er{i}", t, float(y[i]), request_id=rid)


def run(j: ChallengerJudge, events: Iterator[tuple[str, object]]) -> Outcome:
    """Feeds `events` until the first verdict."""
    labels = 0
    for kind, e in events:
        if kind == "p":
            j.observe_prediction(e)  # type: ignore[arg-type]
        else:
            labels += 1
            j.observe_label(MODEL, e)  # type: ignore[arg-type]
        verdicts = j.take_verdicts()
        if verdicts:
            return Outcome(verdicts[0].verdict, verdicts[0].labelled_rows, verdicts[0])
    return Outcome(None, labels, None)


def main() -> None:
    """The figures of the README (shipped defaults: confidence 0.95, min_labels 100, max_labels 5000):
    `python tests/monitor/judge_sim.py [seeds]` from the repository root, with the repository on PYTHONPATH."""
    import sys

    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    shadow = RolloutPolicy(mode="shadow")
    cases = [  # (what, rollout, delta, discordant)
        ("5 points better", shadow, 0.05, 0.10), ("5 points better", shadow, 0.05, 0.15),
        ("5 points better", shadow, 0.05, 0.20), ("5 points better, independent errors", shadow, 0.05, 0.29),
        ("equal", shadow, 0.0, 0.10), ("equal, nearly the same model", shadow, 0.0, 0.03),
        ("2 points better, 2 required", RolloutPolicy(mode="shadow", min_improvement=0.02), 0.02, 0.10),
        ("2 points worse", shadow, -0.02, 0.10),
    ]
    print("| challenger | discordant rows | promoted | retired | labels to verdict: median / p90 | within 500 |")
    print("|---|---|---|---|---|---|")
    for what, rollout, delta, discordant in cases:
        out = [run(judge(rollout), paired_stream(s, delta, discordant, rollout.max_labels + 10)) for s in range(seeds)]
        n = np.array([o.labels for o in out])
        promoted = sum(o.verdict == "promote" for o in out) / seeds
        retired = sum(o.verdict == "retire" for o in out) / seeds
        print(f"| {what} | {discordant:.0%} | {promoted:.1%} | {retired:.1%} | {np.median(n):.0f} / "
              f"{np.percentile(n, 90):.0f} | {np.mean(n <= 500):.0%} |", flush=True)


if __name__ == "__main__":
    main()
