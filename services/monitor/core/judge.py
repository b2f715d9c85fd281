"""The live judgement of a challenger: plain prediction rows and labels in, at most one `Verdict` per (model,
challenger version, phase) out.

A model has a second version in flight when rows of another role than the champion's arrive for it (the registry
announced one; inference logs its rows with the role). One `Trial` per model holds it:
- shadow / guard (paired): the second version scored a share of the champion's requests. Its row and the champion's
  row of the same request (same row request id) are paired first, then the pair waits in the trial's own
  `LabelJoiner`, so one label reaches both rows at once. The per-row difference of the gate outcome (correct or
  not; minus the absolute error of a regression) is tested with the paired one-sided mSPRT
  (`services.monitor.core.sequential`).
- canary (two arms): the challenger answered a share of requests; each labelled row counts in the arm that served
  it (one joiner for both arms: a label joins exactly one row), and the difference of the arms' means is tested.
These rows never reach the champion's drift detectors (`DriftMonitor` hands them here first), and the trial's
joiner is separate from the champion's, so the drift path sees exactly what it saw before challengers existed.

Decisions (the model's `rollout` policy; α = 1 - confidence, each bound one-sided at level α, valid however
often it is looked at), never before `min_labels` labelled rows (per arm for a canary):
- shadow / canary: `promote` when the lower bound of (challenger - champion) exceeds `min_improvement`; `retire`
  when the upper bound falls below it, or undecided at `max_labels`.
- guard (the second version is the previous champion, kept after a promotion): `rollback` when the lower bound of
  (guard - champion) exceeds `rollback_margin`, i.e. the new champion is worse by more than the margin; `keep`
  when `guard_labels` pass without that. No margin declared: guard rows are not judged.
The verdict names the versions by their role on the wire: `champion_version` the version with role champion,
`challenger_version` the second one (for a guard, the previous champion); `difference` is second minus champion.

A decided trial ignores further rows (its verdict id is remembered, also across a restart: the edge reads the
published verdicts back), and a trial restarts from nothing when its champion changes (not for in-flight rows of
the previous champion); a new challenger version replaces it. Time is stream time, as everywhere in the core.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from mlops.definitions.model import RolloutPolicy, Task

from services.monitor.core.domain import LabelEvent, Prediction
from services.monitor.core.join import LabelJoiner
from services.monitor.core.policy import ModelPolicy
from services.monitor.core.sequential import Interval, Running, paired_interval, two_sample_interval
from services.monitor.settings import MonitorSettings

__all__ = ["CHAMPION", "PHASES", "ChallengerJudge", "JudgedRow", "Trial", "Verdict", "verdict_id"]

CHAMPION = "champion"
PAIRED = ("shadow", "guard")
PHASES = (*PAIRED, "canary")
REMEMBERED_VERDICTS = 10_000  # verdict ids kept, decided or ended (oldest forgotten first)
# pseudo-rows of prior variance per test (outcomes in [0, 1]): two rows (+1, -1) of a paired difference, two rows
# (0, 1) of an arm — keeps a short run of identical outcomes from collapsing the interval; none for a regression
_PRIOR = {"paired": (2.0, 2), "arm": (0.5, 2)}


def verdict_id(model: str, champion_version: str, challenger_version: str, phase: str) -> str:
    """Unique per trial: the champion is part of it, because a version can come back in the same phase against
    another champion (v2 guards v3, v3 is rolled back, later v2 guards v4) and must be judged again."""
    return f"{model}/{champion_version}/{challenger_version}/{phase}"


@dataclass(frozen=True, slots=True)
class Verdict:
    model_name: str
    champion_version: str
    challenger_version: str
    phase: str  # shadow | canary | guard
    verdict: str  # promote | retire | rollback | keep
    metric: str  # accuracy | mae
    champion_metric: float
    challenger_metric: float
    difference: float  # challenger - champion in the metric's better direction (> 0: the second version is better)
    ci_low: float
    ci_high: float
    labelled_rows: int  # per arm for a canary (the smaller arm)
    test: str
    confidence: float
    reason: str
    at_ms: int  # stream time of the deciding label's row

    @property
    def verdict_id(self) -> str:
        return verdict_id(self.model_name, self.champion_version, self.challenger_version, self.phase)


@dataclass(slots=True)
class JudgedRow:
    """What the trial's label join holds: a champion row and its paired second row (shadow, guard), or one arm's
    row of a canary (the other side None)."""

    request_id: str
    entity_id: str
    join_time_ms: int
    champion: Prediction | None
    challenger: Prediction | None


@dataclass(slots=True)
class Trial:
    """One model's second version in flight, and the evidence so far."""

    model_name: str
    challenger_version: str
    phase: str
    joiner: LabelJoiner[JudgedRow] | None
    champion_version: str = ""
    previous_champion: str = ""
    champion: Running = field(default_factory=Running)  # per-row outcomes of the champion's labelled rows
    challenger: Running = field(default_factory=Running)
    diff: Running = field(default_factory=Running)  # paired: challenger - champion per labelled row
    waiting: dict[str, OrderedDict[str, Prediction]] = field(default_factory=lambda: {
        CHAMPION: OrderedDict(), "second": OrderedDict()})  # paired: rows waiting for their request's other row
    interval: Interval | None = None
    verdict: Verdict | None = None
    done: bool = False  # decided (here, or before a restart): further rows are ignored
    restarts: int = 0

    @property
    def paired(self) -> bool:
        return self.phase in PAIRED

    @property
    def labelled_rows(self) -> int:
        return self.diff.n if self.paired else min(self.champion.n, self.challenger.n)

    def fresh(self) -> None:
        """The champion changed: the evidence so far compared another version."""
        self.champion, self.challenger, self.diff = Running(), Running(), Running()
        for rows in self.waiting.values():
            rows.clear()
        self.interval = None
        self.restarts += 1


