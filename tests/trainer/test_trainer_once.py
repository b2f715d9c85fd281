"""Integration: `python -m services.trainer --once MODEL` as a process against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlops.contracts import models_pb2
from mlops.settings import KafkaSettings
from mlops.topics import MODEL_CANDIDATES, TRAINING_FAILURES
from test_trainer_edge_kafka import feed, read_all

ROOT = Path(__file__).resolve().parents[2]


def once(kafka: KafkaSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLOPS_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MLOPS_TRAINER_MAX_ITER": "15",
        "MLOPS_TRAINER_MIN_ROWS": "100",
        "MLOPS_TRAINER_LABELS_WITHIN_FEATURES": "false",
        "MLOPS_TRAINER_CODE_VERSION": "test",
        "MLOPS_TELEMETRY_LOG_FORMAT": "text",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "libs"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, "-m", "services.trainer", "--once", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def test_once_publishes_a_candidate_and_prints_one_json_line(kafka_settings: KafkaSettings) -> None:
    feed(kafka_settings, 400)
    done = once(kafka_settings, "sea", "--reason", "from the test", "--request-id", "once-test")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    assert result["model"] == "sea" and result["request_id"] == "once-test" and "error" not in result
    assert result["version"] == result["candidate_id"] and result["rows"] == 400 and result["seconds"] > 0
    assert result["metrics"]["auc"] > 0.9
    published = read_all(kafka_settings, MODEL_CANDIDATES, models_pb2.ModelCandidate, 1, 20)
    assert [(c.candidate_id, c.artifact_sha256) for c in published] == [(result["candidate_id"], result["sha256"])]
    lineage = published[0].lineage
    assert lineage.retrain_request_id == "once-test" and lineage.retrain_reason == "from the test"
    assert list(lineage.coalesced_request_ids) == ["once-test"] and lineage.code_version == "test"


def test_once_without_data_fails_with_exit_1_and_the_reason(kafka_settings: KafkaSettings) -> None:
    done = once(kafka_settings, "sea")
    assert done.returncode == 1, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["model"] == "sea" and "version" not in result
    assert "not enough labelled rows to train: 0 < 100" in result["error"]
    failures = read_all(kafka_settings, TRAINING_FAILURES, models_pb2.TrainingFailed, 1, 10)
    assert [f.retrain_request_id for f in failures] == [result["request_id"]]
