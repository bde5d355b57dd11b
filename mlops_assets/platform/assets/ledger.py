from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.automation.declarative import AFTER_PARENTS
from mlops_assets.platform.ledger import DeploymentLedger, ledger_metadata
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources.mlflow_registry import MlflowResource


def build_ledger_asset(project: ModelProject) -> AssetsDefinition:
    keys = ProjectKeys(project.name)

    @asset(
        key=keys.deployment_ledger,
        group_name=project.name,
        kinds={"sqlite"},
        owners=list(project.owners),
        deps=[keys.deployed_model],
        automation_condition=AFTER_PARENTS,
    )
    def deployment_ledger(context: AssetExecutionContext, mlflow_resource: MlflowResource, ledger: DeploymentLedger) -> MaterializeResult:
        """Which version held `production` from when to when, what moved it (the run, and the schedule,
        sensor, automation or person behind it) and why: an append-only SQLite table (MLOPS_LEDGER_PATH).

        `deployed_model` and the rollback job append a row when they move the alias. This asset shows the
        history, and records a move it did not see happen (the alias set in the MLflow UI, or moved before
        the ledger existed) as `observed`, so that the history matches the registry.
        """
        registry = mlflow_resource.model(project.model_name)
        recorded = ledger.latest(model_name=registry.name, alias=registry.alias)
        recorded_version = recorded.version if recorded else None
        actual_version = registry.aliased_version_number()
        if actual_version != recorded_version:
            ledger.append_from_step(
                context,
                model_name=registry.name,
                alias=registry.alias,
                version=actual_version,
                previous_version=recorded_version,
                action="observed",
                reason=(
                    f"'{registry.alias}' found at version {actual_version} while the ledger last recorded {recorded_version}: "
                    "moved outside the pipeline (MLflow UI or API) or before the ledger existed"
                ),
            )
            context.log.warning(f"'{registry.alias}' moved outside the pipeline: {recorded_version} -> {actual_version}, recorded as observed")
        return MaterializeResult(metadata=ledger_metadata(ledger, model_name=registry.name, alias=registry.alias))

    return deployment_ledger
