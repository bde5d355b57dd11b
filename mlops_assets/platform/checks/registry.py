from dagster import AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, asset_check

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.pipeline_metrics import record_check_result
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources.io_managers import Versioned
from mlops_assets.platform.resources.mlflow_registry import MlflowResource


def build_alias_consistency_check(project: ModelProject) -> AssetChecksDefinition:
    keys = ProjectKeys(project.name)

    @asset_check(
        asset=keys.deployed_model,
        name="check_consistency_production_alias",
        description="The registry's production alias points at the version the last deployment decision names.",
    )
    def check_consistency_production_alias(mlflow_resource: MlflowResource, decision: Versioned) -> AssetCheckResult:
        recorded = decision.value
        actual = mlflow_resource.model(project.model_name).aliased_version_number()
        expected = None if recorded["production_version"] is None else str(recorded["production_version"])
        record_check_result(
            project.name,
            asset=keys.deployed_model.to_user_string(),
            check="check_consistency_production_alias",
            passed=actual == expected,
            blocking=False,
        )
        return AssetCheckResult(
            passed=actual == expected,
            severity=AssetCheckSeverity.WARN,
            description=None if actual == expected else f"'{recorded['alias']}' is at {actual}, the deployment recorded {expected}",
            metadata={"expected_version": str(expected), "actual_version": str(actual)},
        )

    return check_consistency_production_alias
