"""Watching the production model: drift of its inputs, and batch predictions with it."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyspark.sql.functions as F
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, Config, Failure, Output, asset
from dagster_pyspark import PySparkResource
from pydantic import Field
from pyspark.sql import DataFrame

from mlops_assets.platform.assets.common import SPARK_POOL, ProjectKeys, markdown_table
from mlops_assets.platform.automation.declarative import AFTER_PARENTS
from mlops_assets.platform.automation.drift import DRIFTED, DriftPolicy, FeatureDrift, compare_features
from mlops_assets.platform.project import Domain, ModelProject
from mlops_assets.platform.resources.io_managers import Versioned
from mlops_assets.platform.pipeline_metrics import record_drift
from mlops_assets.platform.resources.mlflow_registry import MlflowResource, wait_for_model_stack
from mlops_assets.platform.transforms import TRAINING_SPLITS

FEATURES_PATH_TAG = "features_path"
LOG_PARTITION = "date"


def training_reference(features_path: str, raw_features: tuple[str, ...]) -> pd.DataFrame:
    """The rows the production model was fit on (Parquet written by Spark; pyarrow skips its `_` and
    `.` bookkeeping files)."""
    if not Path(features_path).exists():
        raise Failure(f"the production model's training data at {features_path} is gone: drift has no reference")
    frame = pd.read_parquet(features_path, columns=[*raw_features, "split"])
    return frame[frame["split"].isin(TRAINING_SPLITS)].drop(columns="split").reset_index(drop=True)


def recent_predictions(folder: Path, days: int, now: datetime, raw_features: tuple[str, ...]) -> pd.DataFrame | None:
    """The raw features of the predictions logged in the last `days` days (all of them when the log is
    not partitioned by date), or None without a prediction log."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not folder.is_dir():
        return None
    dated = any(child.is_dir() and child.name.startswith(f"{LOG_PARTITION}=") for child in folder.iterdir())
    partitioning = ds.partitioning(pa.schema([(LOG_PARTITION, pa.string())]), flavor="hive") if dated else None
    dataset = ds.dataset(folder, format="parquet", partitioning=partitioning, ignore_prefixes=[".", "_"])
    columns = [name for name in raw_features if name in dataset.schema.names]
    if not columns:
        return pd.DataFrame(columns=list(raw_features))
    first_day = (now - timedelta(days=days - 1)).date().isoformat()
    # ISO dates sort as text: the filter prunes whole partitions before any file is opened.
    row_filter = ds.field(LOG_PARTITION) >= first_day if dated else None
    frame = dataset.to_table(columns=columns, filter=row_filter).to_pandas()
    return frame.reindex(columns=list(raw_features))


def _drift_rows(source: str, drifts: list[FeatureDrift]) -> list[dict]:
    return [
        {"source": source, "feature": d.feature, "psi": d.psi, "ks": d.ks, "values": d.current_count, "status": d.status}
        for d in drifts
    ]


class BatchScoringConfig(Config):
    location: str | None = Field(
        default=None,
        description=(
            "A Parquet folder or CSV file to score, with the raw feature columns; "
            "empty means the newest certified cleaned rows of the project."
        ),
    )


def scoring_input(spark, location: str, domain: Domain) -> DataFrame:
    frame = spark.read.csv(location, header=True) if location.lower().endswith(".csv") else spark.read.parquet(location)
    missing = sorted(set(domain.raw_features) - set(frame.columns) - domain.optional_features)
    if missing:
        raise Failure(f"{location} lacks the feature columns {missing}")
    # The optional features may be absent: the model imputes them.
    absent = {name: F.lit(None) for name in domain.optional_features if name not in frame.columns}
    return frame.withColumns(absent).withColumns(
        {
            **{name: F.col(name).cast("double") for name in domain.numeric_features},
            **{name: F.col(name).cast("string") for name in domain.categorical_features},
        }
    )