@dataclass
class JudgeCounts:
    rows: dict[str, int] = field(default_factory=dict)  # second-role rows by role
    unpaired: int = 0  # paired rows dropped without their request's other row
    stale: int = 0  # rows of a previous champion in flight, or of a decided challenger
    unjudged: int = 0  # second-role rows nobody judges (unknown role, undeclared model, guard without a margin)


class ChallengerJudge:
    """Feed every prediction row (`observe_prediction`) and every label (`observe_label`); take the verdicts
    (`take_verdicts`)."""

    def __init__(self, settings: MonitorSettings, policy_of: Callable[[str], ModelPolicy | None]):
        self.settings = settings
        self.policy_of = policy_of
        self.trials: dict[str, Trial] = {}
        self.champions: dict[str, str] = {}  # model → the version its champion rows last named
        self.decided: OrderedDict[str, None] = OrderedDict()  # verdict ids published (here or before a restart)
        self.ended: OrderedDict[str, None] = OrderedDict()  # trials replaced or promoted before any verdict
        self.counts = JudgeCounts()
        self._verdicts: list[Verdict] = []

    # --- input ------------------------------------------------------------------------------------------------

    def observe_prediction(self, p: Prediction) -> bool:
        """Take `p` if a trial needs it; True when it is a second version's row (the champion's drift path must
        not see it), False for a champion row (which the drift path takes as before)."""
        role = p.role or CHAMPION
        trial = self.trials.get(p.model_name)
        if role == CHAMPION:
            self.champions[p.model_name] = p.model_version
            if trial is not None:
                self._champion_row(trial, p)
            return False
        c = self.counts
        c.rows[role] = c.rows.get(role, 0) + 1
        if trial is None or (trial.challenger_version, trial.phase) != (p.model_version, role):
            trial = self._open(p, role)
            if trial is None:
                return True
        if trial.done:
            c.stale += 1
            return True
        if trial.paired:
            self._pair(trial, p, "second", CHAMPION)
        else:
            self._join(trial, JudgedRow(p.request_id, p.entity_id, p.join_time_ms, None, p))
        return True

    def observe_label(self, model_name: str, label: LabelEvent) -> None:
        trial = self.trials.get(model_name)
        if trial is None or trial.joiner is None:
            return
        row = trial.joiner.add_label(label)
        if row is not None:
            self._labelled(trial, row, label)

    def forget_undeclared(self) -> None:
        """A new definitions revision: trials of models no longer declared end (their verdict ids are kept)."""
        for name in [n for n in self.trials if self.policy_of(n) is None]:
            del self.trials[name]

    def take_verdicts(self) -> list[Verdict]:
        out, self._verdicts = self._verdicts, []
        return out

    def restore(self, verdict_ids: list[str]) -> None:
        """Verdicts published before a restart: those trials are not judged again."""
        for vid in verdict_ids:
            _remember(self.decided, vid)

    # --- rows -------------------------------------------------------------------------------------------------

    def _open(self, p: Prediction, role: str) -> Trial | None:
        policy = self.policy_of(p.model_name)
        unjudged = policy is None or role not in PHASES or (role == "guard" and policy.rollout.rollback_margin
                                                             is None)
        if unjudged:
            self.counts.unjudged += 1
            return None
        vid = verdict_id(p.model_name, self.champions.get(p.model_name, ""), p.model_version, role)
        if vid in self.ended:  # in flight from a challenger already replaced: must not displace the new one
            self.counts.stale += 1
            return None
        old = self.trials.get(p.model_name)
        if old is not None:
            self._end(old)
        joiner = None if vid in self.decided else self._joiner()
        trial = self.trials[p.model_name] = Trial(p.model_name, p.model_version, role, joiner,
                                                  champion_version=self.champions.get(p.model_name, ""))
        trial.done = joiner is None  # judged before (e.g. before a restart): remembered as decided
        return trial

    def _champion_row(self, trial: Trial, p: Prediction) -> None:
        v = p.model_version
        if v == trial.challenger_version:
            if trial.phase == "guard":  # the guard's own rows from before it was replaced, still in flight
                self.counts.stale += 1
                return
            self._end(trial)  # the challenger was promoted: this trial is over
            del self.trials[trial.model_name]
            return
        if trial.done:
            return
        if v != trial.champion_version:
            if v == trial.previous_champion:  # in flight from before the change
                self.counts.stale += 1
                return
            if trial.champion_version:
                trial.previous_champion = trial.champion_version
                trial.fresh()
                trial.joiner = self._joiner()
            trial.champion_version = v
            if verdict_id(trial.model_name, v, trial.challenger_version, trial.phase) in self.decided:
                trial.done = True  # the champion was unknown when it opened (a restart): judged before
                return
        if trial.paired:
            self._pair(trial, p, CHAMPION, "second")
        else:
            self._join(trial, JudgedRow(p.request_id, p.entity_id, p.join_time_ms, p, None))

    def _end(self, trial: Trial) -> None:
        if not trial.done:
            _remember(self.ended, verdict_id(trial.model_name, trial.champion_version, trial.challenger_version,
                                             trial.phase))

    def _joiner(self) -> LabelJoiner[JudgedRow]:
        s = self.settings
        return LabelJoiner[JudgedRow](s.join_window_ms, s.join_tolerance_ms, s.join_capacity, s.label_capacity,
                                      by_request_only=True)

    def _pair(self, trial: Trial, p: Prediction, side: str, other: str) -> None:
        partner = trial.waiting[other].pop(p.request_id, None)
        if partner is not None:
            champion, second = (p, partner) if side == CHAMPION else (partner, p)
            self._join(trial, JudgedRow(champion.request_id, champion.entity_id, champion.join_time_ms, champion,
                                        second))
            return
        waiting = trial.waiting[side]
        waiting[p.request_id] = p
        # serve time, not the features' as-of time (an idle entity's features are old, its request is not)
        horizon = p.timestamp_ms - self.settings.challenger_pair_window_ms
        capacity = self.settings.join_capacity
        while waiting:
            _, oldest = next(iter(waiting.items()))
            if len(waiting) <= capacity and oldest.timestamp_ms >= horizon:
                break
            waiting.popitem(last=False)
            self.counts.unpaired += 1

    def _join(self, trial: Trial, row: JudgedRow) -> None:
        assert trial.joiner is not None
        for joined, label in trial.joiner.add_prediction(row):
            self._labelled(trial, joined, label)
            if trial.done:
                return

    # --- judgement --------------------------------------------------------------------------------------------

    def _labelled(self, trial: Trial, row: JudgedRow, label: LabelEvent) -> None:
        if trial.done:
            return
        policy = self.policy_of(trial.model_name)
        if policy is None:  # no longer declared
            del self.trials[trial.model_name]
            return
        regression = policy.task is Task.REGRESSION
        outcomes = [None if p is None else _outcome(p.predicted_label, label.label, regression)
                    for p in (row.champion, row.challenger)]
        a, b = outcomes
        if a is not None:
            trial.champion.add(a)
        if b is not None:
            trial.challenger.add(b)
        if a is not None and b is not None:
            trial.diff.add(b - a)
        self._decide(trial, policy, regression, row)

    def _decide(self, trial: Trial, policy: ModelPolicy, regression: bool, row: JudgedRow) -> None:
        rollout = policy.rollout
        n = trial.labelled_rows
        if n < rollout.min_labels:
            return
        alpha, tuned = 1.0 - rollout.confidence, self.settings.challenger_tuned_labels
        prior = (0.0, 0) if regression else _PRIOR["paired" if trial.paired else "arm"]
        trial.interval = ci = (paired_interval(trial.diff, alpha, tuned, *prior) if trial.paired else
                               two_sample_interval(trial.champion, trial.challenger, alpha, tuned, *prior))
        verdict, why = _rule(trial.phase, rollout, ci, n)
        if verdict is None:
            return
        at = max(p.timestamp_ms for p in (row.champion, row.challenger) if p is not None)
        trial.verdict = v = self._verdict(trial, policy, regression, verdict, why, ci, at)
        trial.done, trial.joiner = True, None  # nothing more to join: free the rows
        for rows in trial.waiting.values():
            rows.clear()
        _remember(self.decided, v.verdict_id)
        self._verdicts.append(v)

    def _verdict(self, trial: Trial, policy: ModelPolicy, regression: bool, verdict: str, why: str,
                 ci: Interval, at_ms: int) -> Verdict:
        metric = "mae" if regression else "accuracy"
        sign = -1.0 if regression else 1.0  # outcomes of a regression are minus the absolute error
        champ, chall = sign * trial.champion.mean, sign * trial.challenger.mean
        n, rollout = trial.labelled_rows, policy.rollout
        test = "paired mSPRT (normal mixture)" if trial.paired else "two-sample mSPRT (normal mixture)"
        second = "previous champion, guard" if trial.phase == "guard" else f"challenger, {trial.phase}"
        rows = (f"{n} labelled rows" if trial.paired else
                f"{trial.challenger.n} canary and {trial.champion.n} champion labelled rows")
        reason = (f"{trial.model_name} v{trial.challenger_version} ({second}) vs "
                  f"v{trial.champion_version} (champion) on {rows}: {metric} {chall:.4f} vs {champ:.4f}, "
                  f"difference {ci.estimate:+.4f} ({rollout.confidence:.0%} bounds {ci.low:+.4f} .. "
                  f"{ci.high:+.4f}, {test}): {why}")
        return Verdict(trial.model_name, trial.champion_version, trial.challenger_version, trial.phase, verdict,
                       metric, champ, chall, ci.estimate, ci.low, ci.high, n, test, rollout.confidence, reason,
                       at_ms)



