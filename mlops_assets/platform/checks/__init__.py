"""A project's asset checks: one blocking Pandera contract per flow asset, and the registry's consistency."""

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetChecksDefinition

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.checks.contracts import contract_check
from mlops_assets.platform.checks.registry import build_alias_consistency_check
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources.mlflow_registry import wait_for_model_stack


def model_smoke_predictions(record: dict, context: AssetCheckExecutionContext) -> pd.DataFrame:
    """Load the registered version back from the registry and predict its own logged input example."""
    wait_for_model_stack()
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(record["model_uri"])
    return pd.DataFrame({"prediction": pd.Series(list(model.predict(model.input_example)))})


def evaluation_table(record: dict, context: AssetCheckExecutionContext) -> pd.DataFrame:
    return pd.DataFrame(record["slices"])


def build_project_checks(project: ModelProject) -> list[AssetChecksDefinition]:
    keys, contracts = ProjectKeys(project.name), project.contracts
    return [
        contract_check(keys.raw, contracts.raw),
        contract_check(keys.cleaned, contracts.cleaned),
        contract_check(keys.features, contracts.features),
        contract_check(
            keys.trained_model,
            contracts.smoke_predictions,
            as_frame=model_smoke_predictions,
            required_resource_keys={"mlflow_resource"},
        ),
        contract_check(keys.model_evaluation, contracts.evaluation, as_frame=evaluation_table),
        build_alias_consistency_check(project),
    ]
