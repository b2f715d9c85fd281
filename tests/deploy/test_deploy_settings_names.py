"""The MLOPS_* names in compose.yaml, deploy/ and the Dockerfile are fields of the pydantic settings classes.

Names are derived from the classes themselves (env_prefix + model_fields), so renaming a setting without updating
the deployment files breaks this test. The values are checked too: each service's settings load from exactly the
environment compose and Kubernetes give it.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import COMPOSE, DEPLOY, ROOT, load_yaml, load_yaml_documents
from mlops.security import ClientSecuritySettings, SecuritySettings
from mlops.settings import KafkaSettings, RedisSettings, TelemetrySettings
from mlops_tools.cli.services_cmd import SERVICES
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

SHARED_CLASSES: tuple[type[BaseSettings], ...] = (KafkaSettings, RedisSettings, TelemetrySettings)
# set per service where needed (tokens, TLS), not in the common environment
SECURITY_CLASSES: tuple[type[BaseSettings], ...] = (SecuritySettings, ClientSecuritySettings)
NAME = re.compile(r"\bMLOPS_[A-Z0-9_]+\b")
INTERPOLATION = re.compile(r"\$\{(MLOPS_[A-Z0-9_]+)")  # compose variables such as ${MLOPS_IMAGE}: not settings
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def service_settings_class(service: str) -> type[BaseSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"services/{service}/settings.py should define one settings class, found {classes}"
    return classes[0]


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """{ENV_NAME: field name} as pydantic-settings reads them (an alias replaces prefix + name)."""
    prefix = cls.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names[alias.upper()] = field_name
        elif isinstance(alias, AliasChoices):
            names.update({choice.upper(): field_name for choice in alias.choices if isinstance(choice, str)})
        else:
            names[(prefix + field_name).upper()] = field_name
    return names


@pytest.fixture(scope="module")
def settings_classes() -> dict[str, type[BaseSettings]]:
    """Every settings class a deployment file may address, by env prefix."""
    classes: dict[str, type[BaseSettings]] = {}
    for cls in (*SHARED_CLASSES, *SECURITY_CLASSES):
        classes[cls.model_config["env_prefix"]] = cls
    for service in SERVICES:
        cls = service_settings_class(service)
        prefix = cls.model_config["env_prefix"]
        assert prefix == f"MLOPS_{service.upper()}_", f"{cls.__name__}: unexpected env prefix {prefix!r}"
        classes[prefix] = cls
    return classes


@pytest.fixture(scope="module")
def known_names(settings_classes: dict[str, type[BaseSettings]]) -> set[str]:
    return {name for cls in settings_classes.values() for name in env_names(cls)}


def strings_in(node: Any) -> Iterator[str]:
    """Every key and string value of parsed YAML (comments are not data, so they are not checked)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)
    elif isinstance(node, str):
        yield node


def names_in_text(text: str) -> set[str]:
    return set(NAME.findall(text)) - set(INTERPOLATION.findall(text))


def used_names() -> dict[str, set[str]]:
    """{MLOPS_* name: files that use it} over compose.yaml, every YAML under deploy/, the Dockerfile and the
    image's health-check helper."""
    used: dict[str, set[str]] = {}

    def add(names: set[str], path: Path) -> None:
        for name in names:
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))

    add({n for s in strings_in(load_yaml(COMPOSE)) for n in names_in_text(s)}, COMPOSE)
    for path in sorted(DEPLOY.rglob("*.yaml")):
        docs = load_yaml_documents(path.read_text())
        add({n for doc in docs for s in strings_in(doc) for n in names_in_text(s)}, path)
    dockerfile = ROOT / "Dockerfile"
    code = "\n".join(ln for ln in dockerfile.read_text().splitlines() if not ln.lstrip().startswith("#"))
    add(names_in_text(code), dockerfile)
    helper = DEPLOY / "docker" / "healthcheck.py"
    add(names_in_text(helper.read_text()), helper)
    return used


def test_every_mlops_variable_is_a_settings_field(known_names: set[str]) -> None:
    used = used_names()
    unknown = {name: files for name, files in used.items() if name not in known_names}
    report = [
        f"{name} (in {', '.join(sorted(files))}): no such setting"
        + (f"; did you mean {close[0]}?" if (close := difflib.get_close_matches(name, known_names, n=1)) else "")
        for name, files in sorted(unknown.items())
    ]
    assert not unknown, "\n".join(report)


def test_the_name_collector_sees_every_file_and_prefix() -> None:
    # guards the test above against passing vacuously (e.g. after a change in how the files are parsed)
    used = used_names()
    files = {f for fs in used.values() for f in fs}
    assert {
        "compose.yaml",
        "deploy/base/settings.yaml",
        "Dockerfile",
        "deploy/overlays/production/settings-patch.yaml",
    } <= files, files
    prefixes = {n.split("_")[1] for n in used}
    assert {"KAFKA", "REDIS", "TELEMETRY"} | {s.upper() for s in SERVICES} <= prefixes, prefixes


