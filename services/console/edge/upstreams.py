"""The console's clients of what it shows: the registry's gRPC API, recent records of a Kafka topic (mlops.bus
Readers over the last offsets), and Prometheus's and Jaeger's HTTP APIs. Each failure becomes `Unreachable` (the
page says "X not reachable at ADDRESS: why" and shows the rest) or `UpstreamError` (the upstream refused)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import httpx
from mlops.bus import Bus, Record
from mlops.contracts.v1 import registry_service_pb2 as api
from mlops.contracts.v1 import registry_service_pb2_grpc as api_grpc
from mlops.security import ClientSecuritySettings, client_channel
from mlops.topics import TopicSpec

from services.console import convert
from services.console.core import ModelDetail, ModelRow, Series, Trace
from services.console.errors import Unreachable, UpstreamError
from services.console.metrics import UPSTREAM_FAILURES

__all__ = ["Jaeger", "Prometheus", "RecentRecords", "RegistryGateway"]

_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class RegistryGateway:
    """mlops.v1.ModelRegistry over gRPC (blocking stubs run in a worker thread)."""

    def __init__(self, address: str, timeout: float, security: ClientSecuritySettings | None = None):
        """`security`: the token and CA the registry wants (None: from MLOPS_CLIENT_TOKEN, MLOPS_CLIENT_CA_FILE)."""
        self.address, self.timeout = address, timeout
        self._channel = client_channel(address, security)
        self._stub = api_grpc.ModelRegistryStub(self._channel)

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._stub, method), request, timeout=self.timeout)
        except grpc.RpcError as exc:
            UPSTREAM_FAILURES.labels("registry").inc()
            if exc.code() in _DOWN:
                raise Unreachable("Registry", self.address, exc.details() or exc.code().name) from None
            raise UpstreamError(f"registry {method}", f"{exc.code().name}: {exc.details()}") from None

    async def models(self) -> list[ModelRow]:
        return convert.model_rows(await self._call("ListModels", api.ListModelsRequest()))

    async def model(self, name: str) -> ModelDetail:
        return convert.model_detail(await self._call("GetModel", api.GetModelRequest(name=name)))

    async def card(self, name: str, version: str = "") -> str:
        return str((await self._call("GetModelCard", api.GetModelCardRequest(name=name, version=version))).markdown)

    async def promote(self, name: str, version: str, actor: str, reason: str) -> int:
        resp = await self._call("Promote", api.PromoteRequest(name=name, version=version, actor=actor, reason=reason))
        return int(resp.sequence)

    async def rollback(self, name: str, actor: str, reason: str) -> tuple[str, int]:
        resp = await self._call("Rollback", api.RollbackRequest(name=name, actor=actor, reason=reason))
        return resp.promoted.version, int(resp.sequence)

    def close(self) -> None:
        self._channel.close()


class RecentRecords:
    """The last records of a topic: a Reader placed `n` records before each partition's end, read to that end."""

    def __init__(self, bus: Bus, timeout: float):
        self.bus, self.timeout = bus, timeout

    def _read(self, spec: TopicSpec, n: int) -> list[Record]:
        topic = self.bus.topic(spec)
        probe = self.bus.reader([topic], client_id="console-probe", start="end")
        try:
            marks = probe.watermarks([topic], timeout=self.timeout)
        finally:
            probe.close()
        start = {tp: max(low, high - n) for tp, (low, high) in marks.items()}
        reader = self.bus.reader([topic], client_id="console", start=start)
        try:
            records = reader.read_until({tp: high for tp, (_low, high) in marks.items()}, timeout=self.timeout)
        finally:
            reader.close()
        return sorted(records, key=lambda r: (r.timestamp_ms, r.offset), reverse=True)[:n]

    async def recent(self, spec: TopicSpec, n: int) -> list[Record]:
        try:
            return await asyncio.to_thread(self._read, spec, n)
        except Exception as exc:  # a broker that is down, a topic that is not there: the page says so
            UPSTREAM_FAILURES.labels("kafka").inc()
            where = self.bus.settings.bootstrap_servers if self.bus.settings is not None else "the in-process bus"
            raise Unreachable(f"Kafka topic {self.bus.topic(spec)}", where, f"{type(exc).__name__}: {exc}") from None


class _HttpApi:
    name = ""

    def __init__(self, base_url: str, timeout: float):
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def _get(self, path: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False) -> Any:
        try:
            resp = await self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            UPSTREAM_FAILURES.labels(self.name.lower()).inc()
            raise Unreachable(self.name, self.base_url, f"{type(exc).__name__}: {exc}") from None
        if missing_ok and resp.status_code == 404:
            return None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200:
            UPSTREAM_FAILURES.labels(self.name.lower()).inc()
            detail = body.get("error") or body.get("errors") if isinstance(body, dict) else None
            raise UpstreamError(self.name, f"HTTP {resp.status_code} for {path}: {detail or resp.text[:200]}")
        return body

    async def close(self) -> None:
        await self.http.aclose()


class Prometheus(_HttpApi):
    name = "Prometheus"

    async def query(self, promql: str) -> list[Series]:
        return convert.series(await self._get("/api/v1/query", {"query": promql}))

    async def query_range(self, promql: str, minutes: int, points: int = 120) -> list[Series]:
        end = time.time()
        step = max(1.0, minutes * 60 / points)
        return convert.series(await self._get("/api/v1/query_range", {
            "query": promql, "start": end - minutes * 60, "end": end, "step": f"{step:g}"}))

    async def alerts(self) -> list[dict[str, Any]]:
        return convert.alerts(await self._get("/api/v1/alerts"))


class Jaeger(_HttpApi):
    name = "Jaeger"

    async def services(self) -> list[str]:
        return sorted((await self._get("/api/services")).get("data") or [])

    async def search(self, service: str, limit: int, lookback_minutes: int, operation: str = "") -> list[Trace]:
        now_us = int(time.time() * 1e6)
        params: dict[str, Any] = {"service": service, "limit": limit, "start": now_us - lookback_minutes * 60_000_000,
                                  "end": now_us}
        if operation:
            params["operation"] = operation
        return [convert.trace(t) for t in (await self._get("/api/traces", params)).get("data") or []]

    async def trace(self, trace_id: str) -> Trace | None:
        body = await self._get(f"/api/traces/{trace_id}", missing_ok=True)
        data = (body or {}).get("data") or []
        return convert.trace(data[0]) if data else None
