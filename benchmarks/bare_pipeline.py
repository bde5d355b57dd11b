"""The peer of the orchestrated run: the same Spark and scikit-learn work, without Dagster or MLflow.

Reads the CSV, writes raw, cleaned and feature Parquet, trains the same pipeline on the train split
and scores the holdout, all with the project's own transformation code. Prints one JSON line.
"""

import json
import os
import sys
import tempfile
import time

started = time.perf_counter()

from pyspark.sql import SparkSession  # noqa: E402

from mlops_assets.ml.evaluation import regression_metrics  # noqa: E402
from mlops_assets.ml.housing import RAW_FEATURES, TARGET  # noqa: E402
from mlops_assets.ml.model import Hyperparameters, build_pipeline  # noqa: E402
from mlops_assets.resources.spark import spark_config  # noqa: E402
from mlops_assets.settings import Settings  # noqa: E402
from mlops_assets.transforms import clean, read_source_csv, with_features  # noqa: E402


def main(source: str) -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = SparkSession.builder.config(map=spark_config(Settings.from_env())).getOrCreate()
    with tempfile.TemporaryDirectory() as out:
        read_source_csv(spark, source).write.parquet(f"{out}/raw")
        cleaned, _ = clean(spark.read.parquet(f"{out}/raw"))
        cleaned.write.parquet(f"{out}/cleaned")
        with_features(spark.read.parquet(f"{out}/cleaned")).write.parquet(f"{out}/features")
        features = spark.read.parquet(f"{out}/features").select(*RAW_FEATURES, TARGET, "split").toPandas()
    train, test = features[features.split == "train"], features[features.split == "test"]
    pipeline = build_pipeline(Hyperparameters()).fit(train[list(RAW_FEATURES)], train[TARGET])
    metrics = regression_metrics(test[TARGET].to_numpy(), pipeline.predict(test[list(RAW_FEATURES)]))
    print(json.dumps({"seconds": time.perf_counter() - started, "holdout_rmse": metrics["rmse"]}))


if __name__ == "__main__":
    main(sys.argv[1])