# ---- values: each service's settings load from the environment it is given -------------------------------------


def compose_env(service: str) -> dict[str, str]:
    env = load_yaml(COMPOSE)["services"][service]["environment"]
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def kubernetes_env(service: str, overlay: str | None) -> dict[str, str]:
    """The env a service's pod gets from its ConfigMaps (base, plus an overlay's ConfigMap patches)."""
    sources = [DEPLOY / "base" / "settings.yaml"]
    if overlay:
        sources += sorted((DEPLOY / "overlays" / overlay).glob("*.yaml"))
    data: dict[str, dict[str, str]] = {}
    for path in sources:
        for doc in load_yaml_documents(path.read_text()):
            if doc.get("kind") == "ConfigMap":
                data.setdefault(doc["metadata"]["name"], {}).update(
                    {k: str(v) for k, v in (doc.get("data") or {}).items()}
                )
    return data["mlops-settings"] | data[f"mlops-{service}"]


def load_all(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, classes: list[type[BaseSettings]]) -> list:
    import os

    for name in list(os.environ):
        if name.startswith("MLOPS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return [cls() for cls in classes]


@pytest.mark.parametrize("source", ["compose", "kubernetes-base", "kubernetes-production"])
@pytest.mark.parametrize("service", SERVICES)
def test_service_settings_load_from_the_deployed_environment(
    service: str, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = (
        compose_env(service)
        if source == "compose"
        else kubernetes_env(service, None if source == "kubernetes-base" else source.split("-", 1)[1])
    )
    kafka, redis, telemetry, own = load_all(env, monkeypatch, [*SHARED_CLASSES, service_settings_class(service)])
    # what must differ from the local defaults inside a container / pod
    assert kafka.bootstrap_servers not in ("127.0.0.1:9092", "localhost:9092"), (service, source)
    assert not any(host in redis.url for host in LOOPBACK), (service, source)
    assert telemetry.exporter.startswith("otlp") and telemetry.otlp_endpoint, (service, source)
    assert telemetry.metrics_port is not None, f"{service} ({source}): MLOPS_TELEMETRY_METRICS_PORT unset"
    for field_name, field in type(own).model_fields.items():
        default = field.default
        if isinstance(default, str) and any(host in default for host in LOOPBACK):
            value = getattr(own, field_name)
            assert not any(host in str(value) for host in LOOPBACK), (
                f"{service} ({source}): {field_name} keeps its loopback default {default!r}; set it for containers"
            )


# Shared settings a deployment deliberately leaves out of its common environment, and why.
NOT_IN_COMMON_ENV = {
    "MLOPS_KAFKA_SASL_USERNAME": "from the Secret mlops-kafka-sasl, never in a ConfigMap",
    "MLOPS_KAFKA_SASL_PASSWORD": "from the Secret mlops-kafka-sasl, never in a ConfigMap",
    "MLOPS_KAFKA_SASL_MECHANISM": "only with SASL: set by the production overlay",
    "MLOPS_KAFKA_SASL_PASSWORD_FILE": "the alternative to MLOPS_KAFKA_SASL_PASSWORD: a mounted Secret's path",
    "MLOPS_KAFKA_SSL_CA_FILE": "only for a cluster CA outside the image's trust store (see the production overlay)",
    "MLOPS_KAFKA_SSL_CERT_FILE": "only for mutual TLS to the brokers (see the production overlay)",
    "MLOPS_KAFKA_SSL_KEY_FILE": "only for mutual TLS to the brokers (see the production overlay)",
    "MLOPS_TELEMETRY_FILE_PATH": "only for the file exporter; deployments export OTLP",
    "MLOPS_TELEMETRY_METRICS_PORT": "per service (mlops-<name> ConfigMaps, each compose service)",
}


@pytest.mark.parametrize("source", ["compose", "kubernetes"])
def test_common_environment_sets_every_shared_setting(source: str) -> None:
    # a new shared setting must be decided on for deployments: set it, or add it above with a reason
    if source == "compose":
        common = set(load_yaml(COMPOSE)["x-mlops-env"])
    else:
        docs = load_yaml_documents((DEPLOY / "base" / "settings.yaml").read_text())
        common = set(next(d for d in docs if d["metadata"]["name"] == "mlops-settings")["data"])
    expected = {name for cls in SHARED_CLASSES for name in env_names(cls)} - set(NOT_IN_COMMON_ENV)
    assert not expected - common, f"{source}: shared settings not set: {sorted(expected - common)}"