def build_monitoring_assets(project: ModelProject) -> list[AssetsDefinition]:
    keys = ProjectKeys(project.name)
    domain = project.domain
    owners = list(project.owners)

    @asset(
        key=keys.feature_drift,
        ins={"features": AssetIn(keys.features)},
        group_name=project.name,
        kinds={"pandas", "scipy"},
        owners=owners,
        io_manager_key="json_io_manager",
        deps=[keys.deployment_ledger],
        automation_condition=AFTER_PARENTS,
        output_required=False,
    )
    def feature_drift(
        context: AssetExecutionContext, drift_policy: DriftPolicy, mlflow_resource: MlflowResource, features: Versioned
    ) -> Iterator[Output[dict]]:
        """How far the inputs of the production model have moved from the data it was trained on.

        Two comparisons against the production version's training rows (its `features_path` tag): the
        newest certified features, and the features the serving app was asked for over the last days
        (its prediction log, when there is one). Per raw feature: PSI over the reference's deciles (its
        categories for a categorical feature) and the Kolmogorov-Smirnov statistic; a feature with fewer
        values than the minimum is not judged. Past a threshold, `drifted` is true and the drift
        retraining sensor retrains, at most once per cooldown. Without a production model there is
        nothing to compare, and nothing is materialized.
        """
        production = mlflow_resource.model(project.model_name).aliased_version()
        if production is None or FEATURES_PATH_TAG not in production.tags:
            context.log.warning(f"no production model with a {FEATURES_PATH_TAG} tag: no drift to measure")
            return
        def compare(reference: pd.DataFrame, current: pd.DataFrame) -> list[FeatureDrift]:
            return compare_features(
                reference, current, drift_policy, numeric=domain.numeric_features, categorical=domain.categorical_features
            )

        reference = training_reference(production.tags[FEATURES_PATH_TAG], domain.raw_features)
        newest = features.value.select(*domain.raw_features).toPandas()
        comparisons = {"data": compare(reference, newest)}
        log_folder = Path(drift_policy.prediction_log_dir) / project.model_name
        served = recent_predictions(log_folder, drift_policy.serving_window_days, datetime.now(UTC), domain.raw_features)
        if served is not None:
            comparisons["serving"] = compare(reference, served)
        else:
            context.log.info(f"no prediction log at {log_folder}: serving inputs not compared")

        drifted_features = [f"{source}:{d.feature}" for source, drifts in comparisons.items() for d in drifts if d.status == DRIFTED]
        record = {
            "project": project.name,
            "production_version": str(production.version),
            "reference_path": production.tags[FEATURES_PATH_TAG],
            "reference_rows": len(reference),
            "features_version": features.version,
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
            "features_version": features.version,
            "serving_rows": 0 if served is None else len(served),
            "drift": markdown_table([row for source, drifts in comparisons.items() for row in _drift_rows(source, drifts)]),
        }
        for source, drifts in comparisons.items():
            for d in drifts:
                if d.psi is not None:
                    metadata[f"psi/{source}/{d.feature}"] = d.psi
            record_drift(
                project.name,
                source=source,
                drifts=drifts,
                psi_threshold=drift_policy.psi_threshold,
                ks_threshold=drift_policy.ks_threshold,
            )
        yield Output(record, metadata=metadata)

    @asset(
        key=keys.batch_predictions,
        ins={"cleaned": AssetIn(keys.cleaned)},
        group_name=project.name,
        kinds={"spark", "mlflow", "parquet"},
        owners=owners,
        io_manager_key="spark_parquet_io_manager",
        pool=SPARK_POOL,
        deps=[keys.deployment_ledger],
        automation_condition=AFTER_PARENTS,
        output_required=False,
    )
    def batch_predictions(
        context: AssetExecutionContext,
        config: BatchScoringConfig,
        pyspark: PySparkResource,
        mlflow_resource: MlflowResource,
        cleaned: Versioned,
    ) -> Iterator[Output[DataFrame]]:
        """The production model's prediction for every row of the input (by default the newest cleaned
        rows), scored by Spark through `mlflow.pyfunc.spark_udf`, with the model name, version and
        training run on every row. Without a production model nothing is scored, and nothing is
        materialized."""
        wait_for_model_stack()
        import mlflow.pyfunc

        registry = mlflow_resource.model(project.model_name)
        production = registry.aliased_version()
        if production is None:
            context.log.warning(f"no version holds '{registry.alias}': nothing to score with")
            return
        version = str(production.version)
        spark = pyspark.spark_session
        frame = cleaned.value if config.location is None else scoring_input(spark, config.location, domain)
        # env_manager="local": the executors use this environment, which already holds the model's requirements.
        predict = mlflow.pyfunc.spark_udf(
            spark,
            registry.model_uri(version),
            result_type="double" if project.task.name == "regression" else "string",
            env_manager="local",
        )
        scored = frame.withColumns(
            {
                "prediction": predict(F.struct(*domain.raw_features)),
                "model_name": F.lit(registry.name),
                "model_version": F.lit(version),
                "model_run_id": F.lit(production.run_id),
                "scored_at": F.lit(datetime.now(UTC)).cast("timestamp"),
            }
        )
        source = config.location or f"cleaned {cleaned.version}"
        context.log.info(f"scoring {source} with version {version}")
        yield Output(
            scored,
            metadata={"model_version": int(version), "model_uri": registry.model_uri(version), "input": source},
        )

    return [feature_drift, batch_predictions]
