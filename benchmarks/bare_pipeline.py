"""The peer of the orchestrated run: the same Spark and scikit-learn work for one project, without
Dagster or MLflow.

Reads the CSV, writes raw, cleaned and feature Parquet with the project's own transforms, fits every
variant on the train split and scores it on the validation split (with its permutation importance),
refits the best on all training rows and evaluates it on the holdout with the project's task, plots
included. Prints one JSON line.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

started = time.perf_counter()

import numpy as np  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from mlops_assets.ml.training import best_variant, fit_variant  # noqa: E402
from mlops_assets.platform.resources.spark import spark_config  # noqa: E402
from mlops_assets.platform.transforms import PARQUET_WRITE_OPTIONS, read_source_csv, write_cleaned  # noqa: E402
from mlops_assets.projects import project_from_module  # noqa: E402
from mlops_assets.settings import Settings  # noqa: E402


def main(project_name: str, source: str) -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    project = project_from_module(f"mlops_assets.projects.{project_name}.project")
    domain, task = project.domain, project.task
    spark = SparkSession.builder.config(map=spark_config(Settings.from_env())).getOrCreate()
    with tempfile.TemporaryDirectory() as out:
        read_source_csv(spark, source).write.options(**PARQUET_WRITE_OPTIONS).parquet(f"{out}/raw")
        write_cleaned(project.clean(spark.read.parquet(f"{out}/raw")), Path(out) / "cleaned")
        project.with_features(spark.read.parquet(f"{out}/cleaned")).write.options(**PARQUET_WRITE_OPTIONS).parquet(f"{out}/features")
        rows = spark.read.parquet(f"{out}/features").select(*domain.raw_features, domain.target, "split").toPandas()
    target = rows[domain.target].to_numpy(dtype=np.float64 if task.name == "regression" else object)
    features = rows[list(domain.raw_features)]
    split = rows["split"].to_numpy()
    train, validation, test = split == "train", split == "validation", split == "test"
    results = [
        fit_variant(v.name, v.params, project.build_model, task, (features[train], target[train]), (features[validation], target[validation]))
        for v in project.variants
    ]
    winner = best_variant(results, task)
    decision = task.choose_decision(winner.model, features[validation], target[validation], project.costs)
    fitted = project.build_model(winner.params).fit(features[~test], target[~test])
    slices = features[test][project.slice_column].to_numpy() if project.slice_column else None
    evaluation = task.evaluate(
        fitted, features[test], target[test], slice_values=slices, decision=decision, costs=project.costs, title="bare"
    )
    print(json.dumps({"seconds": time.perf_counter() - started, "variant": winner.name, f"holdout_{task.primary_metric}": evaluation.metrics[task.primary_metric]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
