from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from mlops_assets.resources.io_managers import Versioned
from mlops_assets.resources.mlflow_registry import MlflowResource


@asset_check(
    asset=AssetKey("deployed_model"),
    description="The registry's production alias points at the version the last deployment decision names.",
)
def check_consistency_production_alias(mlflow_resource: MlflowResource, deployed_model: Versioned) -> AssetCheckResult:
    decision = deployed_model.value
    actual = mlflow_resource.aliased_version_number()
    expected = None if decision["production_version"] is None else str(decision["production_version"])
    return AssetCheckResult(
        passed=actual == expected,
        severity=AssetCheckSeverity.WARN,
        description=None if actual == expected else f"'{decision['alias']}' is at {actual}, the deployment recorded {expected}",
        metadata={"expected_version": str(expected), "actual_version": str(actual)},
    )
