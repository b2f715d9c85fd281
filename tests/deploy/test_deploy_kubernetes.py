"""deploy/ (kustomize base + production overlay): rendered with kustomize, validated offline with kubeconform.

Schemas: Kubernetes from the `kubernetes-validate` wheel, KEDA from `cloudcoil.models.keda` (see
install_validators.sh). Beyond the schemas, the tests check what only this project knows: each service's probes hit
its own ops port, inference is probed over gRPC, the registry stays a single writer, and lag-based scaling never
asks for more consumers than there are partitions.
"""

from __future__ import annotations

import re

import pytest
from deploy_helpers import GRPC_PORTS, HTTP_PORTS, KUSTOMIZATIONS, OPS_PORTS, Validators, load_yaml_documents
from mlops.topics import ALL_TOPICS
from mlops_tools.cli.services_cmd import SERVICES

pytestmark = pytest.mark.timeout(1500)  # the first run installs the validators (go install, pip download)

LAG_SCALED = ("ingest", "features", "monitor")
GROUP_SETTING = {
    "ingest": "MLOPS_INGEST_GROUP_ID",
    "features": "MLOPS_FEATURES_APP_ID",
    "monitor": "MLOPS_MONITOR_GROUP_ID",
}
TOPIC_NAMES = {spec.name for spec in ALL_TOPICS}


def by_kind(manifests: str) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for doc in load_yaml_documents(manifests):
        out.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return out


