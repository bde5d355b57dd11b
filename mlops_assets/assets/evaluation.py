import base64

import numpy as np
import pyspark.sql.functions as F
from dagster import AssetExecutionContext, MetadataValue, Output, asset
from pyspark.sql import DataFrame

from mlops_assets.assets.common import MODEL_GROUP, OWNERS, markdown_table
from mlops_assets.ml import MODEL_CODE_VERSION
from mlops_assets.ml.evaluation import metrics_table, residual_plot_png
from mlops_assets.ml.housing import RAW_FEATURES, TARGET
from mlops_assets.resources.io_managers import Versioned
from mlops_assets.resources.mlflow_registry import MlflowResource, wait_for_model_stack


def _predict(model_uri: str, holdout) -> np.ndarray:
    wait_for_model_stack()
    import mlflow.pyfunc

    return np.asarray(mlflow.pyfunc.load_model(model_uri).predict(holdout[list(RAW_FEATURES)]), dtype=np.float64)


@asset(group_name=MODEL_GROUP, kinds={"scikitlearn", "mlflow"}, owners=OWNERS, io_manager_key="json_io_manager", code_version=MODEL_CODE_VERSION)
def model_evaluation(
    context: AssetExecutionContext,
    mlflow_resource: MlflowResource,
    trained_model: Versioned,
    housing_features: Versioned,
) -> Output[dict]:
    """The new version's holdout RMSE, MAE and R2, overall and per `ocean_proximity` slice, a residual
    plot, and the current production version scored on the very same holdout rows for comparison."""
    candidate = trained_model.value
    holdout = housing_features.value.filter(F.col("split") == "test").select(*RAW_FEATURES, TARGET).toPandas()
    actual = holdout[TARGET].to_numpy(dtype=np.float64)
    predicted = _predict(candidate["model_uri"], holdout)
    table = metrics_table(holdout, actual, predicted)
    overall = table.iloc[0].to_dict()

    production_version = mlflow_resource.aliased_version_number()
    production_summary = None
    if production_version is not None and production_version != candidate["version"]:
        try:
            production_metrics = metrics_table(holdout, actual, _predict(mlflow_resource.model_uri(production_version), holdout))
            production_summary = {"version": production_version, **production_metrics.iloc[0].to_dict()}
        except Exception as error:  # a broken production artifact must not block evaluating its replacement
            context.log.warning(f"production version {production_version} could not be scored: {error!r}")
            production_summary = {"version": production_version, "error": repr(error)}

    plot = residual_plot_png(actual, predicted, f"{candidate['model_name']} v{candidate['version']}: holdout residuals")
    client = mlflow_resource.client
    run_id = candidate["mlflow_run_id"]
    for name in ("rmse", "mae", "r2"):
        client.log_metric(run_id, f"holdout_{name}", float(overall[name]))
    client.log_dict(run_id, {"slices": table.to_dict("records")}, "evaluation/metrics_by_slice.json")
    client.log_image(run_id, _png_to_array(plot), "evaluation/residuals.png")
    mlflow_resource.tag_version(
        candidate["version"], {"holdout_rmse": round(overall["rmse"], 2), "evaluated_on": housing_features.version}
    )

    record = {
        "model_name": candidate["model_name"],
        "version": candidate["version"],
        "mlflow_run_id": run_id,
        "features_version": housing_features.version,
        "holdout_rows": len(holdout),
        "metrics": {name: float(overall[name]) for name in ("rmse", "mae", "r2")},
        "slices": table.to_dict("records"),
        "production": production_summary,
    }
    metadata = {
        "rmse": float(overall["rmse"]),
        "mae": float(overall["mae"]),
        "r2": float(overall["r2"]),
        "holdout_rows": len(holdout),
        "model_version": int(candidate["version"]),
        "metrics_by_slice": markdown_table(table.to_dict("records")),
        "residual_plot": MetadataValue.md(f"![residuals](data:image/png;base64,{base64.b64encode(plot).decode()})"),
    }
    if production_summary and "rmse" in production_summary:
        metadata["production_version"] = int(production_summary["version"])
        metadata["production_rmse"] = float(production_summary["rmse"])
        metadata["rmse_change_vs_production"] = float(overall["rmse"] - production_summary["rmse"])
    return Output(record, metadata=metadata)


def _png_to_array(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image

    return (matplotlib.image.imread(io.BytesIO(png), format="png")[:, :, :3] * 255).astype(np.uint8)
