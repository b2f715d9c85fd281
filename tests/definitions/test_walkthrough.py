"""The README's walkthrough stays true: its definitions apply, and every reading and label its script writes is
accepted by ingest's validator and reads as a label of the declared model."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlops import definitions as d
from mlops.definitions.labels import decode_label

from services.ingest.core import compile_sources

WALKTHROUGH = Path(__file__).resolve().parents[2] / "examples" / "walkthrough"


def test_the_walkthrough_records_fit_its_definitions(tmp_path: Path) -> None:
    defs = d.load(WALKTHROUGH / "definitions.yaml")
    assert d.plan(None, defs, "test").revision is not None
    subprocess.run(["bash", str(WALKTHROUGH / "make-records.sh"), "200", str(tmp_path)], check=True,
                   capture_output=True)
    readings = (tmp_path / "readings.txt").read_text().splitlines()
    labels = (tmp_path / "labels.txt").read_text().splitlines()
    assert len(readings) == len(labels) == 200
    validator = compile_sources(defs)["readings"]
    model = defs.model("overheat")
    positives = 0
    for line, label_line in zip(readings, labels, strict=True):
        key, _, value = line.partition("|")
        event = validator.validate_json(value.encode(), fallback_event_id="x", now_ms=1_800_000_000_000)
        assert event.entity_id == key
        label = decode_label(label_line.partition("|")[2].encode(), model, "device_id")
        assert label.entity_id == key and label.event_time_ms == event.event_time_ms + 1
        positives += int(label.value)
    assert 0 < positives < 200  # both classes, or the model could not be trained
