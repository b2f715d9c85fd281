"""The console in a real headless Chromium (Debian's chromium + chromium-driver, installed on demand; selenium),
against a running stack: the real broker, the registry and the console started by their real entry points
(`python -m services registry|console`), two models registered through the registry's gRPC API, and a dead letter,
a retrain request and a prediction on their topics; a real Prometheus (Debian's, installed on demand) scraping the
registry and the console. Jaeger is stood in for by a small server answering its public query API with one
recorded trace; a second console without Prometheus must say so on its pages. A rollback taken in the console
lands in the registry's audit trail with the console's actor. Screenshots are saved under the test's tmp dir (the
path is printed). A machine without chromium and no way to install it fails the test: it never skips."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from console_helpers import TRACE_ID, LocalPrometheus, dead_letter, jaeger_answer
from mlops.artifacts import publish_artifact
from mlops.bus import KafkaBus
from mlops.contracts import common_pb2, models_pb2
from mlops.definitions import load
from mlops.settings import KafkaSettings
from mlops.topics import EVENTS_DLQ, PREDICTIONS, RETRAIN_REQUESTED
from mlops_tools.browser import headless_chromium
from mlops_tools.examples import definitions_path
from mlops_tools.procs import free_port, stop_child
from mlops_tools.registry_client import RegistryClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[2]
FEATURES = list(load(definitions_path("sea")).model("sea").features)
TOKEN = "t-" + uuid.uuid4().hex[:8]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _concept(x: np.ndarray, threshold: float) -> np.ndarray:
    """The label: x0 + x1 > 7 before the drift; x0 + x2 > 9.5 after it (so v1 ranks the drifted rows poorly)."""
    other = x[:, 1] if threshold < 9 else x[:, 2]
    return (x[:, 0] + other > threshold).astype(np.int64)


def _onnx(threshold: float, seed: int) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(seed).uniform(0, 10, (1500, len(FEATURES))).astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(x, _concept(x, threshold))
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
                   options={id(model): {"zipmap": False}}, target_opset=17).SerializeToString()


def _candidate(data: bytes, threshold: float, request_id: str) -> models_pb2.ModelCandidate:
    x = np.random.default_rng(3).uniform(0, 10, (300, len(FEATURES))).astype(np.float32)
    y = _concept(x, threshold).astype(np.float64)
    return models_pb2.ModelCandidate(
        model_name="sea", candidate_id=uuid.uuid4().hex, artifact_sha256=hashlib.sha256(data).hexdigest(),
        artifact_size=len(data), framework="sklearn.LogisticRegression", metrics={"auc": 0.9},
        feature_names=FEATURES,
        lineage=models_pb2.Lineage(
            seed=1, row_count=1500, retrain_request_id=request_id, retrain_reason=f"concept x0 + x1 > {threshold}",
            feature_set="entity_activity", feature_set_version=1, view_versions={"entity_activity": 1},
            definitions_revision=1,
            feature_log_offsets=[common_pb2.OffsetRange(topic="features.log", partition=0, start_offset=0,
                                                        end_offset=1500)]),
        holdout=models_pb2.Holdout(feature_names=FEATURES, rows=len(y), features_f32=x.astype("<f4").tobytes(),
                                   labels=list(y)))


class FakeJaeger:
    """Jaeger's query API (/api/services, /api/traces, /api/traces/{id}) answering one recorded trace."""

    def __init__(self) -> None:
        async def answer(request: Request) -> JSONResponse:
            status, body = jaeger_answer(request.url.path, dict(request.query_params))
            return JSONResponse(body, status_code=status)

        app = Starlette(routes=[Route("/api/{rest:path}", answer)])
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _start(service: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return subprocess.Popen([sys.executable, "-m", "services", service], cwd=ROOT, env=base | env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def running(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[dict[str, object]]:
    common = {"MLOPS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
              "MLOPS_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix, "MLOPS_TELEMETRY_EXPORTER": "none",
              "PYTHONPATH": f"{ROOT / 'libs'}:{ROOT}"}
    registry_port, registry_ops, console_port, console_ops = free_port(), free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []
    jaeger = FakeJaeger()
    try:
        reg_log = tmp_path / "registry.log"
        procs.append(_start("registry", common | {
            "MLOPS_REGISTRY_GRPC_HOST": "127.0.0.1", "MLOPS_REGISTRY_GRPC_PORT": str(registry_port),
            "MLOPS_REGISTRY_GROUP_ID": f"console-test-{uuid.uuid4().hex[:6]}",
            "MLOPS_TELEMETRY_METRICS_PORT": str(registry_ops)}, reg_log))
        _wait_http(f"http://127.0.0.1:{registry_ops}/readyz", procs[-1], reg_log)
        address = f"127.0.0.1:{registry_port}"
        bus = KafkaBus(kafka_settings)
        producer = bus.producer(client_id="console-test")
        client = RegistryClient(address, timeout=30)
        for threshold, seed, request_id in ((7.0, 0, "rr-1"), (9.5, 1, "rr-2")):
            data = _onnx(threshold, seed)
            publish_artifact(producer, kafka_settings, data)
            producer.flush()
            answer = client.register(_candidate(data, threshold, request_id))
            assert answer.decision == "promoted", answer
        traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
        producer.send(bus.topic(EVENTS_DLQ), dead_letter(), key="e1", headers={"traceparent": traceparent})
        producer.send(bus.topic(RETRAIN_REQUESTED), models_pb2.RetrainRequest(
            model_name="sea", request_id="rr-2", reason="error rate drifted", detector="ADWIN",
            statistic="error_rate", value=0.41, requested_at_ms=int(time.time() * 1000), requested_by="monitor",
            trace_id=TRACE_ID), key="sea")
        producer.send(bus.topic(PREDICTIONS), models_pb2.PredictionRecord(
            request_id="req-browser", entity_id="e1", model_name="sea", model_version="2", score=0.83,
            predicted_label=1, latency_us=950, trace_id=TRACE_ID, timestamp_ms=int(time.time() * 1000)), key="e1")
        producer.flush()

        prometheus = LocalPrometheus(tmp_path / "prometheus", free_port(), {
            "registry": f"127.0.0.1:{registry_ops}", "console": f"127.0.0.1:{console_ops}"})
        absent = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        urls = []
        # 2-minute charts: Prometheus's range queries step by a second, so a minute of scrapes draws lines
        for port, ops, prometheus_url in ((console_port, console_ops, prometheus.url),
                                          (free_port(), free_port(), absent)):
            con_log = tmp_path / f"console-{port}.log"
            procs.append(_start("console", common | {
                "MLOPS_CONSOLE_HOST": "127.0.0.1", "MLOPS_CONSOLE_PORT": str(port),
                "MLOPS_CONSOLE_REGISTRY_ADDRESS": address, "MLOPS_CONSOLE_PROMETHEUS_URL": prometheus_url,
                "MLOPS_CONSOLE_JAEGER_URL": f"http://127.0.0.1:{jaeger.port}",
                "MLOPS_CONSOLE_ACTIONS_ENABLED": "true", "MLOPS_CONSOLE_ADMIN_TOKEN": TOKEN,
                "MLOPS_CONSOLE_CHART_MINUTES": "2", "MLOPS_TELEMETRY_METRICS_PORT": str(ops)}, con_log))
            _wait_http(f"http://127.0.0.1:{ops}/readyz", procs[-1], con_log)
            urls.append(f"http://127.0.0.1:{port}")
        prometheus.wait_scraped(jobs=2, samples=5)
        yield {"url": urls[0], "without_prometheus": urls[1], "registry": client, "absent": absent}
        client.close()
    finally:
        for proc in reversed(procs):
            stop_child(proc)
        jaeger.stop()
        if "prometheus" in locals():
            prometheus.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    driver = headless_chromium()  # installs Debian's chromium when missing; fails (never skips) when it cannot
    yield driver
    driver.quit()


def test_the_console_in_a_real_browser(running, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, client = running["url"], running["registry"]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nconsole screenshots: {shots}")

    def shot(name: str) -> None:
        browser.set_window_size(1400, max(1000, browser.execute_script("return document.body.scrollHeight")))
        assert browser.save_screenshot(str(shots / f"{name}.png"))

    def text(css: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, css).text

    def after_click(css: str) -> None:
        """A click navigates in the background: wait for an element only the next page has."""
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))

    browser.get(f"{url}/models")
    assert "sea" in text("#models") and "v2" in text("#models")
    shot("01-models")
    browser.find_element(By.LINK_TEXT, "sea").click()
    after_click("#champion")
    assert text("#champion") == "v2"
    assert "beats champion v1" in text("#versions") or "v2" in text("#versions")
    assert "features.log/0 [0, 1500)" in text("#lineage") and "entity_activity v1" in text("#lineage")
    assert "# Model card: sea v2" in text("#card")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart"), "the gate metric chart"
    shot("02-model-sea")

    # an action taken in the console: a rollback with the admin token, by the browser's "operator"
    form = browser.find_element(By.ID, "rollback-form")
    form.find_element(By.NAME, "actor").clear()
    form.find_element(By.NAME, "actor").send_keys("browser-test")
    form.find_element(By.NAME, "reason").send_keys("canary errors seen in the console")
    form.find_element(By.NAME, "token").send_keys(TOKEN)
    form.find_element(By.TAG_NAME, "button").click()
    after_click("#message")
    assert "rolled back to v1 by console:browser-test" in text("#message")
    assert text("#champion") == "v1"
    assert "console:browser-test" in text("#audit") and "canary errors seen in the console" in text("#audit")
    shot("03-after-rollback")
    audit = client.get_model("sea").audit
    assert (audit[-1].action, audit[-1].actor) == ("rollback", "console:browser-test")
    assert audit[-1].why.startswith("canary errors seen in the console"), audit[-1].why

    # a wrong token changes nothing
    form = browser.find_element(By.ID, "promote-form")
    form.find_element(By.NAME, "version").send_keys("2")
    form.find_element(By.NAME, "token").send_keys("wrong")
    form.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(browser, 30).until(lambda b: "the admin token is wrong" in b.page_source)
    assert client.get_model("sea").champion_version == "1"

    browser.get(f"{url}/dead-letters")
    assert "Input should be a valid number" in text("#dead-letters") and "raw.events/0@41" in text("#dead-letters")
    shot("04-dead-letters")
    browser.find_element(By.CSS_SELECTOR, "#dead-letters a.trace-link").click()
    after_click("#waterfall tr.span-row")
    rows = browser.find_elements(By.CSS_SELECTOR, "#waterfall tr.span-row")
    assert len(rows) == 3 and "ModelInfer" in rows[0].text and browser.find_elements(By.CSS_SELECTOR, ".wf .err")
    shot("05-trace-waterfall")

    browser.get(f"{url}/predictions")
    assert "req-browser" in text("#predictions")
    browser.find_element(By.CSS_SELECTOR, "#predictions a.trace-link").click()
    after_click("#waterfall tr.span-row")
    assert TRACE_ID in browser.current_url and browser.find_elements(By.CSS_SELECTOR, "#waterfall tr.span-row")

    browser.get(f"{url}/drift")
    assert "ADWIN" in text("#retrains") and "promoted" in text("#decisions")
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-problem]"), text("main")
    shot("06-drift")
    # health from the real Prometheus: both scraped services up, and the "up" chart drawn from its range query
    browser.get(f"{url}/health")
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-problem]"), text("main")
    targets = text("#targets")
    assert "registry" in targets and "console" in targets and "down" not in targets
    charts = browser.find_elements(By.CSS_SELECTOR, "#rates svg.chart")
    assert "job=console" in charts[0].text and charts[0].find_elements(By.TAG_NAME, "polyline")
    shot("07-health")
    browser.get(f"{url}/traces?service=inference")
    assert "inference: ModelInfer" in text("#trace-results")
    shot("08-traces")

    # the same pages without Prometheus: they say so, and show the rest
    for page in ("health", "drift"):
        browser.get(f"{running['without_prometheus']}/{page}")
        assert f"Prometheus not reachable at {running['absent']}" in text("[data-problem]")
    assert "ADWIN" in text("#retrains")
    shot("09-drift-without-prometheus")
    assert len(list(shots.glob("*.png"))) == 9
