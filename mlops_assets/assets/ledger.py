from dagster import AssetExecutionContext, MaterializeResult, asset

from mlops_assets.assets.common import MODEL_GROUP, OWNERS
from mlops_assets.assets.deployment import deployed_model
from mlops_assets.automation import AFTER_PARENTS
from mlops_assets.ledger import DeploymentLedger, ledger_metadata
from mlops_assets.resources.mlflow_registry import MlflowResource


@asset(
    group_name=MODEL_GROUP,
    kinds={"sqlite"},
    owners=OWNERS,
    deps=[deployed_model],
    automation_condition=AFTER_PARENTS,
)
def deployment_ledger(
    context: AssetExecutionContext, mlflow_resource: MlflowResource, ledger: DeploymentLedger
) -> MaterializeResult:
    """Which version held `production` from when to when, what moved it (the run, and the schedule,
    sensor, automation or person behind it) and why: an append-only SQLite table (MLOPS_LEDGER_PATH).

    `deployed_model` and the `rollback_production` job append a row when they move the alias. This
    asset shows the history, and records a move it did not see happen (the alias set in the MLflow UI,
    or moved before the ledger existed) as `observed`, so that the history matches the registry.
    """
    model_name, alias = mlflow_resource.model_name, mlflow_resource.alias
    recorded = ledger.latest(model_name=model_name, alias=alias)
    recorded_version = recorded.version if recorded else None
    actual_version = mlflow_resource.aliased_version_number()
    if actual_version != recorded_version:
        ledger.append_from_step(
            context,
            model_name=model_name,
            alias=alias,
            version=actual_version,
            previous_version=recorded_version,
            action="observed",
            reason=(
                f"'{alias}' found at version {actual_version} while the ledger last recorded {recorded_version}: "
                "moved outside the pipeline (MLflow UI or API) or before the ledger existed"
            ),
        )
        context.log.warning(f"'{alias}' moved outside the pipeline: {recorded_version} -> {actual_version}, recorded as observed")
    return MaterializeResult(metadata=ledger_metadata(ledger, model_name=model_name, alias=alias))
