"""Inference benchmark, all in one run: our server as users deploy it against MLServer and the thinnest grpc.aio
server, with the same client; raw in-process onnxruntime; single-row latency at a fixed rate; the monitor reading
what was logged; a hot swap under load; what a shadow costs the client.

    .venv/bin/python loadtests/bench_inference.py [--seconds 4] [--rounds 3] [--skip-mlserver] [--skip-swap]
        [--skip-monitor] [--skip-shadow] [--shadow-only] [--shadow-rates 1000,500] [--client raw|triton]
        [--connections 1] [--workers 1]

Rows (each server its own process, all side by side; the phases interleave round by round, medians reported):
- **ours**: the service's defaults (`python -m services.inference` with nothing but host, port and the model set:
  prediction log on to Kafka, tracing at the default sampling ratio) with a trace exporter on (the JSON-lines file
  exporter, as the demo runs);
- **ours, log off** (`MLOPS_INFERENCE_LOG_PREDICTIONS=false`) and **ours, tracing off** (sampling ratio 0, no
  exporter): one change each, to show what the log and tracing cost;
- **MLServer** 1.7.1 (loadtests/mlserver, its own virtualenv made on first use) twice: **as shipped** (its default
  `parallel_workers` 1: inference in a worker process beside the gRPC front end; the targets' baseline, as in the
  issue that set them) and **fastest** (`parallel_workers` 0 with one of our processes: inference in its only
  process, its fastest setting on this machine; the ratio against it is printed too), and the **thin grpc.aio
  servicer** (parses the request, answers zeros: no Python server can beat it with this client on this machine).
Every row of ours reports the prediction rows it dropped in that phase; at the end the log's totals (delivered +
dropped = served, or what is missing) and the monitor's drain rate: the drift monitor (edge + core, in this
process) reading everything logged, against the fastest rate any of ours logged at (it keeps up when it is faster).

The model is what the trainer exports: HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=31) on the SEA
feature set, via skl2onnx. The load client is its own process: the raw one by default (the request serialized once,
each response parsed and checked), because on a small machine the load generator shares the CPU with the servers
(`--client triton` for tritonclient.grpc.aio). Targets: ours >= 2.5x MLServer at batch 1 x 8 in flight, >= 2x at
batch 64 x 8; ours >= 90% of ours-log-off at both; 0 prediction rows dropped; the monitor keeps up; single-row p99
<= 3 ms at 1k req/s; zero failed requests during hot swaps.

Shadow cost (inference_load/shadow.py): single-row latency at 1k req/s on one server following model.promoted, with
no second version (the shipped state, headline) and with a shadow mirrored on every request (traffic_fraction 1.0),
alternating in the same run; target: the shadow adds <= 10 % to the client's p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the inference_load package beside this script

from inference_load.client import GHZ, WARM_UP, ghz_paced, load, run_client  # noqa: E402
from inference_load.phases import hot_swap, kafka_env, kafka_for_run, monitor_drain, raw_ort  # noqa: E402
from inference_load.servers import (  # noqa: E402
    OURS,
    ROOT,
    Server,
    cpu_s,
    family,
    floor_server,
    make_model,
    mlserver_binary,
    start_floor,
    start_mlserver,
    start_ours,
    wait_ready,
)
from inference_load.shadow import shadow_cost, shadow_rows  # noqa: E402
from mlops_tools.procs import stop_child  # noqa: E402
from mlops_tools.stack import go_tool  # noqa: E402

PHASES = (("b64", 64, 8), ("b1", 1, 8))  # (name, rows per request, requests in flight)
CEILING, MLSERVER, MLSERVER_FAST = "thin grpc.aio servicer", "MLServer as shipped", "MLServer fastest"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "client", "floor"])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the server phases (medians)")
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--skip-swap", action="store_true")
    parser.add_argument("--skip-monitor", action="store_true")
    parser.add_argument("--skip-paced", action="store_true", help="no single-row latency at 1k req/s")
    parser.add_argument("--skip-shadow", action="store_true", help="no shadow-cost phase")
    parser.add_argument("--shadow-only", action="store_true",
                        help="only the shadow-cost phase (latency at 1k req/s without and with a shadow)")
    parser.add_argument("--shadow-rates", default="1000",
                        help="request rates of the shadow-cost phase, comma-separated (the target is at 1000; a lower "
                        "rate shows how the cost grows with the server's utilisation)")
    parser.add_argument("--client", default="raw", choices=["raw", "triton"],
                        help="load client: raw (pre-serialized request on a grpc.aio channel) or tritonclient.grpc.aio")
    parser.add_argument("--connections", type=int, default=1, help="client connections (raw client only)")
    parser.add_argument("--workers", type=int, default=1,
                        help="our server processes (MLOPS_INFERENCE_WORKERS); MLServer then gets the same number of "
                        "parallel_workers (with 1: parallel_workers 0, inference in its one process)")
    # the client and floor modes (child processes)
    parser.add_argument("--url", default="")
    parser.add_argument("--model", default="sea")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--features", type=int, default=6)
    parser.add_argument("--keep-samples", action="store_true")
    return parser.parse_args()


class Results:
    """Every client result by server and phase (one per round), and the summaries the table prints."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, list[dict]]] = {}

    def add(self, server: str, phase: str, result: dict) -> None:
        self.runs.setdefault(server, {}).setdefault(phase, []).append(result)

    def med(self, server: str, phase: str, key: str | None = None) -> float:
        key = key or ("rows_per_s" if phase == "b64" else "req_per_s")
        return float(np.median([r[key] for r in self.runs[server][phase]]))

    def show(self, server: str, phase: str) -> str:
        rs = self.runs[server][phase]
        key = "rows_per_s" if phase == "b64" else "req_per_s"
        lo, hi = min(r[key] for r in rs), max(r[key] for r in rs)
        text = (f"{self.med(server, phase):,.0f}  (range {lo:,.0f}-{hi:,.0f})  p99 "
                f"{self.med(server, phase, 'p99_ms'):.2f} ms  server CPU {self.med(server, phase, 'cpu_us'):,.0f} "
                f"us/req  ({sum(r['failures'] for r in rs)} failed)")
        if server.startswith("ours"):
            text += f"  dropped {sum(r['dropped'] for r in rs):,.0f} of {sum(r['sent_rows'] for r in rs):,} rows"
        return text


