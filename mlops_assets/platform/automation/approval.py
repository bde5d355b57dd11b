"""Manual approval (off by default; MLOPS_APPROVAL_REQUIRED=true switches it on).

With approval on, a candidate that passes the gate waits: `deployed_model` records it as awaiting
approval and leaves production alone. A person approves it by setting the tag `approved=true` on the
model version (MLflow UI, model version page), or by launching `deployed_model` with
`approved_version` set to it. The sensor here notices the tag and launches the deployment again, which
now moves production.
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
from mlops_assets.platform.automation.jobs import approved_deployment_job_name
from mlops_assets.platform.resources.mlflow_registry import MlflowResource

APPROVED_TAG = "approved"
APPROVED_BY_TAG = "approved_by"
APPROVED_VERSION_RUN_TAG = "mlops/approved_version"
POLL_SECONDS = 60


class ApprovalPolicy(ConfigurableResource):
    required: bool = Field(
        default=False, description="A model that passed the gate waits for a person's approval before it takes production."
    )


def is_approved(version_tags: dict[str, str]) -> bool:
    return version_tags.get(APPROVED_TAG, "").strip().lower() == "true"


def build_approval_sensor(project_name: str, model_name: str) -> SensorDefinition:
    @sensor(
        name=f"{project_name}_approval",
        job_name=approved_deployment_job_name(project_name),
        minimum_interval_seconds=POLL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"With approval on: finishes the deployment of {project_name}'s waiting candidate once its version carries approved=true.",
    )
    def approval_sensor(
        context: SensorEvaluationContext, approval: ApprovalPolicy, mlflow_resource: MlflowResource
    ) -> RunRequest | SkipReason:
        if not approval.required:
            return SkipReason("approval is switched off (MLOPS_APPROVAL_REQUIRED)")
        records = context.instance.fetch_materializations(ProjectKeys(project_name).deployed_model, limit=1).records
        if not records:
            return SkipReason("no deployment decision yet")
        decision = records[0].asset_materialization.metadata
        if not (decision.get("awaiting_approval") and decision["awaiting_approval"].value):
            return SkipReason("the latest deployment decision waits for no approval")
        version = str(decision["candidate_version"].value)
        # Only the waiting candidate is looked up: the registry is not scanned on every tick.
        tags = mlflow_resource.model(model_name).version_tags(version) or {}
        if not is_approved(tags):
            return SkipReason(f"version {version} waits for approval: set the tag {APPROVED_TAG}=true on it")
        context.log.info(f"version {version} approved by {tags.get(APPROVED_BY_TAG, 'a registry user')}: deploying")
        # One run per decision that waited: a failed run is retried by the instance, not re-requested here.
        return RunRequest(run_key=f"{version}-{records[0].storage_id}", tags={APPROVED_VERSION_RUN_TAG: version})

    return approval_sensor
