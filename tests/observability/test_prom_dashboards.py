"""deploy/grafana/*.json: what mlops_tools.dashboards generates (regenerated and compared), a Grafana dashboard's
structure (panels on the 24-column grid without overlap, unique ids and refIds, a Prometheus query in every
target), and PromQL that parses and reads only series the services export or the rules record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlops_tools.dashboards import render
from prom_helpers import ROOT, known_series, metric_names

GRAFANA = ROOT / "deploy" / "grafana"
RENDERED = render()


def _dashboard(name: str) -> dict[str, Any]:
    return json.loads((GRAFANA / name).read_text())


def test_committed_dashboards_are_the_generated_ones() -> None:
    assert sorted(p.name for p in GRAFANA.glob("*.json")) == sorted(RENDERED)
    for name, text in RENDERED.items():
        assert (GRAFANA / name).read_text() == text, f"{name} is stale: run `mlops ops-gen`"


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_dashboard_structure(name: str) -> None:
    d = _dashboard(name)
    assert d["title"] and d["uid"] and isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids, cells = set(), set()
    for panel in d["panels"]:
        assert panel["id"] not in ids, f"duplicate panel id {panel['id']}"
        ids.add(panel["id"])
        assert panel["type"] in {"timeseries", "stat"} and panel["title"], panel
        assert panel["datasource"] == "${datasource}", panel["title"]
        g = panel["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert isinstance(steps, list), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_every_query_reads_existing_series(name: str) -> None:
    known = known_series()
    queries = [(p["title"], t["expr"]) for p in _dashboard(name)["panels"] for t in p["targets"]]
    for v in _dashboard(name)["templating"]["list"]:
        if v["type"] == "query":
            queries.append((v["name"], v["query"].removeprefix("label_values(").rsplit(",", 1)[0]))
    assert queries
    for title, expr in queries:
        names = metric_names(expr)
        assert names and names <= known, f"{name} / {title}: unknown series {names - known}"


def test_the_series_check_bites() -> None:
    assert metric_names('rate(mlops_inference_requests{model=~"$model"}[$__rate_interval])') - known_series() == {
        "mlops_inference_requests"}