def _measure(server: Server, batch: int, concurrency: int, args: argparse.Namespace, secs: float) -> dict:
    pids = family(server.proc.pid)
    c0, (_, dropped0) = cpu_s(pids), server.prediction_log()
    res = run_client(server.url, batch=batch, seconds=secs, concurrency=concurrency, client=args.client,
                     connections=args.connections)
    res["cpu_us"] = (cpu_s(pids) - c0) / max(1, res["requests"] + WARM_UP) * 1e6  # warm-up included
    res["sent_rows"] = (res["requests"] + WARM_UP) * batch
    res["dropped"] = server.prediction_log()[1] - dropped0  # buffer drops are counted when offered: all in by now
    return res


def _settle(logging_servers: list[Server], served: int, timeout: float = 60.0) -> tuple[float, float]:
    """(delivered, dropped) rows once every served row is one or the other (or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        logged, dropped = (sum(v) for v in zip(*(s.prediction_log() for s in logging_servers), strict=True))
        if logged + dropped >= served or time.monotonic() > deadline:
            return logged, dropped
        time.sleep(0.5)


def main() -> None:
    args = _args()
    if args.mode == "client":
        print(json.dumps(asyncio.run(load(args))))
        return
    if args.mode == "floor":
        floor_server(int(args.url))
        return
    (ROOT / ".run").mkdir(exist_ok=True)
    load_before = os.getloadavg()[0]  # a busy machine (other jobs) lowers every figure: say so
    secs = args.seconds
    if args.shadow_only:
        kafka, ghz = kafka_for_run(), go_tool(GHZ, "ghz")
        rows = [row for rate in _rates(args.shadow_rates)
                for row in shadow_rows(shadow_cost(kafka, secs, rate, args.rounds, ghz), rate)]
        _print(f"inference benchmark, shadow cost only ({secs:g} s per phase, {args.rounds} rounds, {os.cpu_count()} "
               f"cores, load average before {load_before:.2f})", rows)
        return
    data = make_model()
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    model_path = tmp / "model.onnx"
    model_path.write_bytes(data)
    rows: list[tuple[str, str]] = []
    raw64, raw1 = raw_ort(data, 64, secs), raw_ort(data, 1, secs)
    rows += [("raw onnxruntime, batch 64 (rows/s)", f"{raw64:,.0f}"), ("raw onnxruntime, batch 1 (rows/s)",
                                                                      f"{raw1:,.0f}")]
    kafka = kafka_for_run()
    servers: dict[str, Server] = {}
    mlserver = None if args.skip_mlserver else mlserver_binary()
    if not args.skip_mlserver and mlserver is None:
        rows.append((MLSERVER, "could not be installed (see .run/bench-mlserver.log)"))
    results, paced = Results(), {}
    ghz = None if args.skip_paced else go_tool(GHZ, "ghz")
    if ghz is None and not args.skip_paced:
        rows.append(("ghz", "not available: no Go toolchain, or `go install` failed (see the warning above)"))
    try:
        servers[CEILING] = start_floor()
        for name, env in OURS.items():
            filled = {k: v if v is not None else str(_trace_file(tmp, name)) for k, v in env.items()}
            servers[name] = start_ours(name, model_path, kafka_env(kafka) | filled, args.workers)
        if mlserver is not None:
            servers[MLSERVER] = start_mlserver(mlserver, model_path, tmp / "mlserver", None, MLSERVER)
            servers[MLSERVER_FAST] = start_mlserver(mlserver, model_path, tmp / "mlserver-fast",
                                                    args.workers if args.workers > 1 else 0, MLSERVER_FAST)
        for server in servers.values():
            wait_ready(server)
        if args.workers > 1:
            time.sleep(5)  # our other workers load their model copies after worker 0 is ready
        for _ in range(args.rounds):
            for phase, batch, conc in PHASES:
                for name, server in servers.items():
                    results.add(name, phase, _measure(server, batch, conc, args, secs))
            if not args.skip_paced:  # the empty servicer's tail is the floor under each client's figure
                for name in ("ours", CEILING):
                    url = servers[name].url
                    paced.setdefault((name, "Python"), []).append(run_client(url, batch=1, seconds=secs, rate=1000))
                    if ghz:
                        paced.setdefault((name, "ghz (Go)"), []).append(ghz_paced(ghz, url, 1000, secs))
        logging_servers = [s for n, s in servers.items() if n.startswith("ours") and n != "ours, log off"]
        served = sum(r["sent_rows"] for s in logging_servers for rs in results.runs[s.name].values() for r in rs)
        served += sum(r["requests"] + (WARM_UP if client == "Python" else 0)  # ghz: no warm-up, "count" is all
                      for (name, client), rs in paced.items() if name == "ours" for r in rs)
        logged, dropped = _settle(logging_servers, served)
    finally:
        for server in servers.values():
            stop_child(server.proc, 15)
    rows += _table(results, paced, mlserver is not None, raw64, (served, logged, dropped))
    spans = {name: _spans(_trace_file(tmp, name)) for name in OURS if "MLOPS_TELEMETRY_FILE_PATH" in OURS[name]}
    rows.append(("trace exporter on: spans in the file, by server", ", ".join(f"{n} {c:,}" for n, c in spans.items())))
    if not args.skip_monitor:
        drained = monitor_drain(kafka, int(logged))
        fastest = max(results.med(n, "b64") for n in results.runs if n.startswith("ours") and n != "ours, log off")
        rows.append(("monitor reading the log: rows/s (all of it?) vs the fastest logged rate",
                     f"{drained['rows_per_s']:,.0f}  ({drained['rows']:,} of {drained['expected']:,} rows) vs "
                     f"{fastest:,.0f}: {'keeps up' if drained['rows_per_s'] >= fastest else 'FALLS BEHIND'}"))
    if not args.skip_swap:
        swap = hot_swap(kafka, max(secs * 2, 6.0), 500)
        rows += [("hot swap: swaps / requests / failed", f"{swap['swaps']} / {swap['requests']} / {swap['failures']}"),
                 ("hot swap at 500 req/s: p99 overall / in the 1 s after each promotion (ms)",
                  f"{swap['p99_ms']:.2f} / {swap['swap_window_p99_ms']:.2f}")]
    if not args.skip_shadow:
        for rate in _rates(args.shadow_rates):
            rows += shadow_rows(shadow_cost(kafka, secs, rate, args.rounds, ghz), rate)
    _print(f"inference benchmark ({secs:g} s per phase, {args.rounds} rounds, {os.cpu_count()} cores, load average "
           f"before {load_before:.2f}; client {args.client}, {args.connections} connection(s); ours {args.workers} "
           f"process(es), MLServer fastest: parallel_workers {args.workers if args.workers > 1 else 0})", rows)


def _rates(text: str) -> list[int]:
    return [int(r) for r in text.split(",") if r.strip()]


def _print(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(title)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def _trace_file(tmp: Path, server: str) -> Path:
    return tmp / f"traces-{server.replace(',', '').replace(' ', '-')}.jsonl"


def _spans(path: Path) -> int:
    """Spans in an OTLP/JSON lines file (each line one export batch)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    return sum(len(scope["spans"]) for line in lines for resource in json.loads(line)["resourceSpans"]
               for scope in resource["scopeSpans"])


