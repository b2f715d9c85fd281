"""The Open Inference Protocol (KServe v2 / Triton) gRPC contract, generated from
proto/mlops/contracts/oip/grpc_predict_v2.proto.

Its messages are package `inference`, exactly like the `grpc_service.proto` that tritonclient ships compiled; two
files defining the same symbols cannot share protobuf's default descriptor pool ("duplicate symbol"), so this
package loads the generated module into a private pool (`POOL`) the first time it is imported. Our server and a
tritonclient can then live in one process (tests, benchmarks); the wire format is the same, only the in-process
descriptors differ. Import the generated modules through this package, never by file path.
"""

from __future__ import annotations

import importlib
import sys
import threading

from google.protobuf import descriptor_pool

__all__ = ["POOL", "SERVICE_NAME", "pb2", "pb2_grpc"]

POOL = descriptor_pool.DescriptorPool()
SERVICE_NAME = "inference.GRPCInferenceService"
_lock = threading.Lock()


def _load_private(module: str):  # type: ignore[no-untyped-def]
    """Import a generated module with `descriptor_pool.Default()` pointing at POOL while it builds its classes."""
    if module in sys.modules:
        return sys.modules[module]
    with _lock:
        default = descriptor_pool.Default
        descriptor_pool.Default = lambda: POOL  # type: ignore[assignment]
        try:
            return importlib.import_module(module)
        finally:
            descriptor_pool.Default = default  # type: ignore[assignment]


pb2 = _load_private(f"{__name__}.grpc_predict_v2_pb2")
pb2_grpc = importlib.import_module(f"{__name__}.grpc_predict_v2_pb2_grpc")