def _remember(ids: OrderedDict[str, None], vid: str) -> None:
    ids[vid] = None
    ids.move_to_end(vid)
    while len(ids) > REMEMBERED_VERDICTS:
        ids.popitem(last=False)


def _outcome(predicted: float, label: float, regression: bool) -> float:
    """The per-row gate outcome, higher is better: 1/0 correct for a class, minus the absolute error otherwise."""
    if regression:
        return -abs(predicted - label)
    return float(round(predicted) == round(label))


def _rule(phase: str, rollout: RolloutPolicy, ci: Interval, n: int) -> tuple[str | None, str]:
    """The decision the interval supports now (None: keep watching) and why, in words."""
    if phase == "guard":
        margin = rollout.rollback_margin
        assert margin is not None
        if ci.low > margin:
            return "rollback", (f"the new champion is worse than the previous one by more than the rollback "
                                f"margin {margin:.4f} (lower bound {ci.low:+.4f})")
        if n >= rollout.guard_labels:
            return "keep", f"no loss beyond the rollback margin {margin:.4f} over {rollout.guard_labels} labels"
        return None, ""
    need = rollout.min_improvement
    if ci.low > need:
        return "promote", f"the lower bound {ci.low:+.4f} exceeds the required improvement {need:.4f}"
    if ci.high < need:
        return "retire", f"the upper bound {ci.high:+.4f} is below the required improvement {need:.4f}"
    if n >= rollout.max_labels:
        return "retire", (f"undecided after max_labels={rollout.max_labels}: no evidence of an improvement of "
                          f"{need:.4f}")
    return None, ""

