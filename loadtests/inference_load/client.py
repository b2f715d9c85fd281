"""The load clients: ModelInfer closed loop (N in flight) or open loop (a fixed rate), each run in a child process of
its own (`bench_inference.py client ...`) so it never shares an interpreter with a server; and ghz, a Go load
generator, for latency at a fixed rate without a Python client's own scheduling delays."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "loadtests" / "bench_inference.py"
GHZ = "github.com/bojand/ghz/cmd/ghz@v0.120.0"
OIP_PROTO = ROOT / "proto" / "mlops" / "contracts" / "oip" / "grpc_predict_v2.proto"
WARM_UP = 50  # requests each client sends before timing (the servers log them too)


def sea_width() -> int:
    """Inputs of the declared SEA model (examples/sea/definitions.yaml), the model every server serves."""
    from mlops.definitions import load

    return len(load(ROOT / "examples" / "sea" / "definitions.yaml").model("sea").features)


class RawClient:
    """ModelInfer over a plain grpc.aio channel with the request serialized once (the same message tritonclient
    builds) and every response parsed and checked: a load generator that spends less of the shared CPU than
    tritonclient's per-call request building, so more of the machine measures the server."""

    def __init__(self, url: str, model: str, x: np.ndarray):
        import grpc
        from tritonclient.grpc import service_pb2

        self._pb = service_pb2
        # a local subchannel pool: each client is its own TCP connection (a multi-worker server sees several)
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20),
                ("grpc.use_local_subchannel_pool", 1)]
        self._channel = grpc.aio.insecure_channel(url, options=opts)
        self._call = self._channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        req = service_pb2.ModelInferRequest(model_name=model)
        req.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
        req.outputs.add(name="probabilities")
        req.raw_input_contents.append(x.tobytes())
        self._payload = req.SerializeToString()
        self._expect = len(x) * 2 * 4  # [n, 2] FP32 probabilities

    async def infer(self) -> None:
        resp = self._pb.ModelInferResponse.FromString(await self._call(self._payload))
        for i, out in enumerate(resp.outputs):  # servers may add outputs nobody asked for, or answer in `contents`
            if out.name == "probabilities":
                n = (len(resp.raw_output_contents[i]) if len(resp.raw_output_contents) > i
                     else 4 * len(out.contents.fp32_contents))
                if n == self._expect:
                    return
        raise RuntimeError(f"no FP32 probabilities of {self._expect} bytes in the response: {resp.outputs}"[:300])

    async def close(self) -> None:
        await self._channel.close()


class TritonClient:
    def __init__(self, url: str, model: str, x: np.ndarray):
        import tritonclient.grpc.aio as tca

        self._client = tca.InferenceServerClient(url)
        self._model = model
        self._inp = tca.InferInput("input", list(x.shape), "FP32")
        self._inp.set_data_from_numpy(x)
        self._outs = [tca.InferRequestedOutput("probabilities")]

    async def infer(self) -> None:
        await self._client.infer(self._model, [self._inp], outputs=self._outs)

    async def close(self) -> None:
        await self._client.close()


async def load(args: argparse.Namespace) -> dict:
    """One client run (in the client process): warm-up, then closed or open loop for `args.seconds`."""
    x = np.random.default_rng(1).uniform(0, 10, (args.batch, args.features)).astype(np.float32)
    kind = RawClient if args.client == "raw" else TritonClient
    clients = [kind(args.url, args.model, x) for _ in range(max(1, args.connections))]
    lat: list[float] = []
    stamps: list[float] = []
    failures: list[str] = []
    for i in range(WARM_UP):
        await clients[i % len(clients)].infer()

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            await clients[i % len(clients)].infer()
            lat.append(time.perf_counter() - t0)
            stamps.append(time.perf_counter())
        except Exception as exc:
            failures.append(str(exc)[:200])

    start = time.perf_counter()
    end = start + args.seconds
    if args.rate:  # open loop: a request every 1/rate s whatever the server does
        tasks = []
        i = 0
        while (due := start + i / args.rate) < end:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i)))
            i += 1
        await asyncio.gather(*tasks)
    else:  # closed loop: `concurrency` requests always in flight
        async def worker(i: int) -> None:
            while time.perf_counter() < end:
                await one(i)

        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    elapsed = time.perf_counter() - start
    for client in clients:
        await client.close()
    arr = np.array(lat) * 1000 if lat else np.array([float("nan")])
    return {"requests": len(lat), "failures": len(failures), "failure_samples": failures[:3],
            "rows_per_s": len(lat) * args.batch / elapsed, "req_per_s": len(lat) / elapsed,
            "p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()), "start": start,
            "stamps_lat": list(zip(stamps, lat, strict=True)) if args.keep_samples else []}


def run_client(url: str, *, batch: int, seconds: float, concurrency: int = 8, rate: float = 0.0,
               keep_samples: bool = False, client: str = "raw", connections: int = 1) -> dict:
    """Run one client in a child process and return its result (see `load`)."""
    cmd = [sys.executable, str(BENCH), "client", "--url", url, "--batch", str(batch), "--seconds", str(seconds),
           "--concurrency", str(concurrency), "--rate", str(rate), "--features", str(sea_width()),
           "--client", client, "--connections", str(connections)]
    if keep_samples:
        cmd.append("--keep-samples")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ghz_paced(binary: Path, url: str, rate: int, seconds: float, features: int = 6) -> dict:
    """Single-row ModelInfer at a fixed `rate` for `seconds`, sent and timed by ghz (open loop)."""
    request = {"model_name": "sea", "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, features],
                                               "contents": {"fp32_contents": [1.0] * features}}],
               "outputs": [{"name": "probabilities"}]}
    cmd = [str(binary), "--insecure", "--proto", str(OIP_PROTO), "--import-paths", str(OIP_PROTO.parent),
           "--call", "inference.GRPCInferenceService.ModelInfer", "-d", json.dumps(request),
           "--rps", str(rate), "--total", str(int(rate * seconds)), "--concurrency", "16", "--connections", "1",
           "--format", "json", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"ghz failed: {out.stderr[-1500:]}")
    report = json.loads(out.stdout)
    dist = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    codes = report.get("statusCodeDistribution") or {}
    return {"p50_ms": dist.get(50, float("nan")), "p99_ms": dist.get(99, float("nan")), "req_per_s": report["rps"],
            "requests": report["count"], "failures": sum(n for code, n in codes.items() if code != "OK"),
            "errors": report.get("errorDistribution") or {}}
