"""The model.candidates consumer: decode a candidate, hand it to the registry, count the outcome."""

from __future__ import annotations

import logging

from mlops.bus import Record
from mlops.contracts import ContractError, models_pb2
from mlops.telemetry import link_to_ids, process_span, tracer

from services.registry import errors
from services.registry.convert import candidate_in
from services.registry.core import Registry
from services.registry.metrics import CANDIDATES

__all__ = ["CandidateHandler"]

log = logging.getLogger("mlops.registry")
_tracer = tracer("mlops.registry")


class CandidateHandler:
    """Handles one model.candidates record. Refusals (duplicate, corrupt or missing artifact, invalid) are logged
    and counted and change nothing; infrastructure errors and a missing definitions revision propagate, so the
    record is read again after a restart. (A candidate of an undeclared model is not a refusal: the registry
    rejects it with a version and an audit entry, like any gate decision.)"""

    def __init__(self, registry: Registry, group: str):
        self.registry = registry
        self.group = group

    def __call__(self, record: Record) -> None:
        with process_span(_tracer, record, self.group) as span:
            try:
                msg = record.decode(models_pb2.ModelCandidate)
                training = link_to_ids(msg.trace_id, msg.span_id)  # the trainer's span that produced it
                if training is not None:
                    span.add_link(training.context, {"mlops.link": "training"})
                v = self.registry.register(*candidate_in(msg))
                CANDIDATES.labels(v.gate_decision).inc()
                span.set_attributes({"mlops.version": v.version, "mlops.model_version": v.version,
                                     "mlops.decision": v.gate_decision})
            except errors.NoDefinitions:
                raise  # not a refusal of this candidate: it must wait in Kafka for a revision, not be skipped
            except errors.DuplicateCandidate as exc:
                CANDIDATES.labels("duplicate").inc()
                log.warning("duplicate candidate ignored", extra={"fields": {"error": str(exc)}})
                self.registry.reannounce(exc)
            except (errors.RegistryError, ContractError) as exc:
                CANDIDATES.labels("refused").inc()
                log.error("candidate refused", extra={"fields": {"where": record.where, "error": str(exc)}})
