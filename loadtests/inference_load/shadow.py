"""What a shadow costs the client: single-row latency at a fixed rate on one server following model.promoted (the
service's defaults, prediction log on), with no second version (as shipped: the headline) and with a shadow
mirrored EVERY request (traffic_fraction 1.0, the most it can cost). The two states alternate inside the run
(off/on, then on/off the next round) on the same process, so both meet the same machine; medians over rounds."""

from __future__ import annotations

import time

import numpy as np
from mlops.settings import KafkaSettings
from mlops_tools.procs import stop_child

from inference_load.client import ghz_paced, run_client
from inference_load.phases import kafka_env
from inference_load.servers import SEA_DEFINITIONS, Server, cpu_s, family, make_model, start_ours, wait_ready


def _announce(kafka: KafkaSettings, producer, data: bytes | None, version: str, role: str = "",  # type: ignore
              fraction: float = 0.0, action: str = "promote") -> None:
    from mlops.artifacts import publish_artifact
    from mlops.contracts import models_pb2
    from mlops.definitions import load
    from mlops.topics import MODEL_PROMOTED, topic_name

    sha = publish_artifact(producer, kafka, data) if data is not None else ""
    producer.send(topic_name(MODEL_PROMOTED, kafka), models_pb2.ModelPromoted(
        model_name="sea", version=version, artifact_sha256=sha, role=role, traffic_fraction=fraction,
        action=action, feature_names=list(load(SEA_DEFINITIONS).model("sea").features)),
        key="sea/challenger" if role else "sea")
    producer.flush()


def _wait_shadow(server: Server, fraction: float, timeout: float) -> None:
    """Until the server says the shadow (version 2) is in service at `fraction` (0: withdrawn)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.metric("mlops_inference_challenger_traffic_fraction", model="sea", version="2",
                         role="shadow") == fraction:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name}: the shadow's traffic fraction never became {fraction}")


def shadow_cost(kafka: KafkaSettings, seconds: float, rate: float, rounds: int, ghz: object = None) -> dict:
    """p50/p99 per state ("off": no second version; "on": a shadow on every request) and client ("Python", and
    "ghz (Go)" when `ghz` is its binary), plus what the mirror scored and dropped while on."""
    from mlops.bus import Producer

    producer = Producer(kafka, client_id="bench-registry")
    _announce(kafka, producer, make_model(0), "1")
    shadow = make_model(1)
    server = start_ours("ours, shadow on/off", None, kafka_env(kafka))
    runs: dict[tuple[str, str], list[dict]] = {}
    try:
        wait_ready(server)
        for r in range(rounds):
            for state in ("off", "on") if r % 2 == 0 else ("on", "off"):
                if state == "on":
                    _announce(kafka, producer, shadow, "2", "shadow", 1.0)
                else:
                    _announce(kafka, producer, None, "2", "shadow", action="retire")
                _wait_shadow(server, 1.0 if state == "on" else 0.0, 120.0 if r == 0 else 60.0)
                for client in ("Python", "ghz (Go)") if ghz is not None else ("Python",):
                    c0 = cpu_s(family(server.proc.pid))
                    res = run_client(server.url, batch=1, seconds=seconds, rate=rate) if client == "Python" else \
                        ghz_paced(ghz, server.url, int(rate), seconds)  # type: ignore[arg-type]
                    res["cpu_us"] = (cpu_s(family(server.proc.pid)) - c0) / max(1, res["requests"]) * 1e6
                    runs.setdefault((state, client), []).append(res)
        scored = server.metric("mlops_inference_challenger_requests_total")
        dropped = server.metric("mlops_inference_mirror_dropped_total")
    finally:
        stop_child(server.proc, 15)
    out: dict = {"scored": scored, "dropped": dropped, "clients": {}}
    for (state, client), rs in runs.items():
        out["clients"].setdefault(client, {})[state] = {
            "p50_ms": float(np.median([x["p50_ms"] for x in rs])),
            "p99_ms": float(np.median([x["p99_ms"] for x in rs])),
            "p99_rounds": [x["p99_ms"] for x in rs], "requests": sum(x["requests"] for x in rs),
            "cpu_us": float(np.median([x["cpu_us"] for x in rs])),
            "failures": sum(x["failures"] for x in rs)}
    return out


def shadow_rows(result: dict, rate: float) -> list[tuple[str, str]]:
    """The table's rows: per client, off (headline) and on, p50 / p99 and the p99 ratio against the 10 % target."""
    rows = []
    for client, states in result["clients"].items():
        off, on = states["off"], states["on"]
        for state, label in ((off, "no second version (shipped)"), (on, "shadow on every request")):
            rows.append((f"single row at {rate:g} req/s, {client} client, {label}: p50 / p99 ms",
                         f"{state['p50_ms']:.2f} / {state['p99_ms']:.2f}  (p99 per round "
                         f"{', '.join(f'{p:.2f}' for p in state['p99_rounds'])}; server CPU "
                         f"{state['cpu_us']:,.0f} us/req; {state['failures']} failed of {state['requests']:,})"))
        ratio, p50_ratio = on["p99_ms"] / off["p99_ms"], on["p50_ms"] / off["p50_ms"]
        rows.append((f"shadow / no shadow, p99, {client} client",
                     f"{ratio:.2f}x  ({ratio - 1:+.0%} added; target <= +10%; p50 {p50_ratio:.2f}x; server CPU per "
                     f"request {on['cpu_us'] / off['cpu_us']:.2f}x)"))
    rows.append(("shadow: requests scored by the mirror / dropped (queue full, failed)",
                 f"{result['scored']:,.0f} / {result['dropped']:,.0f}"))
    return rows
