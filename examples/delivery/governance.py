"""The delivery example's governance run: the real trainer and registry (their cores, on an in-memory bus) train
and gate two versions of `delivery_time`, and write each version's model card (Markdown + PNG figures, and one
self-contained HTML page) — the explainability report and the slices by channel (declared `sensitive: true`) and
basket value.

The story: v1 is trained on orders before the example's known drift (app orders then take 15 minutes longer).
After the drift, a retrain learns the app shift — but for most of its training window a labelling bug added 12
minutes to every store order (fixed before the holdout rows). The challenger is much better overall (it knows the
app shift) and much worse on store orders: the slice gate (`max_slice_loss: 2`) refuses it, naming the slice.

    python examples/delivery/governance.py [OUT_DIR]      # default .run/governance
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STORE_BUG_MINUTES = 12.0


def _features(history: list[dict[str, Any]]) -> dict[str, float]:
    """The customer_orders view's columns after an order, from the customer's orders so far (within the hour)."""
    last = history[-1]
    hour = [h for h in history if last["t"] - h["t"] <= 3_600_000]
    values = {"amount_last": float(last["amount"]), "items_last": float(last["items"]),
              "express_last": float(bool(last["express"])),
              "amount_mean_1h": sum(h["amount"] for h in hour) / len(hour), "orders_1h": float(len(hour))}
    return values | {f"channel={c}": float(last["channel"] == c) for c in ("web", "app", "store")}


def run(out: Path, count: int = 1800, drift_at: int = 1200, max_iter: int | None = None) -> dict[str, Any]:
    """Train and gate v1 (before the drift) and v2 (after it, store labels buggy in its training rows); write
    both cards under `out`; return the gate decisions. `max_iter` overrides the declared boosting rounds (tests)."""
    from mlops.artifacts import ArtifactReader
    from mlops.bus import MemoryBus
    from mlops.definitions import load, plan
    from mlops.offline_store import MemoryTrainingData
    from mlops_tools.card_html import card_html
    from mlops_tools.generators.delivery import DeliveryConfig, generate

    from services.registry.convert import candidate_in
    from services.registry.core import Registry, RegistryState
    from services.trainer.edge import TrainerService
    from services.trainer.settings import TrainerSettings

    definitions = load(ROOT / "examples" / "delivery" / "definitions.yaml")
    if max_iter is not None:
        declared = definitions.model("delivery_time")
        algorithm = declared.algorithm.model_copy(update={"params": {**declared.algorithm.params,
                                                                     "max_iter": max_iter}})
        definitions = definitions.model_copy(update={"models": (declared.model_copy(
            update={"algorithm": algorithm}),)})
    revision = plan(None, definitions, "governance-run").revision
    assert revision is not None
    model = revision.definitions.model("delivery_time")
    window = model.training.max_rows or 600
    bug_until = count - round(window * model.training.holdout_fraction)  # the holdout rows are clean
    bus, data = MemoryBus(), MemoryTrainingData()
    trainer = TrainerService(TrainerSettings(code_version="governance-run"), bus, data, lambda: revision)
    artifacts = ArtifactReader(bus)
    log: list[Any] = []
    registry = Registry(RegistryState(), lambda sha: artifacts.get(sha, timeout=10), log.extend, lambda p: None,
                        lambda: revision, actor="registry")
    histories: dict[str, list[dict[str, Any]]] = defaultdict(list)
    records = list(generate(DeliveryConfig(count=count, drift_at=drift_at, seed=42)))
    decisions = {}
    for stage, (start, end) in enumerate(((0, drift_at), (drift_at, count)), 1):
        for r in records[start:end]:
            histories[r.entity_id].append({"t": r.event_time_ms, **r.values})
            data.add_vector("customer_orders", r.entity_id, r.event_time_ms, _features(histories[r.entity_id]))
            buggy = stage == 2 and r.index < bug_until and r.values["channel"] == "store"
            data.add_label(r.entity_id, r.event_time_ms + 1, r.label + (STORE_BUG_MINUTES if buggy else 0.0),
                           topic=model.label.topic)
        outcome = trainer.run_once("delivery_time", reason=f"governance run, stage {stage}")
        assert outcome.candidate is not None, outcome.failure
        version = registry.register(*candidate_in(outcome.candidate))
        decisions[version.version] = {"status": version.status, "reason": version.gate_reason,
                                      "gate_mae": version.gate_metrics.get("mae"),
                                      "champion_mae": version.champion_metrics.get("mae")}
        folder = out / f"delivery_time-v{version.version}"
        folder.mkdir(parents=True, exist_ok=True)
        markdown = registry.model_card("delivery_time", version.version)
        figures = {f.name: f.png for f in registry.card_figures("delivery_time", version.version)}
        (folder / "card.md").write_text(markdown)
        for name, png in figures.items():
            (folder / name).write_bytes(png)
        (folder / "card.html").write_text(card_html(markdown, figures, f"delivery_time v{version.version}"))
    audit = [{"seq": a.sequence, "version": a.version, "action": a.action, "why": a.why}
             for a in registry.state.audit_of("delivery_time")]
    return {"decisions": decisions, "audit": audit, "registry_log_records": len(log)}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".run" / "governance"
    print(json.dumps(run(target), indent=2))
