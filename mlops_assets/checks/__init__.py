"""Asset checks: one blocking Pandera contract per asset, plus the registry's consistency check."""

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetKey

from mlops_assets.checks import schemas
from mlops_assets.checks.contracts import contract_check
from mlops_assets.checks.registry import check_consistency_production_alias
from mlops_assets.resources.mlflow_registry import wait_for_model_stack


def model_smoke_predictions(record: dict, context: AssetCheckExecutionContext) -> pd.DataFrame:
    """Load the registered version back from the registry and predict its own logged input example."""
    wait_for_model_stack()
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(record["model_uri"])
    example = model.input_example
    return pd.DataFrame({"prediction": pd.Series(model.predict(example), dtype="float64")})


def evaluation_table(record: dict, context: AssetCheckExecutionContext) -> pd.DataFrame:
    return pd.DataFrame(record["slices"])


HOUSING_CHECKS = [
    contract_check(AssetKey("raw_housing"), schemas.RAW_HOUSING),
    contract_check(AssetKey("cleaned_housing"), schemas.CLEANED_HOUSING),
    contract_check(AssetKey("housing_features"), schemas.HOUSING_FEATURES),
    contract_check(
        AssetKey("trained_model"),
        schemas.MODEL_SMOKE_PREDICTIONS,
        as_frame=model_smoke_predictions,
        required_resource_keys={"mlflow_resource"},
    ),
    contract_check(AssetKey("model_evaluation"), schemas.EVALUATION_METRICS, as_frame=evaluation_table),
    check_consistency_production_alias,
]
