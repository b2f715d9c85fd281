"""Helpers of the deployment tests (imported by conftest.py and the test modules): paths, YAML, validators.

No container engine or cluster is needed: compose.yaml is validated against the Compose Specification's JSON
schema (vendored by check-jsonschema), deploy/ is rendered with kustomize and validated with kubeconform against
Kubernetes JSON schemas installed from PyPI by install_validators.sh (cached under ~/.cache/mlops).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "compose.yaml"
INSTALL_SCRIPT = Path(__file__).with_name("install_validators.sh")
KUSTOMIZATIONS = ("base", "overlays/production")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML stream (anchors and merge keys resolved), empty ones dropped."""
    return [doc for doc in YAML(typ="safe", pure=True).load_all(text) if doc is not None]


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


@dataclass(frozen=True)
class Validators:
    kustomize: list[str]
    kubeconform: str
    k8s_schema_dir: str
    crd_schema_dir: str
    k8s_version: str

    def render(self, kustomization: str) -> str:
        proc = subprocess.run(
            [*self.kustomize, str(DEPLOY / kustomization)], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"kustomize build {kustomization} failed:\n{proc.stderr}"
        return proc.stdout

    def kubeconform_cmd(self) -> list[str]:
        cmd = [
            self.kubeconform,
            "-strict",
            "-summary",
            "-output",
            "text",
            "-kubernetes-version",
            self.k8s_version,
            "-schema-location",
            f"{self.k8s_schema_dir}/{{{{ .NormalizedKubernetesVersion }}}}-standalone{{{{ .StrictSuffix }}}}"
            "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
            # KEDA's ScaledObject / TriggerAuthentication: never skipped (the fixture requires these schemas)
            "-schema-location",
            f"{self.crd_schema_dir}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        ]
        return cmd

    def validate(self, manifests: str) -> subprocess.CompletedProcess[str]:
        """kubeconform over a manifest stream on stdin; never reaches the network (local schema locations only)."""
        return subprocess.run(
            self.kubeconform_cmd() + ["-"], input=manifests, capture_output=True, text=True, timeout=120
        )


# The documented default ports: ops endpoint (/metrics, /healthz, /readyz) per service, and the gRPC APIs.
OPS_PORTS = {
    "ingest": 9101,
    "features": 9102,
    "trainer": 9103,
    "registry": 9104,
    "inference": 9105,
    "monitor": 9106,
    "console": 9107,
}
GRPC_PORTS = {"inference": 8001, "registry": 8002}
HTTP_PORTS = {"inference": 8000, "console": 8080}  # inference's KServe v2 REST, the console's pages
