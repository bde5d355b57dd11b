"""The Spark session every data asset shares: dagster-pyspark's `PySparkResource`, configured by settings."""

import os

from dagster_pyspark import PySparkResource

from mlops_assets.settings import Settings


def spark_config(settings: Settings) -> dict[str, str]:
    master = settings.spark_master
    config = {
        "spark.app.name": "mlops-assets",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # The reference data is 20k rows: a few shuffle partitions, not 200 near-empty tasks.
        "spark.sql.shuffle.partitions": os.environ.get("MLOPS_SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.parquet.compression.codec": "zstd",
    }
    if master.startswith("sc://"):
        config["spark.remote"] = master
    else:
        config["spark.master"] = master
        config["spark.driver.memory"] = settings.spark_driver_memory
    return config


def build_pyspark_resource(settings: Settings) -> PySparkResource:
    if settings.spark_master.startswith("local"):
        # Without it Spark warns that the hostname resolves to a loopback address and may pick another interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return PySparkResource(spark_config=spark_config(settings))
