import pyspark.sql.functions as F
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset
from pydantic import Field
from pyspark.sql import DataFrame

from mlops_assets.assets.common import MODEL_GROUP, OWNERS
from mlops_assets.ml import MODEL_CODE_VERSION
from mlops_assets.ml.evaluation import regression_metrics
from mlops_assets.ml.housing import RAW_FEATURES, TARGET
from mlops_assets.ml.model import Hyperparameters
from mlops_assets.resources.io_managers import Versioned
from mlops_assets.resources.mlflow_registry import MlflowResource, wait_for_model_stack
_DEFAULTS = Hyperparameters()


class TrainingConfig(Config):
    """Hyperparameters of the HistGradientBoostingRegressor at the end of the pipeline."""

    learning_rate: float = Field(default=_DEFAULTS.learning_rate, gt=0, le=1, description="Shrinkage per boosting iteration.")
    max_iter: int = Field(default=_DEFAULTS.max_iter, ge=1, description="Boosting iterations (trees).")
    max_leaf_nodes: int = Field(default=_DEFAULTS.max_leaf_nodes, ge=2, description="Leaves per tree.")
    min_samples_leaf: int = Field(default=_DEFAULTS.min_samples_leaf, ge=1, description="Smallest leaf.")
    l2_regularization: float = Field(default=_DEFAULTS.l2_regularization, ge=0, description="L2 penalty on leaf values.")
    max_features: float = Field(default=_DEFAULTS.max_features, gt=0, le=1, description="Share of features each split considers.")
    random_state: int = Field(default=_DEFAULTS.random_state, description="Seed, for reproducible models.")


@asset(group_name=MODEL_GROUP, kinds={"scikitlearn", "mlflow"}, owners=OWNERS, io_manager_key="json_io_manager", code_version=MODEL_CODE_VERSION)
def trained_model(
    context: AssetExecutionContext,
    config: TrainingConfig,
    mlflow_resource: MlflowResource,
    housing_features: Versioned,
) -> Output[dict]:
    """A scikit-learn Pipeline (feature formulas, then gradient-boosted trees) fit on the train split,
    logged to MLflow with its params, metrics, signature, input example and lineage, and registered
    as a new version of the model. It is not deployed here: evaluation and the gate decide that."""
    wait_for_model_stack()
    import mlflow

    from mlops_assets.ml.model import build_pipeline, log_housing_model, untrusted_types

    train = housing_features.value.filter(F.col("split") == "train").select(*RAW_FEATURES, TARGET).toPandas()
    features, target = train[list(RAW_FEATURES)], train[TARGET].to_numpy()
    params = Hyperparameters(**config.model_dump())
    pipeline = build_pipeline(params)
    pipeline.fit(features, target)
    if unexpected := untrusted_types(pipeline):
        raise TypeError(f"the pipeline holds types outside the skops trust list: {unexpected}")
    train_metrics = regression_metrics(target, pipeline.predict(features))

    lineage = {
        "features_path": housing_features.path,
        "features_version": housing_features.version,
        "features_digest": housing_features.digest,
        "dagster_run_id": context.run_id,
        "code_version": MODEL_CODE_VERSION,
    }
    with mlflow_resource.start_run(run_name=f"train-{context.run_id[:8]}", tags=lineage) as run:
        mlflow.log_params({**params.__dict__, "train_rows": len(train)})
        mlflow.log_metrics({f"train_{name}": value for name, value in train_metrics.items()})
        model_info = log_housing_model(pipeline, features, registered_model_name=mlflow_resource.model_name)
    version = str(model_info.registered_model_version)
    mlflow_resource.tag_version(version, lineage)
    record = {
        "model_name": mlflow_resource.model_name,
        "version": version,
        "model_uri": mlflow_resource.model_uri(version),
        "mlflow_run_id": run.info.run_id,
        **lineage,
        "train_rows": len(train),
        "params": params.__dict__,
        "train_metrics": train_metrics,
    }
    return Output(
        record,
        metadata={
            "model_version": int(version),
            "model_uri": record["model_uri"],
            "mlflow_run_id": run.info.run_id,
            "mlflow_run": MetadataValue.text(mlflow_resource.run_url(run.info.run_id)),
            "train_rows": len(train),
            "train_rmse": train_metrics["rmse"],
            "features_version": housing_features.version,
        },
    )
