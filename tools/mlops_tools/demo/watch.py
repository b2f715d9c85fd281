"""The demo's watcher: reads every outcome topic of the run from the start and turns its records into timeline
events and figures. Accuracy is each served row of the prediction log against the label of the record whose
features it used (entity + features_as_of_ms identify that record); rows a shadow or guard answered off the
response path are counted apart. A model's live judgement comes from `model.promoted` (the champion and the second
version, by role), `challenger.verdicts` and the audit entries of `registry.log` that carry a verdict."""

from __future__ import annotations

from typing import Any

from mlops.topics import CHALLENGER_VERDICTS

from mlops_tools.demo.challengers import SECOND_ROLES, AuditEvidence, Challenger, LiveVerdict
from mlops_tools.demo.loop import Stream, Traffic
from mlops_tools.follow import FOLLOWED, TopicFollower

__all__ = ["watch"]


def watch(traffic: Traffic) -> None:
    """Follow the run's outcome topics until the traffic stops (thread body)."""
    follower = TopicFollower(traffic.bus, (*FOLLOWED, CHALLENGER_VERDICTS), client_id="mlops-demo-watch",
                             start="beginning")
    try:
        while not traffic.stop.is_set():
            for kind, message in follower.poll(0.2):
                _on_record(traffic, kind, message)
    finally:
        follower.close()


def _on_record(traffic: Traffic, kind: str, m: Any) -> None:
    if kind == "events.dlq":
        traffic.result.dlq += 1
        return
    # every other outcome names its model; one the demo does not run (another team's) is not ours to count
    s = traffic.streams.get(m.model_name) or (next(iter(traffic.streams.values())) if not m.model_name else None)
    if s is None:
        return
    r, timeline = s.loop, traffic.timeline
    if kind == "predictions":  # one request's rows (PredictionColumns)
        role = m.role or "champion"
        if role == "guard":  # the previous champion mirrored beside the promoted challenger
            c = next((x for x in r.live.challengers if x.outcome.startswith("promoted")), None)
            if c is not None:
                c.guard_rows += m.rows
        elif role != "champion":
            c = r.live.challenger(m.model_version)
            if c is not None:
                c.rows += m.rows
            if role in ("shadow", "guard"):  # never returned to a client: not part of what was served
                r.live.shadow_rows += m.rows
                return
        for entity, as_of, predicted in zip(m.entity_list(), m.as_of_list(), m.predicted_labels.tolist(),
                                            strict=True):
            truth = s.truth.get((entity, as_of))
            if truth is not None:
                r.add(m.model_version, truth[2], predicted, truth[1])
        if not traffic.result.example_trace_id and m.trace_id:
            traffic.result.example_trace_id = m.trace_id
    elif kind == "retrain.requested":
        if m.requested_by != "monitor":
            return
        r.monitor_requests += 1
        if r.drift_t_s is None:
            r.false_alarms += 1
            traffic.say(s, f"FALSE ALARM: monitor requested a retrain before any drift: {m.reason}")
            return
        since = max(0, s.counts["events"] - (r.drift_at or 0))
        r.detections.append((timeline.now(), since, m.reason))
        r.outcomes_at_detection = len(r.gate) + len(r.training_failures)
        traffic.say(s, f"DRIFT DETECTED by the monitor {timeline.now() - r.drift_t_s:.1f}s / {since} records "
                       f"after the drift: {m.reason}")
    elif kind == "model.candidates":
        r.candidates += 1
        ids = set(m.lineage.coalesced_request_ids) | {m.lineage.retrain_request_id}
        if not any(i.startswith(s.bootstrap_id) for i in ids):
            r.retrains += 1
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(m.metrics.items()))
        traffic.say(s, f"trained: candidate {m.artifact_sha256[:12]} on {m.lineage.row_count} rows "
                       f"(holdout {metrics})")
    elif kind == "training.failures":
        r.training_failures.append(m.reason)
        traffic.say(s, f"TRAINING FAILED: {m.reason}")
    elif kind == "registry.log":
        _on_registry_event(traffic, s, m)
    elif kind == "model.promoted":
        _on_promoted(traffic, s, m)
    elif kind == "challenger.verdicts":
        v = LiveVerdict.of(timeline.now(), m)
        r.live.verdicts.append(v)
        if v.phase == "guard":  # the promoted challenger judged against the previous champion
            promoted = [r.live.challenger(x) for x in (v.champion_version, v.challenger_version)]
            c = next((x for x in promoted if x is not None and x.outcome), None)
            if c is not None:
                c.guard = v
        elif (c := r.live.challenger(v.challenger_version)) is not None:
            c.verdict = v
        traffic.say(s, v.sentence())


