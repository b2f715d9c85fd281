"""Fixtures of the deployment tests: the offline validators (installed once) and the rendered manifests."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from deploy_helpers import INSTALL_SCRIPT, KUSTOMIZATIONS, Validators


@pytest.fixture(scope="session")
def validators() -> Validators:
    """kustomize + kubeconform + offline schemas (Kubernetes and KEDA's CRDs), installed once by
    install_validators.sh (cached). Any piece missing is a skip that says how to get it — a failure under CI=true."""
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1500)
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    missing = [key for key in ("KUSTOMIZE", "KUBECONFORM", "K8S_SCHEMA_DIR", "CRD_SCHEMA_DIR") if not found.get(key)]
    if missing:
        pytest.skip(
            f"deploy validators could not be installed ({', '.join(missing)} missing); install them with "
            f"`bash {INSTALL_SCRIPT.relative_to(INSTALL_SCRIPT.parents[2])}` (needs Go from https://go.dev/dl for "
            f"kubeconform and kustomize, and PyPI for the schemas); it said:\n{proc.stderr[-3000:]}"
        )
    return Validators(
        kustomize=shlex.split(found["KUSTOMIZE"])
        + (["build"] if found["KUSTOMIZE"].endswith("/kustomize") else []),
        kubeconform=found["KUBECONFORM"],
        k8s_schema_dir=found["K8S_SCHEMA_DIR"],
        crd_schema_dir=found.get("CRD_SCHEMA_DIR", ""),
        k8s_version=found["K8S_VERSION"],
    )


@pytest.fixture(scope="session")
def rendered(validators: Validators) -> dict[str, str]:
    """The manifest stream of each kustomization, rendered once."""
    return {name: validators.render(name) for name in KUSTOMIZATIONS}
