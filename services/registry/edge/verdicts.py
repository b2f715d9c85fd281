"""The challenger.verdicts consumer: decode the monitor's live verdict, hand it to the registry, count the outcome."""

from __future__ import annotations

import logging

from mlops.bus import Record
from mlops.contracts import ContractError, models_pb2
from mlops.telemetry import link_to_ids, process_span, tracer

from services.registry.convert import verdict_in
from services.registry.core import Registry
from services.registry.metrics import VERDICTS

__all__ = ["VerdictHandler"]

log = logging.getLogger("mlops.registry")
_tracer = tracer("mlops.registry")


class VerdictHandler:
    """Handles one challenger.verdicts record. A verdict that cannot be read is logged, counted and skipped (the
    monitor decides again on more labels); a stale, duplicate or invalid one changes nothing (the registry logs
    why); infrastructure errors (registry.log unwritable) propagate, so the record is read again after a restart
    and applied once (its verdict_id)."""

    def __init__(self, registry: Registry, group: str):
        self.registry = registry
        self.group = group

    def __call__(self, record: Record) -> None:
        with process_span(_tracer, record, self.group) as span:
            try:
                msg = record.decode(models_pb2.ChallengerVerdict)
            except ContractError as exc:
                VERDICTS.labels("", "", "unreadable").inc()
                log.error("verdict unreadable", extra={"fields": {"where": record.where, "error": str(exc)}})
                return
            judged = link_to_ids(msg.trace_id, msg.span_id)  # the monitor's span that decided it
            if judged is not None:
                span.add_link(judged.context, {"mlops.link": "verdict"})
            outcome = self.registry.apply_verdict(verdict_in(msg))
            VERDICTS.labels(msg.model_name, msg.verdict, outcome).inc()
            span.set_attributes({"mlops.model": msg.model_name, "mlops.verdict": msg.verdict,
                                 "mlops.outcome": outcome})
