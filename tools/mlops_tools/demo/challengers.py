"""The demo's figures of live judgement: each challenger a model had on live traffic (announced as shadow or canary),
the monitor's verdicts on it (labelled rows, both metrics, the interval of their difference), what the registry
did (promoted, retired, rolled back) and the audit entries that carry the evidence — as plain values, with the
timeline's sentences and the summary's rows. The watcher (demo.watch) fills them from `model.promoted`,
`challenger.verdicts` and `registry.log`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditEvidence", "Challenger", "LiveLoop", "LiveVerdict", "Switch"]

# a champion's announcement has role "" or "champion"; the second version of a model has one of these
SECOND_ROLES = ("shadow", "canary", "guard")


@dataclass(frozen=True)
class Switch:
    """One change of what serves a model, with the client's traffic as it stood: requests answered and failed."""

    t_s: float
    what: str
    requests: int
    failed: int


@dataclass(frozen=True)
class LiveVerdict:
    """One `ChallengerVerdict`, as plain values (`difference` > 0: the challenger is better)."""

    t_s: float
    verdict_id: str
    phase: str  # shadow | canary | guard
    verdict: str  # promote | retire | rollback | keep
    champion_version: str
    challenger_version: str
    metric: str
    champion_metric: float
    challenger_metric: float
    difference: float
    ci_low: float
    ci_high: float
    labelled_rows: int
    test: str
    confidence: float
    reason: str

    @classmethod
    def of(cls, t_s: float, m: Any) -> LiveVerdict:
        return cls(t_s, m.verdict_id, m.phase, m.verdict, m.champion_version, m.challenger_version, m.metric,
                   m.champion_metric, m.challenger_metric, m.difference, m.ci_low, m.ci_high, int(m.labelled_rows),
                   m.test, m.confidence, m.reason)

    @property
    def _points(self) -> bool:
        """Accuracy-like metrics (0..1) read better in points."""
        return self.metric in ("accuracy", "auc", "macro_f1")

    def value(self, v: float) -> str:
        return f"{v * 100:.1f} %" if self._points else f"{v:.4g}"

    def delta(self, v: float) -> str:
        return f"{v * 100:+.1f} pts" if self._points else f"{v:+.4g}"

    @property
    def interval(self) -> str:
        """`+18.2 pts [+9.1, +27.3] (95 %, paired mSPRT)`: the difference with its confidence interval."""
        lo, hi = (f"{v * 100:+.1f}" if self._points else f"{v:+.4g}" for v in (self.ci_low, self.ci_high))
        return f"{self.delta(self.difference)} [{lo}, {hi}] ({self.confidence * 100:g} %, {self.test or 'test'})"

    @property
    def metrics(self) -> str:
        """`accuracy v2 98.6 % vs v1 80.4 %` (in a guard phase the challenger is the previous champion)."""
        return (f"{self.metric} v{self.challenger_version} {self.value(self.challenger_metric)} vs "
                f"v{self.champion_version} {self.value(self.champion_metric)}")

    def sentence(self) -> str:
        """The timeline's line for this verdict."""
        return (f"LIVE VERDICT {self.verdict.upper()} ({self.phase} phase, v{self.challenger_version} vs champion "
                f"v{self.champion_version}): {self.labelled_rows} labelled rows, {self.metrics}, difference "
                f"{self.interval}")


@dataclass
class Challenger:
    """A version served beside the champion: announced, judged, then promoted, retired or rolled back."""

    version: str
    role: str  # shadow | canary
    fraction: float
    announced_t_s: float
    labels_at_announce: int = 0  # labels the demo had sent by then (what the verdict waited for)
    rows: int = 0  # rows it answered (logged with its role: off the response path for a shadow)
    verdict: LiveVerdict | None = None  # the verdict of its shadow / canary phase
    outcome: str = ""  # promoted | retired | withdrawn
    outcome_t_s: float | None = None
    guard: LiveVerdict | None = None  # after a promotion: the guard phase's verdict (keep | rollback)
    guard_rows: int = 0  # rows the previous champion answered beside it as the guard

    @property
    def verdict_delay_s(self) -> float | None:
        return None if self.verdict is None else self.verdict.t_s - self.announced_t_s

    def row(self) -> dict[str, str]:
        """The summary's rows about this challenger."""
        v = self.verdict
        g = self.guard
        return {
            "challenger": f"v{self.version} {self.role} {self.fraction * 100:g} % → {self.outcome or 'pending'}",
            "live verdict": "-" if v is None else
            f"{v.verdict} on {v.labelled_rows} labels, {self.verdict_delay_s:.1f} s after the announcement",
            "live metric": "-" if v is None else v.metrics,
            "difference": "-" if v is None else v.interval,
            "shadow rows": f"{self.rows}" + (f" (then {self.guard_rows} guard rows)" if self.guard_rows else ""),
            "guard": "-" if g is None else f"{g.verdict} on {g.labelled_rows} labels: {g.metrics}",
        }


@dataclass(frozen=True)
class AuditEvidence:
    """An audit entry of a live decision: what the registry did, on which verdict."""

    t_s: float
    version: str
    action: str
    actor: str
    status: str
    why: str
    verdict_id: str
    labelled_rows: int


@dataclass
class LiveLoop:
    """What a model's live judgement did over the run (a part of its `ModelLoop`)."""

    rollout: str = "offline"  # shadow / canary (with the fraction) or offline
    challengers: list[Challenger] = field(default_factory=list)
    verdicts: list[LiveVerdict] = field(default_factory=list)
    audit: list[AuditEvidence] = field(default_factory=list)
    switches: list[Switch] = field(default_factory=list)
    champions: list[str] = field(default_factory=list)  # every version announced as champion, in order
    shadow_rows: int = 0  # rows logged with role shadow / guard (never returned to a client)
    guard_version: str = ""  # the previous champion while it guards a promotion ("" otherwise)

    @property
    def judging(self) -> bool:
        """A live judgement is under way: a challenger without its outcome, or a guard."""
        return bool(self.guard_version) or any(not c.outcome for c in self.challengers)

    def challenger(self, version: str) -> Challenger | None:
        return next((c for c in reversed(self.challengers) if c.version == version), None)

    def rows(self) -> dict[str, str]:
        """The summary's rows of the live judgement (every challenger's figures, joined)."""
        rows: dict[str, list[str]] = {"rollout": [self.rollout]}
        for c in self.challengers:
            for k, v in c.row().items():
                rows.setdefault(k, []).append(v)
        keys = ("rollout", "challenger", "live verdict", "live metric", "difference", "shadow rows", "guard")
        return {k: " | ".join(rows.get(k, ["-"])) for k in keys}
