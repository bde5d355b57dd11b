"""The Grafana dashboards of the platform, as code: one for serving, one for the pipelines.

    python -m mlops_assets.deploy.observability.dashboards           # rewrite dashboards/*.json
    python -m mlops_assets.deploy.observability.dashboards --check   # exit 1 when they are out of date

The JSON files are checked in, because Grafana provisions them from files (docker-compose.yml mounts
`dashboards/`); a test fails when they differ from what this module generates. Plain dictionaries in
Grafana's dashboard model (schema 39), so that nothing but the standard library is needed.

Every query filters on a dashboard variable (`$job` or `$project`, "All" by default) and rates use
`$__rate_interval`, which Grafana derives from the data source's scrape interval.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # provisioned under this uid
GRID_COLUMNS = 24
PANEL_HEIGHT = 8
REFRESH_HOURS_ALLOWED = 26  # the MlopsProjectNotRefreshed alert's limit


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # timeseries | stat | table | bargauge | state-timeline
    unit: str = "short"
    width: int = 12
    thresholds: tuple[tuple[float, str], ...] = ()  # (from value, color), above a green base
    value_text: dict[str, str] = field(default_factory=dict)  # value -> text shown for it
    stacked: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _rate(metric: str, selector: str) -> str:
    return f"rate({metric}{{{selector}}}[$__rate_interval])"


# --- serving ----------------------------------------------------------------------------------

_JOB = 'job=~"$job"'
_SERVER_ERROR = '"5.."'


def _latency(quantile: float) -> Query:
    # The join names the model each serving job serves: one server serves one registered model.
    return Query(
        f"histogram_quantile({quantile}, sum by (job, route, le) ({_rate('serving_request_duration_seconds_bucket', _JOB)}))"
        f" * on (job) group_left (model) max by (job, model) (serving_model_version{{{_JOB}}} * 0 + 1)",
        f"p{round(quantile * 100)} {{{{route}}}} ({{{{model}}}})",
    )


SERVING = (
    Row(
        "Traffic",
        (
            Panel(
                "Request rate by route",
                "Requests answered per second, all workers added up.",
                (Query(f"sum by (route) ({_rate('serving_requests_total', _JOB)})", "{{route}}"),),
                unit="reqps",
            ),
            Panel(
                "Error ratio (5xx) by route",
                "Share of answers that are server errors. The MlopsServingErrorRatioHigh alert fires above 5% for 5 minutes.",
                (
                    Query(
                        # Routes without any 5xx show 0 rather than no line at all.
                        f"(sum by (route) ({_rate('serving_requests_total', _JOB + ', status=~' + _SERVER_ERROR)})"
                        f" or sum by (route) ({_rate('serving_requests_total', _JOB)}) * 0)"
                        f" / sum by (route) ({_rate('serving_requests_total', _JOB)})",
                        "{{route}}",
                    ),
                ),
                unit="percentunit",
                thresholds=((0.05, "red"),),
            ),
            Panel(
                "Answers by status",
                "Answers per second by HTTP status: 422 and 400 are invalid requests, 503 means no model yet.",
                (Query(f"sum by (status) ({_rate('serving_requests_total', _JOB)})", "{{status}}"),),
                unit="reqps",
                stacked=True,
            ),
            Panel(
                "Traffic share by model version",
                "Share of predicted rows by the version (and alias) that predicted them: a challenger's share shows here.",
                (
                    Query(
                        f"sum by (model, alias, version) ({_rate('serving_predicted_rows_total', _JOB)})"
                        f" / ignoring (model, alias, version) group_left () sum ({_rate('serving_predicted_rows_total', _JOB)})",
                        "{{model}}@{{alias}} v{{version}}",
                    ),
                ),
                unit="percentunit",
                stacked=True,
            ),
        ),
    ),
    Row(
        "Latency",
        (
            Panel(
                "Latency percentiles by route and model",
                "Time to answer, p50, p90 and p99. The MlopsServingLatencyP99High alert fires when the p99 of "
                "/predict or /invocations stays above 100 ms for 10 minutes.",
                (_latency(0.5), _latency(0.9), _latency(0.99)),
                unit="s",
                width=16,
            ),
            Panel(
                "Rows per model call",
                "Mean rows per model call after micro-batching: higher under concurrent load.",
                (
                    Query(
                        f"sum({_rate('serving_predict_batch_rows_sum', _JOB)})"
                        f" / sum({_rate('serving_predict_batch_rows_count', _JOB)})",
                        "rows per call",
                    ),
                ),
                width=8,
            ),
        ),
    ),
    Row(
        "Model",
        (
            Panel(
                "Model version per worker",
                "The registry version each worker serves (0: none yet; MlopsServingNoModel fires after 5 minutes).",
                (Query(f"serving_model_version{{{_JOB}}}", "{{worker}} {{model}}@{{alias}}"),),
                kind="stat",
                width=8,
            ),
            Panel(
                "Time since the model was loaded",
                "Per worker: how long ago its version was loaded and swapped in.",
                (Query(f"time() - serving_model_loaded_timestamp_seconds{{{_JOB}}}", "{{worker}}"),),
                kind="stat",
                unit="s",
                width=8,
            ),
            Panel(
                "Reloads, refusals and registry errors",
                "Versions swapped in, versions refused (by the stage that refused them: MlopsServingModelRefused) "
                "and failed lookups of the alias in the registry.",
                (
                    Query(f"sum by (job) (increase(serving_model_reloads_total{{{_JOB}}}[$__rate_interval]))", "reloads"),
                    Query(
                        f"sum by (stage) (increase(serving_model_reload_failures_total{{{_JOB}}}[$__rate_interval]))",
                        "refused at {{stage}}",
                    ),
                    Query(
                        f"sum by (job) (increase(serving_registry_errors_total{{{_JOB}}}[$__rate_interval]))", "registry errors"
                    ),
                ),
                width=8,
            ),
        ),
    ),
    Row(
        "Predictions and their log",
        (
            Panel(
                "Predicted rows by route",
                "Rows predicted per second (a batch request counts all its rows).",
                (Query(f"sum by (route) ({_rate('serving_predicted_rows_total', _JOB)})", "{{route}}"),),
            ),
            Panel(
                "Prediction log",
                "Rows written to the prediction log per second, rows dropped (buffer full or write failed) and "
                "files pruned to stay within the disk budget.",
                (
                    Query(f"sum({_rate('serving_prediction_log_rows_written_total', _JOB)})", "written"),
                    Query(f"sum by (reason) ({_rate('serving_prediction_log_rows_dropped_total', _JOB)})", "dropped: {{reason}}"),
                    Query(f"sum({_rate('serving_prediction_log_files_pruned_total', _JOB)})", "files pruned"),
                ),
            ),
        ),
    ),
)

# --- pipelines --------------------------------------------------------------------------------

_PROJECT = 'project=~"$project"'

PIPELINES = (
    Row(
        "Freshness and models",
        (
            Panel(
                "Time since the last successful refresh",
                f"Per project. MlopsProjectNotRefreshed fires past {REFRESH_HOURS_ALLOWED} hours.",
                (Query(f"time() - mlops_last_refresh_timestamp_seconds{{{_PROJECT}}}", "{{project}}"),),
                kind="bargauge",
                unit="s",
                width=8,
                thresholds=((REFRESH_HOURS_ALLOWED * 3600 * 0.75, "orange"), (REFRESH_HOURS_ALLOWED * 3600, "red")),
            ),
            Panel(
                "Production version",
                "The registry version behind each project's production alias.",
                (Query(f"mlops_production_model_version{{{_PROJECT}}}", "{{project}}"),),
                kind="stat",
                width=6,
            ),
            Panel(
                "Holdout and live metric per version",
                "The production version's primary metric over the holdout, and each version's metric on live "
                "traffic (MlopsLiveMetricWorseThanHoldout: more than 10% worse than the holdout).",
                (
                    Query(f"mlops_production_holdout_metric{{{_PROJECT}}}", "{{project}} v{{version}} holdout {{metric}}"),
                    Query(f"mlops_live_metric{{{_PROJECT}}}", "{{project}} v{{version}} live {{metric}}"),
                ),
                width=10,
            ),
        ),
    ),
    Row(
        "Checks",
        (
            Panel(
                "Check results",
                "The last result of every check of every asset (MlopsBlockingCheckFailed for a failing blocking one).",
                (Query(f"mlops_check_passed{{{_PROJECT}}}", "{{project}} {{asset}} {{check}}"),),
                kind="state-timeline",
                width=16,
                thresholds=((1, "green"),),
                value_text={"0": "failed", "1": "passed"},
            ),
            Panel(
                "Failing checks per project",
                "How many checks failed at their last evaluation.",
                (Query(f"sum by (project) (1 - mlops_check_passed{{{_PROJECT}}})", "{{project}}"),),
                kind="stat",
                width=8,
                thresholds=((1, "red"),),
            ),
        ),
    ),
    Row(
        "Drift",
        (
            Panel(
                "Drift per feature: PSI",
                "Population stability index of each feature against the training data, by source, and the threshold "
                "the pipeline judged it by (MlopsFeatureDriftPsi).",
                (
                    Query(f"mlops_drift_psi{{{_PROJECT}}}", "{{project}} {{source}} {{feature}}"),
                    Query(f"mlops_drift_psi_threshold{{{_PROJECT}}}", "threshold {{project}} {{source}}"),
                ),
            ),
            Panel(
                "Drift per feature: KS",
                "Kolmogorov-Smirnov statistic of each numeric feature against the training data, by source, and the "
                "threshold (MlopsFeatureDriftKs).",
                (
                    Query(f"mlops_drift_ks{{{_PROJECT}}}", "{{project}} {{source}} {{feature}}"),
                    Query(f"mlops_drift_ks_threshold{{{_PROJECT}}}", "threshold {{project}} {{source}}"),
                ),
            ),
            Panel(
                "Retraining triggered by drift",
                "Whether the last drift evaluation triggered a retraining, and how long ago drift last did.",
                (
                    Query(f"mlops_retraining_triggered{{{_PROJECT}}}", "{{project}} triggered"),
                    Query(f"time() - mlops_retraining_last_triggered_timestamp_seconds{{{_PROJECT}}}", "{{project}} since last"),
                ),
                kind="table",
                width=12,
            ),
            Panel(
                "Firing alerts",
                "Every platform alert firing now.",
                (Query('ALERTS{alertstate="firing", alertname=~"Mlops.*"}', "{{alertname}} {{project}}"),),
                kind="table",
                width=12,
            ),
        ),
    ),
)


# --- Grafana's model ----------------------------------------------------------------------------


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "refresh": 2,  # on time range change: a new project appears without reloading the dashboard
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps = [{"color": "green", "value": None}] + [{"color": color, "value": value} for value, color in panel.thresholds]
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if panel.value_text:
        shown = {value: {"text": text, "index": index} for index, (value, text) in enumerate(panel.value_text.items())}
        defaults["mappings"] = [{"type": "value", "options": shown}]
    options: dict[str, Any] = {}
    if panel.kind == "timeseries":
        defaults["custom"] = {"stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"}, "fillOpacity": 10}
        options = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi", "sort": "desc"}}
    elif panel.kind in ("stat", "bargauge"):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    elif panel.kind == "state-timeline":
        defaults["color"] = {"mode": "thresholds"}
        steps[0]["color"] = "red"  # 0 (failed) is red, from 1 (passed) green
    targets = [
        {"datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend, "refId": chr(ord("A") + index)}
        for index, query in enumerate(panel.queries)
    ]
    if panel.kind == "table":
        for target in targets:
            target |= {"instant": True, "format": "table"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
    }


def dashboard(uid: str, title: str, description: str, rows: Sequence[Row], variables: list[dict[str, Any]]) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        # An expanded row holds no panels of its own: the ones after it, up to the next row, are its.
        header = {"id": len(panels) + 1, "type": "row", "title": row.title, "collapsed": False, "panels": []}
        panels.append(header | {"gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": y}})
        y += 1
        x = 0
        for panel in row.panels:
            if x + panel.width > GRID_COLUMNS:
                x, y = 0, y + PANEL_HEIGHT
            panels.append(_panel_json(panel, len(panels) + 1, x, y))
            x += panel.width
        y += PANEL_HEIGHT
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["mlops"],
        "timezone": "browser",
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": variables},
        "panels": panels,
    }


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard."""
    return {
        "serving.json": dashboard(
            "mlops-serving",
            "MLOps serving",
            "The model-serving app: traffic, errors, latency, the model each worker serves, reloads and the prediction log.",
            SERVING,
            [_variable("job", "Serving job", "label_values(serving_requests_total, job)")],
        ),
        "pipelines.json": dashboard(
            "mlops-pipelines",
            "MLOps pipelines",
            "What the pipelines pushed: freshness per project, the production model and its metrics, check results, "
            "drift and retraining.",
            PIPELINES,
            [_variable("project", "Project", "label_values(mlops_last_refresh_timestamp_seconds, project)")],
        ),
    }


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2) + "\n"


def panel_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL expression) of every query of every panel."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    arguments = parser.parse_args(argv)
    stale = []
    for name, board in dashboards().items():
        path = DASHBOARD_DIR / name
        text = render(board)
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(name)
        if not arguments.check:
            DASHBOARD_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    if arguments.check and stale:
        print(f"out of date: {', '.join(stale)}; run python -m mlops_assets.deploy.observability.dashboards", file=sys.stderr)
        return 1
    print(f"{'rewrote' if stale else 'up to date:'} {', '.join(stale) or ', '.join(dashboards())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
