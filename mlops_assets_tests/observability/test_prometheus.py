"""The monitoring as deployed, against the real thing.

Debian's Prometheus runs the project's own prometheus.yml, its targets moved to this test's ports and
its scrape and evaluation intervals shortened to a second, with the project's alert_rules.yml. It
scrapes `python -m serving` with two workers, under a little load, and a real Pushgateway holding
pipeline metrics: a real materialization of the iris project (its flow and its drift) pushed what it
knows, and what no run here can produce in time (a project last refreshed 27 hours ago, a failing
blocking check, a live metric) is pushed through mlops_assets.platform.pipeline_metrics. Then every
query of every committed dashboard must return at least one series from Prometheus's HTTP API, and
the alerts the situation calls for must fire: a version refused on reload, a stale project, a failing
blocking check. promtool checks the committed files and the app's exposition.
"""

import contextlib
import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from dagster import build_sensor_context

from mlops_assets.deploy.observability import dashboards
from mlops_assets.platform.automation.retraining import build_drift_retraining_sensor
from mlops_assets.platform import pipeline_metrics
from mlops_assets.projects.housing.model import Hyperparameters
from mlops_assets_tests.conftest import PROJECTS, REPOSITORY_ROOT, Platform, check_results, instance_under, settings_under
from mlops_assets_tests.processes import free_port, start, stop
from mlops_assets_tests.serving.conftest import (  # noqa: F401
    ALIAS,
    SEED_RECORD,
    _corrupt_copy,
    reference_frame,
    start_serving_process,
    wait_for,
)
from mlops_assets_tests.serving.load import ConcurrentClients
from mlops_assets_tests.serving.prometheus import Exposition, parse_prometheus
from mlops_assets_tests.serving.test_prediction_equality import records_of
from serving.reference_model import ReferenceRegistry, train_and_register

from .conftest import PrometheusTools, running_pushgateway

OBSERVABILITY = REPOSITORY_ROOT / "mlops_assets" / "deploy" / "observability"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus.yml"
ALERT_RULES = OBSERVABILITY / "alert_rules.yml"
ALERT_RULE_TESTS = OBSERVABILITY / "alert_rules_test.yml"
# Grafana's $__rate_interval is four scrape intervals at least; here a scrape is a second.
RATE_INTERVAL = "20s"
STALE_PROJECT_HOURS = 27
MODEL_NAME = "housing_monitored"


# --- the committed files --------------------------------------------------------------------


def test_promtool_accepts_the_committed_config_and_rules(prometheus_tools: PrometheusTools) -> None:
    for command in (["check", "config", PROMETHEUS_CONFIG], ["check", "rules", ALERT_RULES]):
        checked = subprocess.run([prometheus_tools.promtool, *map(str, command)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_rule_has_a_unit_test_and_they_pass(prometheus_tools: PrometheusTools) -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]}
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")  # a test that only expects silence proves nothing alone
    }

    unit_tests = subprocess.run(
        [prometheus_tools.promtool, "test", "rules", ALERT_RULE_TESTS.name], cwd=OBSERVABILITY, capture_output=True, text=True
    )

    assert unit_tests.returncode == 0, unit_tests.stdout + unit_tests.stderr
    assert alerts == tested, f"alerts never shown firing by a unit test: {sorted(alerts - tested)}"


def test_the_committed_dashboards_are_the_generated_ones() -> None:
    generated = dashboards.dashboards()

    assert sorted(path.name for path in dashboards.DASHBOARD_DIR.glob("*.json")) == sorted(generated)
    for name, board in generated.items():
        committed = (dashboards.DASHBOARD_DIR / name).read_text()
        assert committed == dashboards.render(board), (
            f"dashboards/{name} differs from the generator: run python -m mlops_assets.deploy.observability.dashboards"
        )


# --- the running stack ------------------------------------------------------------------------


