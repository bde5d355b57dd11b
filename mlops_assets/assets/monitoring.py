"""Watching the production model: drift of its inputs, and batch predictions with it."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyspark.sql.functions as F
from dagster import AssetExecutionContext, Config, Failure, MetadataValue, Output, asset
from dagster_pyspark import PySparkResource
from pydantic import Field
from pyspark.sql import DataFrame

from mlops_assets.assets.common import OWNERS, SPARK_POOL, markdown_table
from mlops_assets.assets.ledger import deployment_ledger
from mlops_assets.automation import AFTER_PARENTS
from mlops_assets.automation.drift import DRIFTED, DriftPolicy, FeatureDrift, compare_features
from mlops_assets.ml.housing import CATEGORY, NUMERIC_FEATURES, RAW_FEATURES
from mlops_assets.resources.io_managers import Versioned
from mlops_assets.resources.mlflow_registry import MlflowResource, wait_for_model_stack

MONITORING_GROUP = "housing_monitoring"
INFERENCE_GROUP = "housing_inference"
FEATURES_PATH_TAG = "features_path"
LOG_PARTITION = "date"


def training_reference(features_path: str) -> pd.DataFrame:
    """The train split the production model was fit on (Parquet written by Spark; pyarrow skips its
    `_` and `.` bookkeeping files)."""
    if not Path(features_path).exists():
        raise Failure(f"the production model's training data at {features_path} is gone: drift has no reference")
    frame = pd.read_parquet(features_path, columns=[*RAW_FEATURES, "split"])
    return frame[frame["split"] == "train"].drop(columns="split").reset_index(drop=True)


def recent_predictions(folder: Path, days: int, now: datetime) -> pd.DataFrame | None:
    """The raw features of the predictions logged in the last `days` days (all of them when the log is
    not partitioned by date), or None without a prediction log."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not folder.is_dir():
        return None
    dated = any(child.is_dir() and child.name.startswith(f"{LOG_PARTITION}=") for child in folder.iterdir())
    partitioning = ds.partitioning(pa.schema([(LOG_PARTITION, pa.string())]), flavor="hive") if dated else None
    dataset = ds.dataset(folder, format="parquet", partitioning=partitioning, ignore_prefixes=[".", "_"])
    columns = [name for name in RAW_FEATURES if name in dataset.schema.names]
    if not columns:
        return pd.DataFrame(columns=list(RAW_FEATURES))
    first_day = (now - timedelta(days=days - 1)).date().isoformat()
    # ISO dates sort as text: the filter prunes whole partitions before any file is opened.
    row_filter = ds.field(LOG_PARTITION) >= first_day if dated else None
    frame = dataset.to_table(columns=columns, filter=row_filter).to_pandas()
    return frame.reindex(columns=list(RAW_FEATURES))


def _drift_rows(source: str, drifts: list[FeatureDrift]) -> list[dict]:
    return [
        {"source": source, "feature": d.feature, "psi": d.psi, "ks": d.ks, "values": d.current_count, "status": d.status}
        for d in drifts
    ]


@asset(
    group_name=MONITORING_GROUP,
    kinds={"pandas", "scipy"},
    owners=OWNERS,
    io_manager_key="json_io_manager",
    deps=[deployment_ledger],
    automation_condition=AFTER_PARENTS,
    output_required=False,
)
def feature_drift(
    context: AssetExecutionContext,
    drift_policy: DriftPolicy,
    mlflow_resource: MlflowResource,
    housing_features: Versioned,
) -> Iterator[Output[dict]]:
    """How far the inputs of the production model have moved from the data it was trained on.

    Two comparisons against the production version's train split (its `features_path` tag): the
    newest certified `housing_features`, and the features the serving app was asked for over the
    last days (its prediction log, when there is one). Per raw feature: PSI over the reference's
    deciles (categories for `ocean_proximity`) and the Kolmogorov-Smirnov statistic; a feature with
    fewer values than the minimum is not judged. Past a threshold, `drifted` is true and the
    `drift_retraining_sensor` retrains, at most once per cooldown. Without a production model there
    is nothing to compare, and nothing is materialized.
    """
    production = mlflow_resource.aliased_version()
    if production is None or FEATURES_PATH_TAG not in production.tags:
        context.log.warning(f"no production model with a {FEATURES_PATH_TAG} tag: no drift to measure")
        return
    reference = training_reference(production.tags[FEATURES_PATH_TAG])
    newest = housing_features.value.select(*RAW_FEATURES).toPandas()
    comparisons = {"data": compare_features(reference, newest, drift_policy)}
    served = recent_predictions(Path(drift_policy.prediction_log_dir), drift_policy.serving_window_days, datetime.now(UTC))
    if served is not None:
        comparisons["serving"] = compare_features(reference, served, drift_policy)
    else:
        context.log.info(f"no prediction log at {drift_policy.prediction_log_dir}: serving inputs not compared")

    drifted_features = [f"{source}:{d.feature}" for source, drifts in comparisons.items() for d in drifts if d.status == DRIFTED]
    record = {
        "production_version": str(production.version),
        "reference_path": production.tags[FEATURES_PATH_TAG],
        "reference_rows": len(reference),
        "features_version": housing_features.version,
        "serving_rows": None if served is None else len(served),
        "thresholds": {
            "psi": drift_policy.psi_threshold,
            "ks": drift_policy.ks_threshold,
            "min_samples": drift_policy.min_samples,
        },
        "comparisons": {source: [d.as_record() for d in drifts] for source, drifts in comparisons.items()},
        "drifted": bool(drifted_features),
        "drifted_features": drifted_features,
        "measured_at": datetime.now(UTC).isoformat(),
    }
    if drifted_features:
        context.log.warning(f"drift against production version {production.version}: {', '.join(drifted_features)}")
    metadata = {
        "drifted": bool(drifted_features),
        "drifted_feature_count": len(drifted_features),
        "drifted_features": ", ".join(drifted_features) or "none",
        "production_version": int(production.version),
        "features_version": housing_features.version,
        "serving_rows": 0 if served is None else len(served),
        "drift": markdown_table([row for source, drifts in comparisons.items() for row in _drift_rows(source, drifts)]),
    }
    for source, drifts in comparisons.items():
        for d in drifts:
            if d.psi is not None:
                metadata[f"psi/{source}/{d.feature}"] = d.psi
    yield Output(record, metadata=metadata)


