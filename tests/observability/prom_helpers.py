"""What the Prometheus rules and the Grafana dashboards may name: every series the services export (read from their
metrics modules, with the `_total`, `_bucket`, `_sum`, `_count` names Prometheus scrapes) and the rules' recording
names; and the metric names one PromQL expression reads (parsed by promql-parser, Prometheus's grammar)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from mlops_tools.cli.services_cmd import SERVICES
from mlops_tools.stack.prometheus import RULES_FILE
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
# Prometheus's own series for every target
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Grafana's template variables, replaced by something PromQL parses
_GRAFANA_VARS = [(re.compile(r"\$__(rate_)?interval"), "5m"), (re.compile(r"\$\{?\w+\}?"), "x")]


def exported_series() -> set[str]:
    """Every series name the six services (and the bus's lag gauge) can export."""
    importlib.import_module("mlops.bus")
    for name in SERVICES:
        importlib.import_module(f"services.{name}.metrics")
    names: set[str] = set()
    for metric in REGISTRY.collect():
        if not metric.name.startswith("mlops_"):
            continue
        if metric.type == "counter":
            names |= {f"{metric.name}_total", f"{metric.name}_created"}
        elif metric.type == "histogram":
            names |= {f"{metric.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        else:
            names.add(metric.name)
    return names


def recorded_series() -> set[str]:
    rules = yaml.safe_load(RULES_FILE.read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def known_series() -> set[str]:
    return exported_series() | recorded_series() | SCRAPE_SERIES


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (Grafana variables allowed); ValueError when it does not parse."""
    for pattern, repl in _GRAFANA_VARS:
        expr = pattern.sub(repl, expr)
    found: set[str] = set()
    _walk(promql_parser.parse(expr), found)
    return found


def _walk(node: Any, found: set[str]) -> None:
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            found.add(node.name)
        return
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            _walk(child, found)
    for arg in getattr(node, "args", None) or ():
        _walk(arg, found)
