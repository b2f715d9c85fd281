"""deploy/monitoring (Prometheus Operator): rendered with kustomize and validated with kubeconform (the CRD schemas of
ServiceMonitor and PrometheusRule from cloudcoil.models.prometheus_operator), generated from their sources (the
rules file, the service table) and wired to the platform's pods: every service is scraped on its own ops port with
`job` = its name, the label the rules of deploy/prometheus/rules.yml select on."""

from __future__ import annotations

import re

import pytest
import yaml
from deploy_helpers import OPS_PORTS, Validators, load_yaml_documents
from mlops_tools.cli.services_cmd import SERVICES
from mlops_tools.opsgen import generated_files, stale
from mlops_tools.stack.prometheus import RULES_FILE

pytestmark = pytest.mark.timeout(1500)  # the first run installs the validators


@pytest.fixture(scope="module")
def monitoring(validators: Validators) -> str:
    return validators.render("monitoring")


def test_generated_files_are_up_to_date() -> None:
    assert stale() == [], "run `mlops ops-gen` and commit the result"


def test_prometheus_rule_is_the_rules_file() -> None:
    (rule,) = [doc for path, text in generated_files().items() if path.name == "prometheusrule.yaml"
               for doc in load_yaml_documents(text)]
    assert rule["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]


def test_manifests_are_valid(validators: Validators, monitoring: str) -> None:
    # without the prometheus-operator CRD schemas kubeconform would skip the two custom resources, unchecked
    assert validators.crd_schema_dir, "the prometheus-operator CRD schemas could not be built (install_validators.sh)"
    proc = validators.validate(monitoring)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"(\d+) resources found.*Valid: (\d+), Invalid: 0, Errors: 0, Skipped: (\d+)", summary)
    assert found, summary
    total, valid, skipped = (int(g) for g in found.groups())
    assert total == valid == len(SERVICES) + 2 and skipped == 0, summary


def test_kubeconform_rejects_a_misspelt_servicemonitor_field(validators: Validators, monitoring: str) -> None:
    if not validators.crd_schema_dir:
        pytest.fail("the prometheus-operator CRD schemas could not be built (install_validators.sh said why)")
    proc = validators.validate(monitoring.replace("jobLabel:", "jobLabels:", 1))
    assert proc.returncode != 0 and "jobLabels" in proc.stdout, proc.stdout


def test_every_service_is_scraped_on_its_ops_port_as_its_job(monitoring: str, rendered: dict[str, str]) -> None:
    docs = load_yaml_documents(monitoring)
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    job_label = monitor["spec"]["jobLabel"]
    scraped = [d for d in docs if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()]
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in load_yaml_documents(rendered["base"]) if d["kind"] in ("Deployment", "StatefulSet")}
    jobs = {}
    for svc in scraped:
        (port,) = [p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"]]
        (deployment,) = [n for n, labels in pods.items() if svc["spec"]["selector"].items() <= labels.items()]
        job = svc["metadata"]["labels"][job_label]
        jobs[job] = port["port"]
        assert deployment == f"mlops-{job}" and port["targetPort"] == "ops", svc["metadata"]["name"]
    assert jobs == OPS_PORTS
    # the rules' ServiceDown watches exactly these jobs
    assert f'up{{job=~"{"|".join(SERVICES)}"}} == 0' in RULES_FILE.read_text()
