"""Rollback: put `production` back on an earlier version, from the UI's launchpad.

Only a version that passed the gate once may take production back: it must exist, have been evaluated
(its `evaluated_on` tag) and either a `gate_passed` tag or a `deployed_at` tag (it served before). The
version rolled back from is tagged `rolled_back_at`, so the gate will not deploy it again; the move is
appended to the deployment ledger with the run that made it and why.
"""

from datetime import UTC, datetime

from dagster import AssetMaterialization, Config, Failure, JobDefinition, OpExecutionContext, job, op
from pydantic import Field

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.ledger import DeploymentLedger, ledger_metadata
from mlops_assets.platform.resources.mlflow_registry import MlflowResource, RegisteredModel

# Tags the pipeline sets on model versions, read here.
EVALUATED_ON_TAG = "evaluated_on"
GATE_PASSED_TAG = "gate_passed"
DEPLOYED_AT_TAG = "deployed_at"
REPLACED_VERSION_TAG = "replaced_version"
ROLLED_BACK_AT_TAG = "rolled_back_at"


class RollbackConfig(Config):
    target_version: str | None = Field(
        default=None,
        description="The registry version to put back in production. Empty: the version the current production model replaced.",
    )
    reason: str = Field(default="", description="Why: recorded in the deployment ledger next to the run that did it.")


def refusal(version: str, tags: dict[str, str] | None) -> str | None:
    """Why `version` may not take production back, or None when it may (`tags` None: it does not exist)."""
    if tags is None:
        return f"version {version} does not exist in the registry"
    if EVALUATED_ON_TAG not in tags:
        return f"version {version} was never evaluated (no {EVALUATED_ON_TAG} tag)"
    if tags.get(GATE_PASSED_TAG) != "true" and DEPLOYED_AT_TAG not in tags:
        return f"version {version} never passed the deployment gate (no {GATE_PASSED_TAG} or {DEPLOYED_AT_TAG} tag)"
    return None


def _previous_production(registry: RegisteredModel, ledger: DeploymentLedger, current: str) -> str | None:
    # The version the current one replaced when the gate deployed it; for a move the ledger only
    # observed (made outside the pipeline), the holder before it there.
    replaced = (registry.version_tags(current) or {}).get(REPLACED_VERSION_TAG)
    if replaced:
        return replaced
    stints = ledger.stints(model_name=registry.name, alias=registry.alias)
    earlier = [stint.version for stint in stints[:-1] if stint.version not in (None, current)]
    return earlier[-1] if earlier else None


def rollback_job_name(project_name: str) -> str:
    return f"{project_name}_rollback"


def move_back_op_name(project_name: str) -> str:
    return f"{project_name}_move_production_back"


def build_rollback_job(project_name: str, model_name: str) -> JobDefinition:
    ledger_asset = ProjectKeys(project_name).deployment_ledger

    @op(
        name=move_back_op_name(project_name),
        description=f"Moves {model_name}'s production alias back to the configured version, or to the one production replaced.",
    )
    def move_production_back(
        context: OpExecutionContext, config: RollbackConfig, mlflow_resource: MlflowResource, ledger: DeploymentLedger
    ) -> None:
        registry = mlflow_resource.model(model_name)
        current = registry.aliased_version_number()
        if current is None:
            raise Failure(f"no version holds '{registry.alias}': there is nothing to roll back")
        target = config.target_version or _previous_production(registry, ledger, current)
        if target is None:
            raise Failure(f"version {current} replaced no earlier production version: name a target_version")
        target = target.strip()
        if target == current:
            raise Failure(f"version {target} already holds '{registry.alias}'")
        if problem := refusal(target, registry.version_tags(target)):
            raise Failure(f"rollback refused: {problem}", metadata={"target_version": target, "production_version": current})

        registry.move_alias(target)
        moved_at = datetime.now(UTC)
        reason = config.reason or f"rollback from version {current}"
        registry.tag_version(
            current, {ROLLED_BACK_AT_TAG: moved_at.isoformat(), "rolled_back_to": target, "rolled_back_by_run": context.run_id}
        )
        ledger.append_from_step(
            context,
            model_name=registry.name,
            alias=registry.alias,
            version=target,
            previous_version=current,
            action="rollback",
            reason=reason,
            moved_at=moved_at,
        )
        context.log.warning(f"'{registry.alias}' rolled back to version {target} (was {current}): {reason}")
        # The ledger asset shows the move at once, without waiting for its next materialization.
        context.log_event(
            AssetMaterialization(
                asset_key=ledger_asset,
                description=f"rollback to version {target}",
                metadata=ledger_metadata(ledger, model_name=registry.name, alias=registry.alias),
            )
        )

    @job(
        name=rollback_job_name(project_name),
        description=(
            f"Puts {model_name}'s 'production' back on an earlier version that passed the gate (config: target_version, "
            "or empty for the version production replaced; reason) and records it in the deployment ledger."
        ),
        tags={"mlops/action": "rollback", "mlops/project": project_name},
    )
    def rollback_production() -> None:
        move_production_back()

    return rollback_production
