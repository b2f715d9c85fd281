"""Grafana dashboards as code (grafanalib): the platform's services and its models, on the metrics the services
export and the recording rules of deploy/prometheus/rules.yml. `mlops ops-gen` writes them to deploy/grafana/; a
test regenerates them, compares, and checks that every expression reads only series that exist.

Each dashboard picks its Prometheus data source from a variable (`datasource`) and filters by `model` where a panel
is about models, so it imports into any Grafana that scrapes the platform.
"""

from __future__ import annotations

import json

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    Dashboard,
    GridPos,
    Stat,
    Target,
    Template,
    Templating,
    TimeSeries,
)

__all__ = ["DASHBOARDS", "render"]

DS = "${datasource}"
WIDTH = 12  # two panels a row (Grafana's grid is 24 wide)
HEIGHT = 8
SCHEMA_VERSION = 39  # Grafana 10/11: timeseries and stat panels as written here, no migration on import


def _datasource() -> Template:
    return Template(name="datasource", label="Prometheus", query="prometheus", type="datasource", default="Prometheus")


def _model() -> Template:
    return Template(name="model", label="model", dataSource=DS,
                    query="label_values(mlops_inference_model_in_service, model)", includeAll=True, multi=True,
                    allValue=".*", default="$__all", refresh=2)


def _series(title: str, *queries: tuple[str, str], unit: str = "short", description: str = "") -> TimeSeries:
    return TimeSeries(title=title, dataSource=DS, description=description, unit=unit,
                      targets=[Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + i))
                               for i, (expr, legend) in enumerate(queries)])