@dataclass(frozen=True)
class Monitored:
    prometheus: str
    serving: str
    iris_checks: dict[str, bool]  # what the iris run's checks found
    iris_production: str

    def query(self, expr: str) -> list[dict]:
        answer = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", f"{expr}: {answer}"
        return answer["data"]["result"]

    def label_values(self, label: str, metric: str) -> list[str]:
        answer = httpx.get(f"{self.prometheus}/api/v1/label/{label}/values", params={"match[]": metric}, timeout=10).json()
        return answer["data"]

    def firing_alerts(self) -> list[dict]:
        alerts = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [alert for alert in alerts if alert["state"] == "firing"]


@contextmanager
def running_server(tracking_uri: str, folder: Path) -> Iterator[str]:
    """`python -m serving` with two workers, as deployed; it waits for the alias by itself."""
    server, base, _ = start_serving_process(folder, tracking_uri, workers=2, environment={"MLOPS_MODEL_NAME": MODEL_NAME})
    try:
        yield base
    finally:
        stop(server, grace=30)


def _metrics(base: str) -> Exposition | None:
    try:
        return parse_prometheus(httpx.get(f"{base}/metrics", timeout=5).text)
    except httpx.HTTPError:
        return None


def _served_versions(base: str) -> list[float]:
    """The version each worker serves, from /metrics (any worker answers for all)."""
    metrics = _metrics(base)
    return metrics.matching("serving_model_version") if metrics else []