def _table(results: Results, paced: dict, with_mlserver: bool, raw64: float,
           log_totals: tuple[int, float, float]) -> list[tuple[str, str]]:
    label = {"ours": "ours (defaults: log on, tracing on, file exporter)", "ours, log off": "ours, log off",
             "ours, tracing off": "ours, tracing off (log on)", CEILING: CEILING,
             MLSERVER: "MLServer as shipped (parallel_workers 1)",
             MLSERVER_FAST: "MLServer fastest (parallel_workers 0)"}
    rows = [(f"{label[name]}, {'batch 64 x 8 (rows/s)' if phase == 'b64' else 'batch 1 x 8 (req/s)'}",
             results.show(name, phase)) for phase, _b, _c in PHASES for name in results.runs]
    r = results.med
    for phase, what in (("b1", "batch 1 x 8"), ("b64", "batch 64 x 8")):
        if with_mlserver:
            target = "2.5x" if phase == "b1" else "2x"
            log_off = r("ours, log off", phase) / r(MLSERVER, phase)
            rows.append((f"ours / MLServer as shipped, {what}", f"{r('ours', phase) / r(MLSERVER, phase):.2f}x  "
                                                                 f"(target >= {target}; log off {log_off:.2f}x)"))
            rows.append((f"ours / MLServer fastest, {what}", f"{r('ours', phase) / r(MLSERVER_FAST, phase):.2f}x  "
                                                             "(MLServer at its fastest setting on this machine)"))
            ceiling = r(CEILING, phase) / r(MLSERVER, phase)
            rows.append((f"thin servicer / MLServer as shipped, {what}",
                         f"{ceiling:.2f}x  (the most a server doing no work reaches)"))
        rows.append((f"ours / ours log off, {what}", f"{r('ours', phase) / r('ours, log off', phase):.0%}  "
                                                     "(target >= 90%)"))
        rows.append((f"ours / ours tracing off, {what}", f"{r('ours', phase) / r('ours, tracing off', phase):.0%}  "
                                                         "(what default tracing with an exporter keeps)"))
        rows.append((f"ours / thin servicer, {what}", f"{r('ours', phase) / r(CEILING, phase):.0%}"))
    rows.append(("ours / raw ORT at batch 64", f"{r('ours', 'b64') / raw64:.0%}"))
    for (name, client), rs in paced.items():
        p99s = ", ".join(f"{x['p99_ms']:.2f}" for x in rs)
        rows.append((f"{'ours' if name == 'ours' else 'thin servicer'} single row at 1k req/s, {client} client: "
                     "p50 / p99 ms", f"{np.median([x['p50_ms'] for x in rs]):.2f} / "
                     f"{np.median([x['p99_ms'] for x in rs]):.2f}  (p99 per round {p99s}; "
                     f"{sum(x['failures'] for x in rs)} failed)"))
    served, logged, dropped = log_totals
    rows.append(("prediction log, every run with it on: rows served / delivered / dropped",
                 f"{served:,} / {logged:,.0f} / {dropped:,.0f}  (target: 0 dropped"
                 f"{'' if logged + dropped >= served else f'; {served - logged - dropped:,.0f} not settled in 60 s'})"))
    return rows


if __name__ == "__main__":
    main()
