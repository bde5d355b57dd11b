"""Manual approval (off by default; MLOPS_APPROVAL_REQUIRED=true switches it on).

With approval on, a candidate that passes the gate waits: `deployed_model` records it as awaiting
approval and leaves production alone. A person approves it by setting the tag `approved=true` on the
model version (MLflow UI, model version page), or by launching `deployed_model` with
`approved_version` set to it. The sensor here notices the tag and launches the deployment again, which
now moves production.
"""

from dagster import (
    AssetKey,
    ConfigurableResource,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from pydantic import Field

from mlops_assets.automation.jobs import APPROVED_DEPLOYMENT_JOB
from mlops_assets.resources.mlflow_registry import MlflowResource

APPROVED_TAG = "approved"
APPROVED_BY_TAG = "approved_by"
APPROVED_VERSION_RUN_TAG = "mlops/approved_version"
DEPLOYMENT_ASSET = AssetKey("deployed_model")
POLL_SECONDS = 60


class ApprovalPolicy(ConfigurableResource):
    required: bool = Field(
        default=False, description="A model that passed the gate waits for a person's approval before it takes production."
    )


def is_approved(version_tags: dict[str, str]) -> bool:
    return version_tags.get(APPROVED_TAG, "").strip().lower() == "true"


@sensor(
    name="approval_sensor",
    job_name=APPROVED_DEPLOYMENT_JOB,
    minimum_interval_seconds=POLL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="With approval on: finishes the deployment of the waiting candidate once its version carries approved=true.",
)
def approval_sensor(
    context: SensorEvaluationContext, approval: ApprovalPolicy, mlflow_resource: MlflowResource
) -> RunRequest | SkipReason:
    if not approval.required:
        return SkipReason("approval is switched off (MLOPS_APPROVAL_REQUIRED)")
    records = context.instance.fetch_materializations(DEPLOYMENT_ASSET, limit=1).records
    if not records:
        return SkipReason("no deployment decision yet")
    decision = records[0].asset_materialization.metadata
    if not (decision.get("awaiting_approval") and decision["awaiting_approval"].value):
        return SkipReason("the latest deployment decision waits for no approval")
    version = str(decision["candidate_version"].value)
    # Only the waiting candidate is looked up: the registry is not scanned on every tick.
    tags = dict(mlflow_resource.client.get_model_version(mlflow_resource.model_name, version).tags)
    if not is_approved(tags):
        return SkipReason(f"version {version} waits for approval: set the tag {APPROVED_TAG}=true on it")
    context.log.info(f"version {version} approved by {tags.get(APPROVED_BY_TAG, 'a registry user')}: deploying")
    # One run per decision that waited: a failed run is retried by the instance, not re-requested here.
    return RunRequest(run_key=f"{version}-{records[0].storage_id}", tags={APPROVED_VERSION_RUN_TAG: version})