class BatchScoringConfig(Config):
    location: str | None = Field(
        default=None,
        description=(
            "A Parquet folder or CSV file to score, with the raw feature columns; "
            "empty means the newest certified cleaned_housing."
        ),
    )


def _scoring_input(spark, location: str) -> DataFrame:
    frame = spark.read.csv(location, header=True) if location.lower().endswith(".csv") else spark.read.parquet(location)
    missing = sorted(set(RAW_FEATURES) - set(frame.columns) - {"total_bedrooms"})
    if missing:
        raise Failure(f"{location} lacks the feature columns {missing}")
    if "total_bedrooms" not in frame.columns:
        # The one optional feature: the model imputes it.
        frame = frame.withColumn("total_bedrooms", F.lit(None).cast("double"))
    return frame.withColumns(
        {**{name: F.col(name).cast("double") for name in NUMERIC_FEATURES}, CATEGORY: F.col(CATEGORY).cast("string")}
    )


@asset(
    group_name=INFERENCE_GROUP,
    kinds={"spark", "mlflow", "parquet"},
    owners=OWNERS,
    io_manager_key="spark_parquet_io_manager",
    pool=SPARK_POOL,
    deps=[deployment_ledger],
    automation_condition=AFTER_PARENTS,
    output_required=False,
)
def batch_predictions(
    context: AssetExecutionContext,
    config: BatchScoringConfig,
    pyspark: PySparkResource,
    mlflow_resource: MlflowResource,
    cleaned_housing: Versioned,
) -> Iterator[Output[DataFrame]]:
    """The production model's price for every row of the input (by default the newest cleaned data),
    scored by Spark through `mlflow.pyfunc.spark_udf`, with the model name, version and training run
    on every row. Without a production model nothing is scored, and nothing is materialized."""
    wait_for_model_stack()
    import mlflow.pyfunc

    production = mlflow_resource.aliased_version()
    if production is None:
        context.log.warning(f"no version holds '{mlflow_resource.alias}': nothing to score with")
        return
    version = str(production.version)
    spark = pyspark.spark_session
    frame = cleaned_housing.value if config.location is None else _scoring_input(spark, config.location)
    # env_manager="local": the executors use this environment, which already holds the model's requirements.
    predict = mlflow.pyfunc.spark_udf(spark, mlflow_resource.model_uri(version), result_type="double", env_manager="local")
    scored = frame.withColumns(
        {
            "prediction": predict(F.struct(*RAW_FEATURES)),
            "model_name": F.lit(mlflow_resource.model_name),
            "model_version": F.lit(version),
            "model_run_id": F.lit(production.run_id),
            "scored_at": F.lit(datetime.now(UTC)).cast("timestamp"),
        }
    )
    context.log.info(f"scoring {config.location or f'cleaned_housing {cleaned_housing.version}'} with version {version}")
    yield Output(
        scored,
        metadata={
            "model_version": int(version),
            "model_uri": mlflow_resource.model_uri(version),
            "input": config.location or f"cleaned_housing {cleaned_housing.version}",
        },
    )
