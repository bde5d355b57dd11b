from datetime import UTC, datetime

from dagster import AssetExecutionContext, Config, Failure, Output, asset
from pydantic import Field

from mlops_assets.assets.common import MODEL_GROUP, OWNERS
from mlops_assets.automation.approval import APPROVED_BY_TAG, APPROVED_TAG, ApprovalPolicy, is_approved
from mlops_assets.automation.rollback import GATE_PASSED_TAG, ROLLED_BACK_AT_TAG
from mlops_assets.ledger import DeploymentLedger
from mlops_assets.ml.gate import decide
from mlops_assets.resources.io_managers import Versioned
from mlops_assets.resources.mlflow_registry import MlflowResource

# The final test RMSE of the published reference solution for this dataset (Geron, Hands-On Machine
# Learning, 2nd edition, chapter 2): a new model must at least beat it.
REFERENCE_RMSE = 47_730.0


class DeploymentGateConfig(Config):
    max_rmse: float = Field(default=REFERENCE_RMSE, gt=0, description="A candidate's holdout RMSE must be below this (USD).")
    max_regression: float = Field(
        default=0.01, ge=0, description="How much worse than production a candidate may be on the same holdout, as a fraction."
    )
    force: bool = Field(
        default=False,
        description=(
            "Deploy the candidate even when the gate (RMSE bound, regression, an earlier rollback) refuses it. "
            "Its blocking checks still apply: a broken model never gets this far. The ledger records the override."
        ),
    )
    approved_version: str | None = Field(
        default=None,
        description=(
            "With approval on (MLOPS_APPROVAL_REQUIRED): approve this version, the waiting candidate, in this run; "
            "the person launching the run is the approver."
        ),
    )


@asset(group_name=MODEL_GROUP, kinds={"mlflow"}, owners=OWNERS, io_manager_key="json_io_manager")
def deployed_model(
    context: AssetExecutionContext,
    config: DeploymentGateConfig,
    mlflow_resource: MlflowResource,
    ledger: DeploymentLedger,
    approval: ApprovalPolicy,
    model_evaluation: Versioned,
) -> Output[dict]:
    """Moves the registry alias `production` to the evaluated version when it passes the gate: a holdout
    RMSE under an absolute bound and no regression beyond a tolerance against the production model on
    the same holdout. Otherwise production stays where it is, and this record says why.

    A version once rolled back is never deployed again. With approval on, a candidate that passed
    waits for a person (the tag `approved=true` on the version, or `approved_version` in this config)
    and the `approval_sensor` finishes its deployment. Every move is appended to the deployment ledger."""
    evaluation = model_evaluation.value
    candidate_version = evaluation["version"]
    current_version = mlflow_resource.aliased_version_number()
    evaluated_against = (evaluation.get("production") or {}).get("version")
    production_rmse = (evaluation.get("production") or {}).get("rmse")
    candidate_tags = dict(mlflow_resource.client.get_model_version(mlflow_resource.model_name, candidate_version).tags)
    if config.approved_version is not None and config.approved_version.strip() != candidate_version:
        raise Failure(f"approved_version {config.approved_version} is not the candidate, version {candidate_version}")
    awaiting_approval = False
    decision = decide(
        candidate_rmse=evaluation["metrics"]["rmse"],
        production_rmse=production_rmse,
        max_rmse=config.max_rmse,
        max_regression=config.max_regression,
    )

    if current_version == candidate_version:
        deployed, reason = False, f"version {candidate_version} already holds '{mlflow_resource.alias}'"
    elif current_version is not None and current_version != evaluated_against:
        deployed, reason = False, (
            f"'{mlflow_resource.alias}' moved to version {current_version} after this evaluation "
            f"(which compared against {evaluated_against}): evaluate again before deploying"
        )
    elif config.force:
        deployed, reason = True, f"forced by run {context.run_id} over the gate ({decision.reason})"
    elif ROLLED_BACK_AT_TAG in candidate_tags:
        deployed, reason = False, (
            f"version {candidate_version} was rolled back from '{mlflow_resource.alias}' at "
            f"{candidate_tags[ROLLED_BACK_AT_TAG]}: train a new version"
        )
    else:
        deployed, reason = decision.passed, decision.reason
        if decision.passed:
            # The marker a rollback looks for: this version was good enough to serve.
            mlflow_resource.tag_version(candidate_version, {GATE_PASSED_TAG: "true"})
        if decision.passed and approval.required:
            deployed, reason, awaiting_approval = _approval(
                context, config, mlflow_resource, candidate_version, candidate_tags, reason
            )

    if deployed:
        moved_at = datetime.now(UTC)
        mlflow_resource.move_alias(candidate_version)
        mlflow_resource.tag_version(
            candidate_version, {"deployed_at": moved_at.isoformat(), "replaced_version": current_version or ""}
        )
        ledger.append_from_step(
            context,
            model_name=mlflow_resource.model_name,
            alias=mlflow_resource.alias,
            version=candidate_version,
            previous_version=current_version,
            action="deploy",
            reason=reason,
            moved_at=moved_at,
        )
        context.log.info(f"'{mlflow_resource.alias}' -> version {candidate_version} (was {current_version}): {reason}")
    else:
        context.log.warning(f"'{mlflow_resource.alias}' stays at version {current_version}: {reason}")

    record = {
        "model_name": evaluation["model_name"],
        "alias": mlflow_resource.alias,
        "candidate_version": candidate_version,
        "deployed": deployed,
        "reason": reason,
        "awaiting_approval": awaiting_approval,
        "production_version": candidate_version if deployed else current_version,
        "replaced_version": current_version if deployed else None,
        "candidate_rmse": evaluation["metrics"]["rmse"],
        "production_rmse_before": production_rmse,
        "gate": config.model_dump(),
        "dagster_run_id": context.run_id,
        "decided_at": datetime.now(UTC).isoformat(),
    }
    metadata = {
        "deployed": deployed,
        "reason": reason,
        "awaiting_approval": awaiting_approval,
        "candidate_version": int(candidate_version),
        "candidate_rmse": evaluation["metrics"]["rmse"],
    }
    if record["production_version"] is not None:
        metadata["production_version"] = int(record["production_version"])
    if record["replaced_version"] is not None:
        metadata["replaced_version"] = int(record["replaced_version"])
    return Output(record, metadata=metadata)


def _approval(
    context: AssetExecutionContext,
    config: DeploymentGateConfig,
    mlflow_resource: MlflowResource,
    version: str,
    version_tags: dict[str, str],
    gate_reason: str,
) -> tuple[bool, str, bool]:
    """(deployed, reason, awaiting approval) for a candidate that passed the gate, with approval on."""
    if (config.approved_version or "").strip() == version:
        approver = f"launchpad run {context.run_id}"
        mlflow_resource.tag_version(version, {APPROVED_TAG: "true", APPROVED_BY_TAG: approver})
        return True, f"{gate_reason}; approved by {approver}", False
    if is_approved(version_tags):
        approver = version_tags.get(APPROVED_BY_TAG) or "a registry user (MLflow tag)"
        return True, f"{gate_reason}; approved by {approver}", False
    mlflow_resource.tag_version(version, {"approval_requested_at": datetime.now(UTC).isoformat()})
    return False, (
        f"{gate_reason}; waiting for approval: set the tag {APPROVED_TAG}=true on version {version} "
        f"(MLflow UI) or launch deployed_model with approved_version={version}"
    ), True
