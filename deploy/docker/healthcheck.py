#!/usr/bin/env python
"""Container health check (installed in the image as `mlops-healthcheck`): exit 0 healthy, 1 not.

The slim image has no curl or grpc_health_probe, so compose's `healthcheck:` runs this instead:

    mlops-healthcheck http http://127.0.0.1:9105/readyz     # 200 → healthy (503 from /readyz → not)
    mlops-healthcheck grpc 127.0.0.1:8001 [SERVICE]         # grpc.health.v1 Check → SERVING
    mlops-healthcheck http-env [/readyz]                     # port from MLOPS_TELEMETRY_METRICS_PORT

Kubernetes does not need it: its probes are native (httpGet and grpc).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 3.0


def check_http(url: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (a local probe URL)
            return resp.status == 200, f"{url}: HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def check_grpc(target: str, service: str = "", timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return False, f"{target}: {exc.code().name}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{target} {service or '(server)'}: {status}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("http", "grpc", "http-env"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, args = argv[0], argv[1:]
    if mode == "http" and len(args) == 1:
        ok, detail = check_http(args[0])
    elif mode == "grpc" and len(args) in (1, 2):
        ok, detail = check_grpc(args[0], args[1] if len(args) == 2 else "")
    elif mode == "http-env" and len(args) <= 1:
        port = os.environ.get("MLOPS_TELEMETRY_METRICS_PORT")
        if not port:
            print("mlops-healthcheck: MLOPS_TELEMETRY_METRICS_PORT is not set", file=sys.stderr)
            return 1
        ok, detail = check_http(f"http://127.0.0.1:{port}{args[0] if args else '/readyz'}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
