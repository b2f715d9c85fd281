"""Helpers of the console's tests: a registry double served over real gRPC (for the broker-free page tests), canned
answers in Prometheus's and Jaeger's public API formats, and records as the services write them."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from mlops.contracts import common_pb2, events_pb2, models_pb2
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops.contracts.v1 import registry_service_pb2_grpc as api_grpc
from mlops_tools.stack import apt_install

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class FakeRegistry(api_grpc.ModelRegistryServicer):
    """Model `sea` with v1 (retired) and v2 (champion); Promote/Rollback recorded and appended to the audit."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []
        self.champion = "2"
        self.audit = [api.AuditEntry(sequence=1, version="1", action="promote", actor="registry", why="first",
                                     at_ms=1_700_000_000_000, status="champion"),
                      api.AuditEntry(sequence=2, version="2", action="promote", actor="registry",
                                     why="beats champion v1", at_ms=1_700_000_060_000, status="champion")]

    def ListModels(self, request: Any, context: Any) -> Any:  # noqa: N802
        return api.ListModelsResponse(models=[api.ModelSummary(name="sea", champion_version=self.champion,
                                                               latest_version="2", version_count=2,
                                                               updated_at_ms=1_700_000_060_000)])

    def GetModel(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.name != "sea":
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model {request.name!r}")
        lineage = models_pb2.Lineage(
            feature_log_offsets=[common_pb2.OffsetRange(topic="features.log", partition=0, start_offset=0,
                                                        end_offset=1200)],
            view_versions={"entity_activity": 1}, definitions_revision=1, seed=7, row_count=1200,
            retrain_request_id="rr-2", retrain_reason="drift: ADWIN on error_rate")
        versions = [
            api.ModelVersion(version="1", status="retired" if self.champion != "1" else "champion",
                             gate_decision="promoted", gate_reason="no champion", gate_metrics={"auc": 0.91}),
            api.ModelVersion(version="2", status="champion" if self.champion == "2" else "retired",
                             gate_decision="promoted", gate_reason="auc 0.95 beats champion v1 (0.71)",
                             gate_metrics={"auc": 0.95}, champion_metrics={"auc": 0.71},
                             champion_version_at_gate="1", lineage=lineage),
        ]
        return api.GetModelResponse(name="sea", champion_version=self.champion, versions=versions, audit=self.audit)

    def GetModelCard(self, request: Any, context: Any) -> Any:  # noqa: N802
        return api.ModelCard(name="sea", version=self.champion, markdown=f"# Model card: sea v{self.champion}")

    def _change(self, action: str, version: str, actor: str, why: str) -> Any:
        self.calls.append((action, version, actor, why))
        self.champion = version
        self.audit.append(api.AuditEntry(sequence=len(self.audit) + 1, version=version, action=action, actor=actor,
                                         why=why, at_ms=int(time.time() * 1000), status="champion"))
        return api.ChangeResponse(promoted=models_pb2.ModelPromoted(model_name="sea", version=version),
                                  sequence=len(self.audit))

    def Promote(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._change("promote", request.version, request.actor, request.reason)

    def Rollback(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._change("rollback", "1", request.actor, request.reason)


def serve_registry(servicer: api_grpc.ModelRegistryServicer) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_grpc.add_ModelRegistryServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def prometheus_answer(path: str, params: dict[str, str]) -> dict[str, Any]:
    """What Prometheus's HTTP API answers (its documented JSON format), for the queries the console makes."""
    now = time.time()
    if path == "/api/v1/alerts":
        return {"status": "success", "data": {"alerts": [{
            "labels": {"alertname": "DriftDetected", "model": "sea", "severity": "warning"},
            "annotations": {"summary": "drift detected on sea"}, "state": "firing",
            "activeAt": "2026-11-28T15:00:00Z", "value": "1e+00"}]}}
    if path == "/api/v1/query":
        return {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "inference", "instance": "127.0.0.1:9105"}, "value": [now, "1"]},
            {"metric": {"__name__": "up", "job": "trainer", "instance": "127.0.0.1:9103"}, "value": [now, "0"]}]}}
    query = params.get("query", "")
    if "drift" in query:
        result = [{"metric": {"model": "sea", "feature": f, "statistic": "psi"},
                   "values": [[now - 600 + 60 * i, str(0.02 * i * (2 if f == "x0" else 1))] for i in range(11)]}
                  for f in ("x0", "score")]
    else:
        result = [{"metric": {"code": "OK", "group": "g", "flow": "in"},
                   "values": [[now - 600 + 60 * i, str(40 + i)] for i in range(11)]}]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def jaeger_trace(trace_id: str = TRACE_ID) -> dict[str, Any]:
    """One trace as Jaeger's query API returns it: two services, a child span and an error."""
    start = int(time.time() * 1e6) - 5_000_000
    return {"traceID": trace_id, "processes": {"p1": {"serviceName": "inference"}, "p2": {"serviceName": "monitor"}},
            "spans": [
                {"traceID": trace_id, "spanID": "a1", "operationName": "ModelInfer", "references": [],
                 "startTime": start, "duration": 4000, "processID": "p1", "tags": []},
                {"traceID": trace_id, "spanID": "b2", "operationName": "predictions send",
                 "references": [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": "a1"}],
                 "startTime": start + 1000, "duration": 1500, "processID": "p1", "tags": []},
                {"traceID": trace_id, "spanID": "c3", "operationName": "predictions process",
                 "references": [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": "b2"}],
                 "startTime": start + 3000, "duration": 800, "processID": "p2",
                 "tags": [{"key": "otel.status_code", "type": "string", "value": "ERROR"}]}]}


def jaeger_answer(path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    if path == "/api/services":
        return 200, {"data": ["inference", "monitor"], "total": 2}
    if path == "/api/traces":
        return 200, {"data": [jaeger_trace()], "total": 1}
    if path == f"/api/traces/{TRACE_ID}":
        return 200, {"data": [jaeger_trace()]}
    return 404, {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]}


def dead_letter(reason: str = "field 'values.x0': Input should be a valid number") -> events_pb2.DeadLetter:
    return events_pb2.DeadLetter(
        original_key=b"e1", original_value=b'{"entity_id": "e1", "values": {"x0": "hot"}}', reason=reason,
        field="values.x0", error_type="invalid_value",
        source=common_pb2.SourcePosition(topic="raw.events", partition=0, offset=41), failed_at_ms=1_700_000_000_000,
        service="ingest", original_headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})


class LocalPrometheus:
    """A real Prometheus (Debian's package, installed on demand) scraping `targets` {job: host:port} every second,
    on its own port and storage under `folder`."""

    def __init__(self, folder: Path, port: int, targets: dict[str, str]):
        binary = shutil.which("prometheus") or apt_install("prometheus", "prometheus")
        folder.mkdir(parents=True, exist_ok=True)
        jobs = "".join(f"  - job_name: {job}\n    static_configs: [{{targets: ['{target}']}}]\n"
                       for job, target in targets.items())
        config = folder / "prometheus.yml"
        config.write_text(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n{jobs}")
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / "prometheus.log"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
            import json

            return list(json.loads(resp.read())["data"]["result"])

    def wait_scraped(self, jobs: int, samples: int, timeout: float = 60.0) -> None:
        """Until `jobs` targets are up and each has at least `samples` scrapes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                counts = self.query("count_over_time(up[5m])")
                if len(self.query("up == 1")) >= jobs and len(counts) >= jobs and \
                        all(float(c["value"][1]) >= samples for c in counts):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"Prometheus did not scrape {jobs} targets {samples} times:\n"
                             f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
