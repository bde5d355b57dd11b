"""Retraining on drift, with a cooldown.

Each new `feature_drift` record is looked at once. One that found drift launches the retraining job
(train on the newest certified features, evaluate, gate), unless a model was trained, or a
drift-triggered retraining launched, within the cooldown: retraining on the same data cannot cure
drift in what the model is asked, so without a cooldown it would retrain in a loop. A drift record met
during the cooldown is kept and launches the retraining once the cooldown is over, if no newer record
has replaced it by then.
"""

import time

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.automation.cursors import unhandled_latest
from mlops_assets.platform.automation.drift import DriftPolicy
from mlops_assets.platform.automation.jobs import retraining_job_name
from mlops_assets.platform.pipeline_metrics import record_retraining_decision

TRIGGER_TAG = "mlops/trigger"
DRIFT_TRIGGER = "feature_drift"
DRIFT_RECORD_TAG = "mlops/drift_record"
DRIFTED_FEATURES_TAG = "mlops/drifted_features"
POLL_SECONDS = 60


def last_training_time(context: SensorEvaluationContext, project_name: str, job_name: str) -> float | None:
    """When the project's model was last trained or a drift retraining last launched (it may still be running)."""
    moments = []
    trained = context.instance.fetch_materializations(ProjectKeys(project_name).trained_model, limit=1).records
    if trained:
        moments.append(trained[0].timestamp)
    launched = context.instance.get_run_records(RunsFilter(job_name=job_name, tags={TRIGGER_TAG: DRIFT_TRIGGER}), limit=1)
    if launched:
        moments.append(launched[0].create_timestamp.timestamp())
    return max(moments) if moments else None


def build_drift_retraining_sensor(project_name: str) -> SensorDefinition:
    @sensor(
        name=f"{project_name}_drift_retraining",
        job_name=retraining_job_name(project_name),
        minimum_interval_seconds=POLL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Retrains {project_name} when its feature_drift finds drift, at most once per cooldown (MLOPS_RETRAIN_COOLDOWN_HOURS).",
    )
    def drift_retraining(context: SensorEvaluationContext, drift_policy: DriftPolicy) -> RunRequest | SkipReason:
        latest = unhandled_latest(context, ProjectKeys(project_name).feature_drift)
        if isinstance(latest, SkipReason):
            return latest
        metadata = latest.asset_materialization.metadata
        if not (metadata.get("drifted") and metadata["drifted"].value):
            context.update_cursor(str(latest.storage_id))
            record_retraining_decision(project_name, triggered=False)
            return SkipReason("the latest drift record found no drift")

        cooldown_seconds = drift_policy.retrain_cooldown_hours * 3600
        last_training = last_training_time(context, project_name, retraining_job_name(project_name))
        if last_training is not None and time.time() - last_training < cooldown_seconds:
            wait_hours = (last_training + cooldown_seconds - time.time()) / 3600
            # The cursor stays: this record is looked at again when the cooldown is over.
            return SkipReason(f"drift found, but the model was trained recently: cooling down for {wait_hours:.1f} h more")

        context.update_cursor(str(latest.storage_id))
        record_retraining_decision(project_name, triggered=True)
        drifted = metadata["drifted_features"].value if "drifted_features" in metadata else ""
        return RunRequest(
            run_key=f"drift-{latest.storage_id}",
            tags={
                TRIGGER_TAG: DRIFT_TRIGGER,
                DRIFT_RECORD_TAG: str(metadata["version"].value) if "version" in metadata else str(latest.storage_id),
                DRIFTED_FEATURES_TAG: str(drifted)[:200],
            },
        )

    return drift_retraining