def _on_registry_event(traffic: Traffic, s: Stream, m: Any) -> None:
    r = s.loop
    if m.record_kind == "state" and m.gate_decision and m.status in ("champion", "challenger", "rejected") \
            and m.version not in {v for v, _, _ in r.gate}:
        r.gate.append((m.version, m.gate_decision, m.gate_reason))
        # a passing candidate is "promoted", or "challenger" where the model declares a live rollout
        decision = "PASSED" if m.gate_decision == "challenger" else m.gate_decision.upper()
        to = f" → {m.status}" + (f" ({m.role})" if m.role else "") if m.status != "rejected" else ""
        traffic.say(s, f"gate: v{m.version} {decision}{to}: {m.gate_reason}")
    elif m.record_kind == "audit" and m.evidence.verdict_id:
        e = AuditEvidence(traffic.timeline.now(), m.version, m.action, m.actor, m.status, m.why,
                          m.evidence.verdict_id, int(m.evidence.labelled_rows))
        r.live.audit.append(e)
        traffic.say(s, f"audit: v{e.version} {e.action} by {e.actor or '-'} → {e.status} (evidence "
                       f"{e.verdict_id}: {e.labelled_rows} labelled rows)")


def _on_promoted(traffic: Traffic, s: Stream, m: Any) -> None:
    """An announcement on `model.promoted`: the champion (role "" or champion: promote or rollback), or the
    model's second version (shadow / canary / guard: announced, or withdrawn with action retire)."""
    r, now = s.loop, traffic.timeline.now()
    if m.role in SECOND_ROLES or m.action == "retire":  # keyed "<model>/challenger"
        share = f"{m.traffic_fraction * 100:g} % of requests"
        if m.action == "retire":
            if m.version == r.live.guard_version:
                r.live.guard_version = ""
            c = r.live.challenger(m.version)
            if c is not None and c.outcome.startswith("promoted"):  # no guard declared: its old role just ends
                traffic.say(s, f"v{m.version}'s {m.role} role ends: it is the champion now")
                return
            if c is not None and not c.outcome:
                c.outcome, c.outcome_t_s = "retired", now
            traffic.switch(s, f"v{m.version} WITHDRAWN from live traffic ({m.role or 'challenger'} retired): "
                              f"{m.reason}")
        elif m.role == "guard":
            r.live.guard_version = m.version
            traffic.switch(s, f"v{m.version} kept as GUARD: mirrored {share} beside the new champion "
                              "(rolled back to it if the new one is worse on live labels)")
        else:
            r.live.rollout = f"{m.role} {m.traffic_fraction * 100:g} %"
            r.live.guard_version = ""  # the model's second version: a new challenger ends the guard's role
            for earlier in r.live.challengers:  # one challenger per model: a newer one replaces it
                if not earlier.outcome:
                    earlier.outcome, earlier.outcome_t_s = "replaced", now
            r.live.challengers.append(Challenger(m.version, m.role, m.traffic_fraction, now, s.counts["labels"]))
            if traffic.cfg.worse_challenger and r.drift_t_s is not None:
                # a candidate of the episode passed the gate: the episode ends, live traffic is normal again (a
                # candidate the gate refused, trained too early to see the episode, does not end it)
                traffic.episode_over.set()
            how = "mirrored, answers logged, never returned" if m.role == "shadow" else "answered by it, " \
                                                                                       "sticky by entity"
            champion = r.live.champions[-1] if r.live.champions else "-"
            traffic.switch(s, f"v{m.version} → {m.role.upper()}: challenger on {share} ({how}); champion "
                              f"v{champion}")
        return
    r.promoted.append((now, m.version))
    r.live.champions.append(m.version)
    c = r.live.challenger(m.version)
    if m.action == "rollback":
        demoted = r.live.challenger(m.previous_version)
        if demoted is not None:
            demoted.outcome = "promoted, then rolled back"
        traffic.switch(s, f"v{m.version} ROLLED BACK to champion (replacing v{m.previous_version or '-'}): "
                          f"{m.reason}")
    elif c is not None and not c.outcome:
        c.outcome, c.outcome_t_s = "promoted", now
        traffic.switch(s, f"v{m.version} PROMOTED to champion on live evidence (previous v{m.previous_version or '-'})")
    else:
        traffic.switch(s, f"v{m.version} promoted (previous v{m.previous_version or '-'})")