def _layout(panels: list, stat_row: list | None = None) -> list:
    """Stats in one row of six, then time series two a row."""
    y = 0
    for i, panel in enumerate(stat_row or []):
        panel.gridPos = GridPos(h=4, w=4, x=4 * i, y=0)
        y = 4
    for i, panel in enumerate(panels):
        panel.gridPos = GridPos(h=HEIGHT, w=WIDTH, x=(i % 2) * WIDTH, y=y + (i // 2) * HEIGHT)
    return [*(stat_row or []), *panels]


def services() -> Dashboard:
    jobs = ("ingest", "features", "trainer", "registry", "inference", "monitor")
    ups = [Stat(title=job, dataSource=DS, colorMode="background", graphMode="none", reduceCalc="lastNotNull",
                thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
                mappings=[{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"},
                                                         "1": {"text": "UP", "color": "green"}}}],
                targets=[Target(expr=f'max(up{{job="{job}"}})', refId="A")]) for job in jobs]
    panels = [
        _series("Inference requests /s by model, version and code",
                ('sum by (model, version, code) '
                 '(rate(mlops_inference_requests_total{model=~"$model"}[$__rate_interval]))',
                 "{{model}} v{{version}} {{code}}"), unit="reqps"),
        _series("Inference p99 latency (server)",
                ('mlops:inference_request_seconds:p99_5m{model=~"$model"}', "{{model}} v{{version}}"), unit="s",
                description="Alert InferenceLatencyP99High above 50 ms for 5 minutes."),
        _series("Inference server-side error ratio",
                ('mlops:inference_errors:ratio_rate5m{model=~"$model"}', "{{model}}"), unit="percentunit",
                description="INTERNAL, UNAVAILABLE, ... over all requests; alert InferenceErrorRateHigh above 1%."),
        _series("Consumer lag (records) by group and topic",
                ("mlops:consumer_lag_records:sum", "{{group}} {{topic}}"),
                description="mlops_consumer_lag_records summed over partitions; alert ConsumerLagGrowing."),
        _series("Ingest records /s",
                ("sum(rate(mlops_ingest_records_in_total[$__rate_interval]))", "in"),
                ("sum(rate(mlops_ingest_records_out_total[$__rate_interval]))", "out"),
                ("sum by (error_type) (rate(mlops_ingest_records_dlq_total[$__rate_interval]))", "dlq {{error_type}}"),
                unit="rps"),
        _series("Feature freshness p99 (event ingest → Redis)",
                ("mlops:features_freshness_seconds:p99_5m", "p99"), unit="s"),
        _series("Prediction records /s",
                ("sum(rate(mlops_inference_prediction_logs_total[$__rate_interval]))", "logged"),
                ("sum(rate(mlops_inference_prediction_logs_dropped_total[$__rate_interval]))", "dropped"),
                unit="rps", description="Dropped records never reach the monitor; alert PredictionRecordsDropped."),
        _series("Inference rows per onnxruntime call (p50 / p99)",
                ("histogram_quantile(0.5, sum by (le) (rate(mlops_inference_batch_rows_bucket[$__rate_interval])))",
                 "p50"),
                ("histogram_quantile(0.99, sum by (le) (rate(mlops_inference_batch_rows_bucket[$__rate_interval])))",
                 "p99")),
    ]
    return Dashboard(title="MLOps platform: services", uid="mlops-services", tags=["mlops"], refresh="10s",
                     schemaVersion=SCHEMA_VERSION,
                     timezone="utc", templating=Templating(list=[_datasource(), _model()]),
                     panels=_layout(panels, ups)).auto_panel_ids()


def models() -> Dashboard:
    m = '{model=~"$model"}'
    panels = [
        _series("Version in service", (f"max by (model, version) (mlops_inference_model_in_service{m}) > 0",
                                       "{{model}} v{{version}}")),
        _series("Realised metric vs the gate's floor",
                (f"mlops_monitor_realised_metric{m}", "{{model}} v{{version}} {{metric}}"),
                (f"mlops_monitor_gate_floor{m}", "{{model}} floor ({{metric}})"),
                description="Accuracy (classification) or MAE (regression) over the latest joined labels; alert "
                            "RealisedMetricBelowFloor when it is worse than the floor for 5 minutes."),
        _series("Drift statistic (PSI) per feature",
                ('mlops_monitor_drift_statistic{model=~"$model",statistic="psi"}', "{{model}} {{feature}}")),
        _series("Drift detections /min by kind and outcome",
                (f"sum by (model, kind, outcome) (rate(mlops_monitor_detections_total{m}[$__rate_interval])) * 60",
                 "{{model}} {{kind}} {{outcome}}"), description="Alert DriftDetected."),
        _series("Retrain requests and trainings (last 15 min)",
                (f"sum by (model) (increase(mlops_monitor_retrain_requests_total{m}[15m]))", "{{model}} requested"),
                (f"sum by (model, outcome) (increase(mlops_trainer_trainings_total{m}[15m]))",
                 "{{model}} {{outcome}}"), description="Alerts RetrainRequested, RetrainFailing."),
        _series("Training duration p90",
                ("histogram_quantile(0.9, sum by (le) (rate(mlops_trainer_training_seconds_bucket[15m])))", "p90"),
                unit="s"),
        _series("Champion changes (last 15 min)",
                (f"sum by (model, action) (increase(mlops_registry_promotions_total{m}[15m]))",
                 "{{model}} {{action}}"),
                ("sum by (outcome) (increase(mlops_registry_candidates_total[15m]))", "candidates {{outcome}}"),
                description="Alert ModelPromoted."),
        _series("Label join", ("mlops_monitor_join_ratio", "joined / labels"),
                ("mlops_monitor_event_lag_seconds", "event lag (s)")),
    ]
    return Dashboard(title="MLOps platform: models", uid="mlops-models", tags=["mlops"], refresh="10s",
                     schemaVersion=SCHEMA_VERSION,
                     timezone="utc", templating=Templating(list=[_datasource(), _model()]),
                     panels=_layout(panels)).auto_panel_ids()


DASHBOARDS = {"mlops-services.json": services, "mlops-models.json": models}


def render() -> dict[str, str]:
    """File name → the dashboard's JSON (stable: sorted keys, two-space indent, final newline)."""
    return {name: json.dumps(build().to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"
            for name, build in DASHBOARDS.items()}