def workloads(kinds: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Deployments and StatefulSets (features: stable pod names for static group membership) by name."""
    return kinds["Deployment"] | kinds.get("StatefulSet", {})


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_manifests_are_valid_kubernetes(
    validators: Validators, rendered: dict[str, str], kustomization: str
) -> None:
    proc = validators.validate(rendered[kustomization])
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"(\d+) resources found.*Valid: (\d+), Invalid: 0, Errors: 0, Skipped: (\d+)", summary)
    assert found, summary
    total, valid, skipped = (int(g) for g in found.groups())
    keda = sum(
        kind in ("ScaledObject", "TriggerAuthentication")
        for kind in re.findall(r"^kind: (\w+)$", rendered[kustomization], flags=re.MULTILINE)
    )
    assert skipped == 0, summary  # KEDA's objects validated too, against their CRD schemas
    assert keda or kustomization == "base", "the production overlay's KEDA objects are missing"
    assert total == valid and valid >= 15, summary


def test_kubeconform_rejects_a_misspelt_field(validators: Validators, rendered: dict[str, str]) -> None:
    # the offline schemas must bite (strict mode: unknown fields are errors), for core kinds and for KEDA's
    bad = rendered["overlays/production"].replace("periodSeconds:", "periodSecond:", 1)
    assert bad != rendered["overlays/production"]
    proc = validators.validate(bad)
    assert proc.returncode != 0 and "periodSecond" in proc.stdout, proc.stdout
    bad = rendered["overlays/production"].replace("minReplicaCount:", "minReplicas:", 1)
    assert bad != rendered["overlays/production"], "the production overlay has no ScaledObject to misspell"
    proc = validators.validate(bad)
    assert proc.returncode != 0 and "minReplicas" in proc.stdout, proc.stdout


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_service_is_probed_on_its_own_ports(rendered: dict[str, str], kustomization: str) -> None:
    kinds = by_kind(rendered[kustomization])
    configmaps = kinds["ConfigMap"]
    for name in SERVICES:
        deployment = workloads(kinds)[f"mlops-{name}"]
        c = container(deployment)
        assert c["args"] == [name], f"{name} must run `python -m services {name}`"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["ops"] == OPS_PORTS[name], name
        assert configmaps[f"mlops-{name}"]["data"]["MLOPS_TELEMETRY_METRICS_PORT"] == str(OPS_PORTS[name]), name
        assert {ref["configMapRef"]["name"] for ref in c["envFrom"]} == {"mlops-settings", f"mlops-{name}"}
        if name in GRPC_PORTS:
            assert ports["grpc"] == GRPC_PORTS[name], name
        if name in HTTP_PORTS:
            assert ports["http"] == HTTP_PORTS[name], name
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}, name
        if name == "inference" and kustomization != "overlays/production":
            assert c["readinessProbe"]["grpc"] == {"port": GRPC_PORTS["inference"]}, "native gRPC probe"
        elif name == "inference":  # production listens with TLS, which the kubelet's gRPC probe cannot speak
            assert "grpc" not in c["readinessProbe"], "a plaintext gRPC probe against a TLS port"
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}, name
        else:
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}, name
        resources = c["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), (
            name
        )
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True, name
        secret_env = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert secret_env == {
            "MLOPS_KAFKA_SASL_USERNAME": "mlops-kafka-sasl",
            "MLOPS_KAFKA_SASL_PASSWORD": "mlops-kafka-sasl",
        } | ({"MLOPS_CONSOLE_ADMIN_TOKEN": "mlops-console-admin", "MLOPS_CONSOLE_REGISTRY_TOKEN": "mlops-auth"}
             if name == "console" else {}) | (
            {"MLOPS_SECURITY_TOKENS": "mlops-auth"} if name in ("registry", "inference") else {}) | (
            {"MLOPS_SECURITY_PROMOTION_KEY": "mlops-auth"}
            if name in ("registry", "inference") and kustomization == "overlays/production" else {}), name
        if kustomization == "overlays/production" and name in ("registry", "inference", "console"):
            # closed by default in production: the token Secret is required and the gRPC APIs use TLS
            env = {e["name"]: e for e in c["env"]}
            token = "MLOPS_CONSOLE_REGISTRY_TOKEN" if name == "console" else "MLOPS_SECURITY_TOKENS"
            assert env[token]["valueFrom"]["secretKeyRef"]["optional"] is False, name
            assert ("MLOPS_CLIENT_CA_FILE" if name == "console" else "MLOPS_SECURITY_TLS_CERT_FILE") in env, name
            if name != "console":  # promotions signed by the registry, verified by inference
                assert env["MLOPS_SECURITY_PROMOTION_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mlops-auth"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_scaling_shape(rendered: dict[str, str], kustomization: str) -> None:
    kinds = by_kind(rendered[kustomization])
    registry = kinds["Deployment"]["mlops-registry"]
    assert registry["spec"]["replicas"] == 1 and registry["spec"]["strategy"]["type"] == "Recreate", (
        "registry.log has a single writer"
    )
    # an autoscaler owns the replica count of its target: an applied `replicas` would reset it on every deploy
    autoscaled = ["mlops-inference"] + [
        so["spec"]["scaleTargetRef"]["name"] for so in kinds.get("ScaledObject", {}).values()
    ]
    for name in autoscaled:
        assert "replicas" not in workloads(kinds)[name]["spec"], f"{name} is autoscaled but sets replicas"
    hpa = kinds["HorizontalPodAutoscaler"]["mlops-inference"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "mlops-inference"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert set(kinds["Service"]) == {"mlops-inference", "mlops-registry", "mlops-console", "mlops-features"}
    for svc_name, svc in kinds["Service"].items():
        name = svc_name.removeprefix("mlops-")
        if name == "features":  # headless, for the StatefulSet's pod names: its only port is the ops one
            assert svc["spec"]["clusterIP"] == "None" and [p["name"] for p in svc["spec"]["ports"]] == ["ops"]
            continue
        ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        assert ports.get("grpc") == GRPC_PORTS.get(name) and ports.get("http") == HTTP_PORTS.get(name), svc_name
    job = kinds["Job"]["mlops-topics"]
    assert "ensure_topics" in " ".join(container({"spec": job["spec"]})["command"])

    partitions = int(kinds["ConfigMap"]["mlops-settings"]["data"]["MLOPS_KAFKA_DEFAULT_PARTITIONS"])
    for name, scaled in kinds.get("ScaledObject", {}).items():
        ref = scaled["spec"]["scaleTargetRef"]
        target = ref["name"]
        assert target == name and target in kinds[ref.get("kind", "Deployment")], name
        assert scaled["spec"]["maxReplicaCount"] <= partitions, f"{name}: more consumers than partitions idle"
        settings = kinds["ConfigMap"]["mlops-settings"]["data"]
        own = kinds["ConfigMap"][name]["data"]
        group = own.get(GROUP_SETTING[name.removeprefix("mlops-")])
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka", name
            # KEDA must measure the lag of the very group the pods join, on the broker they use
            assert meta["bootstrapServers"] == settings["MLOPS_KAFKA_BOOTSTRAP_SERVERS"], name
            assert meta["consumerGroup"] == group, (
                f"{name}: KEDA watches {meta['consumerGroup']!r}, pods join {group!r}"
            )
            assert meta["topic"] in TOPIC_NAMES, f"{name}: {meta['topic']} is not in mlops.topics"
    if kustomization == "overlays/production":
        assert set(kinds["ScaledObject"]) == {f"mlops-{n}" for n in LAG_SCALED}
        assert kinds["Deployment"]["mlops-inference"]["metadata"]["namespace"] == "mlops"
        assert container(kinds["Deployment"]["mlops-inference"])["image"].endswith(":0.1.0")


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_selectors_match_pod_labels(rendered: dict[str, str], kustomization: str) -> None:
    # what the schemas cannot see: a selector that matches no pod is valid YAML and a silent outage
    kinds = by_kind(rendered[kustomization])
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in workloads(kinds).items()}
    for name, labels in pod_labels.items():
        selector = workloads(kinds)[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), f"{name}: selector {selector} vs pod labels {labels}"
    selectors = [("Service", n, s["spec"]["selector"]) for n, s in kinds["Service"].items()]
    selectors += [
        ("PodDisruptionBudget", n, p["spec"]["selector"]["matchLabels"])
        for n, p in kinds.get("PodDisruptionBudget", {}).items()
    ]
    for kind, name, selector in selectors:
        matched = [d for d, labels in pod_labels.items() if selector.items() <= labels.items()]
        assert matched == [name], f"{kind} {name} selects {matched}"
    for kind, targets in (
        ("HorizontalPodAutoscaler", kinds["HorizontalPodAutoscaler"]),
        ("ScaledObject", kinds.get("ScaledObject", {})),
    ):
        for name, obj in targets.items():
            ref = obj["spec"]["scaleTargetRef"]
            assert ref["name"] in kinds[ref.get("kind", "Deployment")], f"{kind} {name}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_features_pods_are_static_group_members(rendered: dict[str, str], kustomization: str) -> None:
    # a pod restarted under its own name must rejoin as the same member: a StatefulSet (stable names, governed by
    # its headless Service) whose pods name their group instance after their host name, which is the pod's name
    kinds = by_kind(rendered[kustomization])
    features = kinds["StatefulSet"]["mlops-features"]
    assert "mlops-features" not in kinds["Deployment"]
    assert features["spec"]["serviceName"] == "mlops-features" and "mlops-features" in kinds["Service"]
    assert kinds["ConfigMap"]["mlops-features"]["data"]["MLOPS_FEATURES_GROUP_INSTANCE_ID"] == "{hostname}"
