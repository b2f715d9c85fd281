"""The command line without a broker: every command is registered, `train --local` runs the trainer as a child
process and reads its one-line JSON result, and `--wait` follows the outcome it published."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from types import SimpleNamespace

import pytest
from mlops_tools import procs
from mlops_tools.cli import build_parser, train_cmd
from mlops_tools.console import Progress


def test_every_command_is_registered() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) >= {"stack", "up", "down", "status", "service", "produce", "train", "models", "demo",
                             "trace", "bench"}
    with pytest.raises(SystemExit):
        parser.parse_args(["service", "nope"])


def _run_result(stdout: str, code: int):
    def run(argv, **kwargs):
        run.argv = argv
        return subprocess.CompletedProcess(argv, code, stdout=stdout)

    return run


def test_train_local_runs_the_trainer_once_in_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    line = {"model": "sea", "request_id": "cli-1", "version": "c1", "candidate_id": "c1", "sha256": "ab" * 32,
            "rows": 600, "metrics": {"auc": 0.9, "accuracy": 0.8}, "seconds": 2.345}
    fake = _run_result("log line\n" + json.dumps(line) + "\n", 0)
    monkeypatch.setattr(procs.subprocess, "run", fake)
    result = train_cmd.train_locally("sea", "cli-1", "why not", seed=7)
    assert fake.argv[1:] == ["-m", "services.trainer", "--once", "sea", "--reason", "why not", "--request-id",
                             "cli-1", "--seed", "7"]
    assert result == line
    assert train_cmd.describe(result) == (f"candidate c1 sha256={'ab' * 32} rows=600 in 2.3s; "
                                          "metrics: accuracy=0.8000, auc=0.9000")


def test_train_local_reports_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procs.subprocess, "run", _run_result('{"model": "sea", "error": "too few rows"}', 1))
    assert train_cmd.train_locally("sea", "cli-1", "r")["error"] == "too few rows"
    monkeypatch.setattr(procs.subprocess, "run", _run_result("Traceback ...", 1))
    assert "exited 1 without a result" in train_cmd.train_locally("sea", "cli-1", "r")["error"]


class _Follower:
    def __init__(self, *batches):
        self.batches = list(batches)

    def poll(self, timeout: float):
        return self.batches.pop(0) if self.batches else []


def test_wait_after_a_local_retrain_follows_its_candidate_to_the_promotion(capsys: pytest.CaptureFixture) -> None:
    from mlops.contracts import models_pb2

    other = models_pb2.ModelCandidate(model_name="sea", candidate_id="x", artifact_sha256="other")
    ours = models_pb2.ModelCandidate(model_name="sea", candidate_id="c1", artifact_sha256="mine",
                                     lineage=models_pb2.Lineage(retrain_request_id="cli-1"))
    follower = _Follower(
        [("training.failures", models_pb2.TrainingFailed(model_name="sea", reason="the service's own retrain"))],
        [("model.candidates", other), ("model.candidates", ours)],
        [("model.promoted", models_pb2.ModelPromoted(model_name="sea", version="2", artifact_sha256="mine",
                                                     reason="gate passed"))],
    )
    args = SimpleNamespace(model="sea", timeout=5.0, local=True)
    code = train_cmd._follow(follower, args, "cli-1", Progress(io.StringIO()))
    assert code == 0
    assert "promoted: sea v2 (previous v-): gate passed" in capsys.readouterr().out


def test_wait_reports_a_shadow_challenger_as_such_not_as_a_promotion(capsys: pytest.CaptureFixture) -> None:
    from mlops.contracts import models_pb2

    ours = models_pb2.ModelCandidate(model_name="sea", candidate_id="c1", artifact_sha256="mine",
                                     lineage=models_pb2.Lineage(retrain_request_id="cli-1"))
    follower = _Follower(
        [("model.candidates", ours)],
        [("model.promoted", models_pb2.ModelPromoted(
            model_name="sea", version="3", artifact_sha256="mine", previous_version="2", role="shadow",
            traffic_fraction=1.0, reason="gate passed; live traffic decides"))],
    )
    args = SimpleNamespace(model="sea", timeout=5.0, local=True)
    assert train_cmd._follow(follower, args, "cli-1", Progress(io.StringIO())) == 0
    out = capsys.readouterr().out
    assert "shadow: sea v3 on 100% of requests beside the champion (previous v2)" in out
    assert "promoted" not in out


def test_a_write_refused_by_the_acls_is_told_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_tools.cli import ACL_HINT, acl_refusal

    assert acl_refusal("delivery failed: model.artifacts: Broker: Leader not available") is None
    monkeypatch.setenv("MLOPS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("MLOPS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("MLOPS_KAFKA_SASL_USERNAME", "mlops")
    monkeypatch.setenv("MLOPS_KAFKA_SASL_PASSWORD", "secret")
    for error in ("delivery failed: model.artifacts: Broker: Topic authorization failed",
                  "KafkaError{code=TOPIC_AUTHORIZATION_FAILED}"):
        told = acl_refusal(error)
        assert told == f"the broker refused SASL user 'mlops': {error}\n{ACL_HINT}"
        assert "secret" not in told
