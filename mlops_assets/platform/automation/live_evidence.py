"""When live outcomes are enough to act on, and the sensor that rolls production back on them.

`online_performance` judges the production model (and a challenger beside it) on the outcomes callers
sent back for logged predictions. It promotes a challenger itself, through the gate and the ledger, as
the deployment step does; a production model that got worse is rolled back by the project's rollback
job, which this sensor launches on the record that found it, once.
"""

from dagster import (
    ConfigurableResource,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from pydantic import Field

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.automation.cursors import unhandled_latest
from mlops_assets.platform.automation.retraining import TRIGGER_TAG
from mlops_assets.platform.automation.rollback import move_back_op_name, rollback_job_name

LIVE_EVIDENCE_TRIGGER = "online_performance"
ROLLBACK_RECOMMENDED = "rollback_recommended"
POLL_SECONDS = 60


class LiveEvidencePolicy(ConfigurableResource):
    """How much live evidence a decision needs, and where the serving app keeps predictions and outcomes."""

    prediction_log_dir: str = Field(
        description="The serving app's prediction logs, one folder per registered model, each with its outcomes (_feedback.sqlite)."
    )
    window_days: int = Field(default=30, ge=1, description="How many recent days of predictions with outcomes to judge.")
    min_outcomes: int = Field(default=200, ge=1, description="Fewest predictions with an outcome before any decision.")
    min_improvement: float = Field(
        default=0.0,
        description=(
            "How much better than production a challenger must be on the primary metric (its units), at the low end of "
            "the paired interval, to be promoted."
        ),
    )
    rollback_tolerance: float = Field(
        default=0.05,
        ge=0,
        description=(
            "How much worse than its holdout figure production may be live, as a fraction, at the better end of its "
            "interval, before it is rolled back."
        ),
    )
    confidence: float = Field(default=0.95, gt=0, lt=1, description="The confidence of the bootstrap intervals.")
    bootstrap_rounds: int = Field(default=400, ge=50, description="Resamples per interval.")


def build_live_rollback_sensor(project_name: str) -> SensorDefinition:
    move_back_op = move_back_op_name(project_name)

    @sensor(
        name=f"{project_name}_live_rollback",
        job_name=rollback_job_name(project_name),
        minimum_interval_seconds=POLL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Rolls {project_name}'s production back when its online_performance finds it worse live than on its holdout, "
            "beyond the tolerance and with enough outcomes (MLOPS_LIVE_*)."
        ),
    )
    def live_rollback(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        latest = unhandled_latest(context, ProjectKeys(project_name).online_performance)
        if isinstance(latest, SkipReason):
            return latest
        context.update_cursor(str(latest.storage_id))
        metadata = latest.asset_materialization.metadata
        if not (ROLLBACK_RECOMMENDED in metadata and metadata[ROLLBACK_RECOMMENDED].value):
            return SkipReason("the latest online_performance record recommends no rollback")
        reason = str(metadata["decision_reason"].value) if "decision_reason" in metadata else "worse on live outcomes"
        return RunRequest(
            run_key=f"live-rollback-{latest.storage_id}",
            run_config={"ops": {move_back_op: {"config": {"reason": f"live evidence: {reason}"[:1000]}}}},
            tags={TRIGGER_TAG: LIVE_EVIDENCE_TRIGGER},
        )

    return live_rollback
