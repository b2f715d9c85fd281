"""`mlops models list|show` with a challenger on live traffic: the list names it with its role and share, the
audit shows each live verdict's evidence under the entry it justified (a stand-in registry client, no server)."""

from __future__ import annotations

import pytest
from mlops.contracts import models_pb2
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops_tools.cli import main, models_cmd

VERDICT = models_pb2.ChallengerVerdict(
    model_name="sea", champion_version="1", challenger_version="2", phase="shadow", verdict="promote",
    metric="accuracy", champion_metric=0.81, challenger_metric=0.88, difference=0.07, ci_low=0.02, ci_high=0.12,
    labelled_rows=412, test="paired mSPRT", confidence=0.95, verdict_id="sea/2/shadow")


class Client:
    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def list_models(self) -> api.ListModelsResponse:
        return api.ListModelsResponse(models=[
            api.ModelSummary(name="sea", champion_version="1", latest_version="2", version_count=2,
                             champion_sha256="ab" * 32, challenger_version="2", challenger_role="shadow",
                             challenger_fraction=1.0),
            api.ModelSummary(name="delivery_time", champion_version="1", latest_version="1", version_count=1)])

    def get_model(self, name: str, version: str = "") -> api.GetModelResponse:
        return api.GetModelResponse(name=name, champion_version="2", versions=[
            api.ModelVersion(version="1", status="retired", role="guard", traffic_fraction=1.0),
            api.ModelVersion(version="2", status="champion")], audit=[
            api.AuditEntry(sequence=5, version="2", action="promote", actor="monitor", why="live shadow verdict",
                           status="champion", evidence=VERDICT),
            api.AuditEntry(sequence=6, version="1", action="register", actor="registry", why="candidate c1")])


@pytest.fixture(autouse=True)
def client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models_cmd, "_client", lambda args: Client())


def test_the_list_names_the_live_challenger(capsys) -> None:
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "LIVE CHALLENGER" in lines[0]
    assert lines[1].startswith("sea") and lines[1].endswith("v2 shadow 100%")
    assert lines[2].startswith("delivery_time") and lines[2].endswith("-")


def test_show_prints_the_role_and_the_evidence_of_live_decisions(capsys) -> None:
    assert main(["models", "show", "sea"]) == 0
    out = capsys.readouterr().out
    assert "[live guard 100%]" in out
    evidence = [line.strip() for line in out.splitlines() if "evidence:" in line]
    assert evidence == ["evidence: shadow verdict promote: accuracy v2 0.8800 vs v1 0.8100, difference +0.0700 "
                        "[+0.0200, +0.1200] on 412 labelled rows (paired mSPRT, confidence 0.95)"]


def test_the_console_shows_the_live_challenger_and_the_evidence() -> None:
    from services.console.convert import model_detail, model_rows

    client = Client()
    rows = model_rows(client.list_models())
    assert [(r.name, r.challenger) for r in rows] == [("sea", "v2 shadow 100%"), ("delivery_time", "")]
    detail = model_detail(client.get_model("sea"))
    assert [v.live for v in detail.versions] == ["guard 100%", ""]
    assert detail.audit[0].evidence.startswith("shadow verdict promote: accuracy v2 0.8800 vs v1 0.8100")
    assert detail.audit[1].evidence == ""