@contextmanager
def running_prometheus(tools: PrometheusTools, folder: Path, addresses: dict[str, str], port: int) -> Iterator[str]:
    """Prometheus with the project's configuration, its targets moved to `addresses`."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERT_RULES)]
    for job in config["scrape_configs"]:
        for targets in job["static_configs"]:
            targets["targets"] = [addresses[target] for target in targets["targets"]]  # KeyError: a target this test lacks
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = start(
        [
            tools.prometheus,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log=folder / "prometheus.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/-/ready"), timeout=60, what=f"Prometheus ({folder / 'prometheus.log'})")
        yield base
    finally:
        stop(prometheus)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def monitored(prometheus_tools, reference_frame, tmp_path_factory) -> Iterator[Monitored]:  # noqa: F811
    """What happened: predictions served, a version refused on reload, and pipelines that pushed what
    they know, one project last refreshed 27 hours ago. Prometheus watched it all."""
    folder = tmp_path_factory.mktemp("monitoring")
    registry = ReferenceRegistry.create(folder / "mlflow")
    prometheus_port = free_port()
    with ExitStack() as running, pytest.MonkeyPatch.context() as environment:
        gateway = running.enter_context(running_pushgateway(prometheus_tools, folder))
        serving = running.enter_context(running_server(registry.tracking_uri, folder))
        addresses = {
            "serving:8000": serving.removeprefix("http://"),
            "pushgateway:9091": gateway.url.removeprefix("http://"),
            "localhost:9090": f"127.0.0.1:{prometheus_port}",
        }
        prometheus = running.enter_context(running_prometheus(prometheus_tools, folder, addresses, prometheus_port))

        # The workers start while the model trains, and load it once the alias names it.
        good = train_and_register(
            registry, reference_frame, model_name=MODEL_NAME, params=Hyperparameters(max_iter=30), alias=ALIAS
        )
        wait_for(lambda: _served_versions(serving) == [float(good)] * 2, timeout=120, what=f"both workers to serve ({folder})")
        environment.setenv("MLOPS_PUSHGATEWAY_URL", gateway.url)
        iris_checks, iris_production = _run_the_iris_pipeline(folder / "pipelines", running)
        stack = Monitored(prometheus, serving, iris_checks, iris_production)
        # Counters must be scraped at 0 before they rise, or increase() sees no rise.
        wait_for(lambda: len(stack.query("up == 1")) == 3, timeout=30, what="Prometheus to scrape every target")
        wait_for(lambda: stack.query("serving_model_reload_failures_total"), timeout=30, what="a scrape of the serving app")

        _serve_a_little_load(serving, reference_frame)
        corrupt = _corrupt_copy(registry, MODEL_NAME, good, folder / "broken")
        broken = registry.register_source(MODEL_NAME, corrupt, run_id=None, tags={})
        registry.move_alias(MODEL_NAME, ALIAS, broken)
        wait_for(
            lambda: (metrics := _metrics(serving)) and metrics.value("serving_model_reload_failures_total", stage="load") == 2,
            timeout=60,
            what="both workers to refuse the broken version",
        )

        _push_what_no_run_here_can(iris_production)
        wait_for(
            lambda: len(stack.query("mlops_last_refresh_timestamp_seconds")) == 2, timeout=30, what="a scrape of the pushes"
        )
        yield stack


def _serve_a_little_load(base: str, frame: pd.DataFrame) -> None:
    records = records_of(frame.dropna().sample(200, random_state=1))
    with ConcurrentClients(base, records, connections=4) as clients:
        wait_for(lambda: len(clients.answers) >= 200, timeout=60, what="200 predictions")
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.post("/predict", json=[SEED_RECORD] * 5).status_code == 200
        assert client.post("/invocations", json={"dataframe_records": [SEED_RECORD]}).status_code == 200
        assert client.post("/predict", json={**SEED_RECORD, "latitude": 0.0}).status_code == 422
        assert client.get("/predictions/not-a-request-id").status_code == 404


IRIS_PIPELINE = [
    *(f"iris/{asset}" for asset in ("raw", "cleaned", "features", "trained_model", "model_evaluation", "deployed_model")),
    "iris/deployment_ledger",
    "iris/feature_drift",
]


def _run_the_iris_pipeline(folder: Path, running: ExitStack) -> tuple[dict[str, bool], str]:
    """Iris's flow and drift, materialized with the Pushgateway configured, and the drift retraining
    sensor's look at the drift; returns what its checks found and the version it deployed."""
    instance = instance_under(folder / "dagster_home")
    running.callback(instance.dispose)
    # Iris has 150 flowers: below the default minimum, drift would judge no feature.
    settings = dataclasses.replace(settings_under(folder), drift_min_samples=50)
    platform = Platform(settings, instance)
    result = platform.materialize(project="iris", selection=IRIS_PIPELINE, monitoring=True)
    assert result.success
    sensor = build_drift_retraining_sensor("iris")
    sensor(build_sensor_context(instance=instance, resources={"drift_policy": platform.resources()["drift_policy"]}))
    return check_results(result), platform.production_version("iris")


def _push_what_no_run_here_can(iris_production: str) -> None:
    pushes = [
        pipeline_metrics.record_refresh_succeeded("churn", at=time.time() - STALE_PROJECT_HOURS * 3600),
        pipeline_metrics.record_check_result("churn", asset="churn/raw", check="check_contract_raw", passed=False, blocking=True),
        pipeline_metrics.record_live_metric("iris", version=iris_production, metric="accuracy", value=0.9),
        # Drift on iris's own training flowers triggers nothing; another project's did, an hour ago.
        pipeline_metrics.record_retraining_decision("churn", triggered=True, at=time.time() - 3600),
    ]
    assert all(pushes)


def test_the_serving_exposition_passes_promtool(monitored: Monitored, prometheus_tools: PrometheusTools) -> None:
    exposition = httpx.get(f"{monitored.serving}/metrics", timeout=5)

    checked = subprocess.run([prometheus_tools.promtool, "check", "metrics"], input=exposition.content, capture_output=True)

    assert exposition.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert checked.returncode == 0 and not checked.stdout and not checked.stderr, checked.stdout + checked.stderr


