"""What the pipelines know, pushed to a Prometheus Pushgateway for dashboards and alerts.

    MLOPS_PUSHGATEWAY_URL   the Pushgateway, e.g. http://pushgateway:9091; unset or empty: nothing is pushed

Batch jobs live too briefly to be scraped, so each `record_*` function pushes its metrics at once, under
the job `mlops_pipeline` and a grouping key that starts with the project. It returns whether it pushed.
A push that fails (gateway down, slow or refusing) logs a warning and returns False: monitoring never
fails a pipeline. No Dagster here; the assets and sensors call these functions with what they computed.

Pushes add to a group (HTTP POST): a push replaces the metrics of its own names in its group and keeps
the others, so the refresh timestamp and the production model's metrics share the project's group.
Where one push describes only a part of a family (one check, one drift source, one model version) that
part is in the grouping key, so that the next push of another part does not erase it. The Pushgateway
attaches the grouping key as labels, and stamps every group with `push_time_seconds`.

| metric | labels | pushed by |
|---|---|---|
| mlops_last_refresh_timestamp_seconds | project | record_refresh_succeeded |
| mlops_production_model_version | project | record_production_model |
| mlops_production_holdout_metric | project, metric, version, better | record_production_model |
| mlops_check_passed (1/0) | project, asset, check, blocking | record_check_result |
| mlops_drift_psi, mlops_drift_ks | project, source, feature | record_drift |
| mlops_drift_psi_threshold, mlops_drift_ks_threshold | project, source | record_drift |
| mlops_retraining_triggered (1/0) | project | record_retraining_decision |
| mlops_retraining_last_triggered_timestamp_seconds | project | record_retraining_decision |
| mlops_live_metric | project, version, metric | record_live_metric |
"""

import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import pushadd_to_gateway
from prometheus_client.registry import Collector

from mlops_assets.settings import redacted

logger = logging.getLogger(__name__)

GATEWAY_VARIABLE = "MLOPS_PUSHGATEWAY_URL"
JOB = "mlops_pipeline"
# An asset waits at most this long for a Pushgateway that does not answer.
PUSH_TIMEOUT_SECONDS = 5.0


class FeatureDriftValues(Protocol):
    """One feature's drift statistics (the platform's FeatureDrift is one); None: not computed."""

    feature: str
    psi: float | None
    ks: float | None


def record_refresh_succeeded(project: str, *, at: float | None = None) -> bool:
    """The project's pipeline refreshed successfully `at` (Unix seconds, default now): its age is
    `time() - mlops_last_refresh_timestamp_seconds`."""
    refreshed = _gauge("mlops_last_refresh_timestamp_seconds", "When the project's pipeline last refreshed successfully.")
    refreshed.add_metric([], time.time() if at is None else at)
    return _push(project, {}, [refreshed], "refresh")


def record_production_model(
    project: str, *, version: str | int, metric: str, holdout_value: float, higher_is_better: bool
) -> bool:
    """The version serving in production, and its primary metric over the holdout."""
    served = _gauge("mlops_production_model_version", "Registry version of the project's production model.")
    served.add_metric([], float(version))
    holdout = _gauge(
        "mlops_production_holdout_metric",
        "The production model's primary metric over the holdout; `better` says which direction is better.",
        ["metric", "version", "better"],
    )
    holdout.add_metric([metric, str(version), "higher" if higher_is_better else "lower"], holdout_value)
    return _push(project, {}, [served, holdout], "production model")


def record_check_result(project: str, *, asset: str, check: str, passed: bool, blocking: bool) -> bool:
    """The last result of one check of one asset (a blocking check stops the assets downstream)."""
    result = _gauge("mlops_check_passed", "1 when the check's last evaluation passed, else 0.", ["blocking"])
    result.add_metric(["true" if blocking else "false"], 1.0 if passed else 0.0)
    return _push(project, {"asset": asset, "check": check}, [result], f"check {check}")


def record_drift(
    project: str, *, source: str, drifts: Iterable[FeatureDriftValues], psi_threshold: float, ks_threshold: float
) -> bool:
    """One drift comparison of `source` (e.g. the serving app's inputs, new data) against the training
    data: PSI and KS per feature, and the thresholds that judged them. It replaces the previous
    comparison of the same source; a statistic that was not computed (too few values, KS of a
    category) is left out rather than pushed as 0."""
    psi = _gauge("mlops_drift_psi", "Population stability index of a feature against the training data.", ["feature"])
    ks = _gauge("mlops_drift_ks", "Kolmogorov-Smirnov statistic of a feature against the training data.", ["feature"])
    for drift in drifts:
        if drift.psi is not None:
            psi.add_metric([drift.feature], drift.psi)
        if drift.ks is not None:
            ks.add_metric([drift.feature], drift.ks)
    psi_limit = _gauge("mlops_drift_psi_threshold", "PSI at or above which a feature has drifted.")
    psi_limit.add_metric([], psi_threshold)
    ks_limit = _gauge("mlops_drift_ks_threshold", "KS statistic at or above which a feature has drifted.")
    ks_limit.add_metric([], ks_threshold)
    return _push(project, {"source": source}, [psi, ks, psi_limit, ks_limit], f"drift of {source}")


def record_retraining_decision(project: str, *, triggered: bool, at: float | None = None) -> bool:
    """Whether the last drift evaluation triggered a retraining; when it did, also when."""
    decision = _gauge("mlops_retraining_triggered", "1 when the last drift evaluation triggered a retraining, else 0.")
    decision.add_metric([], 1.0 if triggered else 0.0)
    families = [decision]
    if triggered:
        # Pushed only when true: a push adds to the group, so the last trigger's time stays.
        last = _gauge("mlops_retraining_last_triggered_timestamp_seconds", "When drift last triggered a retraining.")
        last.add_metric([], time.time() if at is None else at)
        families.append(last)
    return _push(project, {}, families, "retraining decision")


def record_live_metric(project: str, *, version: str | int, metric: str, value: float) -> bool:
    """A model version's primary metric measured on live traffic with its ground truth."""
    live = _gauge("mlops_live_metric", "A model version's metric on live traffic.", ["metric"])
    live.add_metric([metric], value)
    return _push(project, {"version": str(version)}, [live], f"live metric of version {version}")


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels or [])


class _Families(Collector):
    """The families of one push, as they are: no metric object, so nothing lingers between pushes."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _push(project: str, grouping: Mapping[str, str], families: list[Metric], what: str) -> bool:
    gateway = os.environ.get(GATEWAY_VARIABLE, "").strip()
    if not gateway:
        return False
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Families(families))
    try:
        pushadd_to_gateway(
            gateway, job=JOB, registry=registry, grouping_key={"project": project, **grouping}, timeout=PUSH_TIMEOUT_SECONDS
        )
    except Exception as error:  # any failure at all: monitoring must not fail the pipeline
        logger.warning("could not push the %s metrics of %s to %s: %s", what, project, redacted(gateway), redacted(str(error)))
        return False
    return True
