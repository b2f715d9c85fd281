"""Helpers of the registry's tests: a registry running in the test's process, the definitions the gate reads its
policies from (today's SEA model, the delivery domain's REGRESSION model and a MULTICLASS one), the concepts test
models learn, ONNX export."""

from __future__ import annotations

import hashlib
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from mlops import definitions as d
from mlops.bus import Bus, KafkaBus, StopFlag
from mlops.contracts import models_pb2
from mlops.definitions.store import publish, read_revisions

ROOT = Path(__file__).resolve().parents[2]
VIEW = "entity_activity"
NAMES = tuple(f"{VIEW}.{c}" for c in ("x0_last", "x1_last", "x2_last", "x0_mean_60s", "x1_mean_60s", "events_30s"))
DELIVERY = tuple(f"customer_orders.{c}" for c in (
    "amount_last", "items_last", "express_last", "channel=web", "channel=app", "channel=store", "amount_mean_1h",
    "orders_1h"))
CLASSES = (0, 1, 2)
# a multiclass model on the SEA view: which third of the range x0 + x1 falls in
SEGMENT = {"name": "segment", "task": "multiclass", "features": list(NAMES), "classes": list(CLASSES),
           "label": {"topic": "segments", "field": "segment"}, "gate": {"metric": "accuracy", "floor": 0.5}}
# the gate the tests' SEA models and holdouts are built around (a ranking metric, whatever the example declares)
SEA_GATE = {"metric": "auc", "margin": 0.0, "floor": 0.6}


def document(gates: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The test definitions as a YAML document: SEA + delivery + `segment`; `gates` overrides models' gates."""
    doc: dict[str, list[Any]] = {}
    for name in ("sea", "delivery"):
        for section, items in yaml.safe_load((ROOT / "examples" / name / "definitions.yaml").read_text()).items():
            doc.setdefault(section, []).extend(items)
    doc["models"].append(SEGMENT)
    for model in doc["models"]:
        declared = SEA_GATE if model["name"] == "sea" else model.get("gate", {})
        model["gate"] = {**declared, **(gates or {}).get(model["name"], {})}
    return doc


def revise(previous: d.Revision | None, gates: dict[str, dict[str, Any]] | None = None) -> d.Revision:
    """The next revision of the test definitions (the first when `previous` is None)."""
    revision = d.plan(previous, d.parse(document(gates)), "test").revision
    assert revision is not None
    return revision


def apply_definitions(bus: Bus, gates: dict[str, dict[str, Any]] | None = None) -> d.Revision:
    """`mlops apply` of the test definitions on `bus`: merged into the revision in force (if any, e.g. the SEA
    revision the session applies), published as the next one; the one in force when nothing changes."""
    current = d.latest(read_revisions(bus, client_id="test-apply", timeout=10))
    revision = d.plan(current, d.parse(document(gates)), "test").revision
    if revision is None:
        assert current is not None
        return current
    publish(bus, revision, client_id="test-apply")
    return revision


def onnx_of(model: Any, width: int) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, width]))], options=options,
                   target_opset=17).SerializeToString()


def segment_of(X: np.ndarray, threshold: float) -> np.ndarray:  # noqa: N803
    """The multiclass concept: 0 below `threshold`, 1 up to `threshold` + 5, 2 above."""
    s = X[:, 0] + X[:, 1]
    return np.where(s < threshold, 0, np.where(s < threshold + 5, 1, 2)).astype(np.int64)


def delivery_minutes(X: np.ndarray, weight: float) -> np.ndarray:  # noqa: N803
    """The regression concept: minutes grow with the first input, and with the second by `weight`."""
    return 10 + 3 * X[:, 0] + weight * X[:, 1]


def regression_candidate(data: bytes, weight: float, **fields: Any) -> models_pb2.ModelCandidate:
    """A `delivery_time` candidate for the artifact, with a 300-row holdout labelled by
    `delivery_minutes(X, weight)`; `fields` override the message's (framework, params, ...)."""
    X = np.random.default_rng(3).uniform(0, 10, (300, len(DELIVERY))).astype(np.float32)  # noqa: N806
    y = delivery_minutes(X, weight).astype(np.float64)
    message = models_pb2.ModelCandidate(
        model_name="delivery_time", candidate_id=uuid.uuid4().hex, artifact_sha256=hashlib.sha256(data).hexdigest(),
        artifact_size=len(data), framework="sklearn.LinearRegression", feature_names=list(DELIVERY),
        lineage=models_pb2.Lineage(row_count=1500, feature_set="customer_orders", feature_set_version=1),
        holdout=models_pb2.Holdout(feature_names=list(DELIVERY), rows=len(y), features_f32=X.astype("<f4").tobytes(),
                                   labels=list(y)))
    for name, value in fields.items():
        if isinstance(value, dict):
            getattr(message, name).update(value)
        else:
            setattr(message, name, value)
    return message


class RunningRegistry:
    """The registry in this process: real replay, real gRPC server on a free port, real candidate consumer."""

    def __init__(self, kafka: Any, settings: Any, security: Any = None, definitions: bool = True):
        """`definitions`: apply the test definitions first (False: the test applied its own); `security`:
        `SecuritySettings` (None: from the environment)."""
        from mlops_tools.registry_client import RegistryClient

        from services.registry.edge import build, run

        self.kafka = kafka
        bus = KafkaBus(kafka)
        if definitions:
            apply_definitions(bus)  # on top of what the session applied: the SEA, delivery and segment models
        self.producer = bus.producer(client_id="test-registry")
        self.app = build(settings, bus, security)
        self.stop_flag = StopFlag(install_signals=False)
        self.thread = threading.Thread(target=run, args=(self.app, settings, self.stop_flag), daemon=True)
        self.thread.start()
        self.client = RegistryClient(f"127.0.0.1:{self.app.grpc_port}", timeout=20)

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(20)
        self.client.close()
        self.app.stop()