def test_every_dashboard_query_returns_a_series(monitored: Monitored) -> None:
    queries, variables = [], []
    for path in sorted(dashboards.DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        for variable in board["templating"]["list"]:
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["definition"]).groups()
            variables.append((f"{path.name}: ${variable['name']}", metric, label))
        for title, expr in dashboards.panel_queries(board):
            concrete = re.sub(r'"\$(job|project)"', '".*"', expr).replace("$__rate_interval", RATE_INTERVAL)
            queries.append((f"{path.name}: {title}", concrete))
    assert len(queries) >= 20

    def without_data() -> list[str]:
        return [f"{panel}: {expr}" for panel, expr in queries if not monitored.query(expr)] + [
            f"{variable} has no value" for variable, metric, label in variables if not monitored.label_values(label, metric)
        ]

    with contextlib.suppress(AssertionError):  # a rate needs two scrapes within its window
        wait_for(lambda: not without_data(), timeout=30, what="every panel's queries and every variable to have data")
    assert without_data() == []


def test_a_refused_version_a_stale_project_and_a_failing_blocking_check_fire_their_alerts(monitored: Monitored) -> None:
    must_fire = [
        {"alertname": "MlopsServingModelRefused", "job": "serving", "stage": "load"},
        {"alertname": "MlopsProjectNotRefreshed", "project": "churn"},
        {"alertname": "MlopsBlockingCheckFailed", "project": "churn", "asset": "churn/raw", "check": "check_contract_raw"},
    ]
    must_not_fire = [
        {"alertname": "MlopsProjectNotRefreshed", "project": "iris"},  # refreshed just now
        {"alertname": "MlopsBlockingCheckFailed", "project": "iris"},
        {"alertname": "MlopsServingModelRefused", "stage": "smoke_test"},
        {"alertname": "MlopsServingNoModel"},
        {"alertname": "MlopsFeatureDriftPsi"},
        {"alertname": "MlopsFeatureDriftKs"},
        {"alertname": "MlopsLiveMetricWorseThanHoldout"},  # 0.9 live is within 10% of iris's holdout accuracy
    ]

    def firing(labels: dict[str, str]) -> bool:
        return any(labels.items() <= alert["labels"].items() for alert in monitored.firing_alerts())

    with contextlib.suppress(AssertionError):
        wait_for(lambda: all(map(firing, must_fire)), timeout=30, what="the alerts to fire")
    assert [labels for labels in must_fire if not firing(labels)] == []
    assert [labels for labels in must_not_fire if firing(labels)] == []


def test_a_real_materialization_pushed_its_checks_model_refresh_and_drift(monitored: Monitored) -> None:
    def series(expr: str) -> dict[str, float]:
        return {
            ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k in ("asset", "check", "source", "feature")): float(r["value"][1])
            for r in monitored.query(expr)
        }

    assert monitored.iris_checks and all(monitored.iris_checks.values())
    checks = series('mlops_check_passed{project="iris"}')
    assert sorted(key.split("check=")[1] for key in checks) == sorted(monitored.iris_checks)
    assert set(checks.values()) == {1.0}

    assert series('mlops_production_model_version{project="iris"}') == {"": float(monitored.iris_production)}
    holdout = monitored.query('mlops_production_holdout_metric{project="iris"}')
    assert [(r["metric"]["metric"], r["metric"]["version"], r["metric"]["better"]) for r in holdout] == [
        ("accuracy", monitored.iris_production, "higher")
    ]
    assert 0.8 < float(holdout[0]["value"][1]) <= 1.0

    refreshed = float(monitored.query('mlops_last_refresh_timestamp_seconds{project="iris"}')[0]["value"][1])
    assert time.time() - refreshed < 600

    psi = series('mlops_drift_psi{project="iris"}')
    assert sorted(psi) == [f"feature={feature},source=data" for feature in sorted(PROJECTS["iris"].domain.raw_features)]
    assert all(value < 0.2 for value in psi.values())  # the same flowers it was trained on
    assert series('mlops_retraining_triggered{project="iris"}') == {"": 0.0}
