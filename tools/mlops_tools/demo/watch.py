"""The demo's watcher: reads every outcome topic of the run from the start and turns its records into timeline
events and figures. Accuracy is each served row of the prediction log against the label of the record whose
features it used (entity + features_as_of_ms identify that record)."""

from __future__ import annotations

from typing import Any

from mlops_tools.demo.loop import Traffic
from mlops_tools.follow import FOLLOWED, TopicFollower

__all__ = ["watch"]


def watch(traffic: Traffic) -> None:
    """Follow the run's outcome topics until the traffic stops (thread body)."""
    follower = TopicFollower(traffic.bus, FOLLOWED, client_id="mlops-demo-watch", start="beginning")
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
        since = max(0, s.counts["events"] - (traffic.cfg.drift_at or 0))
        r.detections.append((timeline.now(), since, m.reason))
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
        if m.record_kind == "state" and m.gate_decision and m.status in ("champion", "rejected") \
                and m.version not in {v for v, _, _ in r.gate}:
            r.gate.append((m.version, m.gate_decision, m.gate_reason))
            traffic.say(s, f"gate: v{m.version} {m.gate_decision.upper()}: {m.gate_reason}")
    elif kind == "model.promoted":
        r.promoted.append((timeline.now(), m.version))
        traffic.say(s, f"v{m.version} promoted (previous v{m.previous_version or '-'})")
