"""The generated code never drifts from proto/, and every contract message carries a version."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from mlops import contracts
from mlops.contracts import ContractError, events_pb2, models_pb2
from mlops.errors import MlopsError

ROOT = Path(__file__).resolve().parents[2]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path: Path) -> None:
    fresh = _load_generator().generate(tmp_path)
    assert fresh, "no .proto files found"
    stale = []
    for path in fresh:
        rel = path.relative_to(tmp_path)
        committed = ROOT / "libs" / rel
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(rel))
    assert not stale, f"generated code is stale; run `python scripts/gen_protos.py`: {stale}"


TOP_LEVEL = [
    events_pb2.RawEvent, events_pb2.Event, events_pb2.DeadLetter, events_pb2.FeatureVector, events_pb2.Label,
    models_pb2.PredictionRecord, models_pb2.PredictionBatch, models_pb2.RetrainRequest, models_pb2.ModelCandidate,
    models_pb2.TrainingFailed,
    models_pb2.ModelPromoted, models_pb2.RegistryEvent,
]


@pytest.mark.parametrize("message_type", TOP_LEVEL, ids=lambda t: t.DESCRIPTOR.name)
def test_every_topic_contract_is_versioned(message_type) -> None:
    field = message_type.DESCRIPTOR.fields_by_name["contract_version"]
    assert field.number == 1
    data = contracts.encode(message_type())
    assert contracts.decode(message_type, data).contract_version == contracts.CONTRACT_VERSION


def test_decode_refuses_future_contract_and_tombstones() -> None:
    future = events_pb2.Event(contract_version=contracts.CONTRACT_VERSION + 1, event_id="x")
    with pytest.raises(ContractError, match="contract version 2"):
        contracts.decode(events_pb2.Event, future.SerializeToString(), "events/0@7")
    with pytest.raises(ContractError, match="tombstone") as info:
        contracts.decode(events_pb2.Event, None, "events/0@8")
    assert isinstance(info.value, MlopsError) and isinstance(info.value, ValueError)  # older callers catch ValueError
    assert info.value.where == "events/0@8"


def test_encoding_is_deterministic() -> None:
    a = events_pb2.Event(values={f"f{i}": float(i) for i in range(50)})
    b = events_pb2.Event(values={f"f{i}": float(i) for i in reversed(range(50))})
    assert contracts.encode(a) == contracts.encode(b)


def test_oip_service_name_is_wire_compatible() -> None:
    """Standard v2 clients call /inference.GRPCInferenceService/*: the package and service names are the contract."""
    oip = ROOT / "proto" / "mlops" / "contracts" / "oip" / "grpc_predict_v2.proto"
    text = oip.read_text()
    assert "package inference;" in text and "service GRPCInferenceService" in text
