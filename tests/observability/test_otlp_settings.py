"""Unit: where the otlp-* exporters send spans (MLOPS_TELEMETRY_OTLP_ENDPOINT, defaults for the local stack's
Jaeger), and the messaging conventions' names. No broker, no collector."""

from __future__ import annotations

import pytest
from mlops.settings import TelemetrySettings
from mlops.telemetry import UnknownMessagingOperation, _exporter, messaging_attributes, messaging_span_name
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from pydantic import ValidationError


def test_defaults_point_at_the_local_stacks_jaeger() -> None:
    assert TelemetrySettings(exporter="otlp-grpc").otlp_traces_endpoint() == "http://127.0.0.1:4317"
    assert TelemetrySettings(exporter="otlp-http").otlp_traces_endpoint() == "http://127.0.0.1:4318/v1/traces"


def test_the_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TELEMETRY_EXPORTER", "otlp-http")
    monkeypatch.setenv("MLOPS_TELEMETRY_OTLP_ENDPOINT", "http://collector:4318")
    settings = TelemetrySettings()
    assert settings.otlp_traces_endpoint() == "http://collector:4318/v1/traces"  # the signal path is added
    exporter = _exporter(settings)
    assert isinstance(exporter, HttpExporter) and exporter._endpoint == "http://collector:4318/v1/traces"
    # a path given is kept (a collector behind a reverse proxy)
    assert TelemetrySettings(exporter="otlp-http", otlp_endpoint="https://gw:443/otel/v1/traces"
                             ).otlp_traces_endpoint() == "https://gw:443/otel/v1/traces"


def test_grpc_exporter_gets_the_endpoint() -> None:
    exporter = _exporter(TelemetrySettings(exporter="otlp-grpc", otlp_endpoint="http://jaeger:4317"))
    assert isinstance(exporter, GrpcExporter) and exporter._endpoint == "jaeger:4317"
    exporter.shutdown()


@pytest.mark.parametrize("bad", ["jaeger:4317", "grpc://jaeger:4317", "http://"])
def test_an_endpoint_that_is_not_a_url_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationError, match="otlp_endpoint"):
        TelemetrySettings(otlp_endpoint=bad)


def test_messaging_names_follow_the_conventions() -> None:
    assert messaging_span_name("send", "model.promoted") == "send model.promoted"
    attrs = messaging_attributes("process", "raw.events", partition=2, offset=7, key=b"e1", group="g")
    assert attrs == {
        "messaging.system": "kafka", "messaging.operation.type": "process", "messaging.operation.name": "process",
        "messaging.destination.name": "raw.events", "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 7, "messaging.kafka.message.key": "e1", "messaging.consumer.group.name": "g"}
    with pytest.raises(UnknownMessagingOperation, match="`publish` is now `send`"):
        messaging_attributes("publish", "raw.events")
    with pytest.raises(UnknownMessagingOperation):
        messaging_span_name("publish", "raw.events")
