"""The Spark session every data asset shares: dagster-pyspark's `PySparkResource`, configured by settings.

By default a run starts Spark in its own process (`local[*]`): a JVM and a SparkSession, 8 to 17 s
before the first row is read. With a warm runtime (MLOPS_SPARK_WARM_RUNTIME, a local Spark Connect
server that `mlops-assets up` and `mlops-assets dev` keep running, see `mlops_assets.platform.spark_connect`)
a run connects to it instead and pays about a second. A warm runtime that does not answer (stopped,
restarting after a crash) is not waited for: the run starts Spark in-process as without one, and the
data it writes is the same.
"""

import os
from typing import Any

from dagster import InitResourceContext, get_dagster_logger
from dagster_pyspark import PySparkResource
from pyspark.sql import SparkSession

from mlops_assets.platform.services import listens
from mlops_assets.settings import Settings

# Settings of the session, not of the JVM: a Spark Connect session applies them to itself.
SESSION_CONFIG_KEYS = (
    "spark.sql.shuffle.partitions",
    "spark.sql.session.timeZone",
    "spark.sql.execution.arrow.pyspark.enabled",
    "spark.sql.parquet.compression.codec",
)


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


# Spark Connect's own default port.
SPARK_CONNECT_PORT = 15002


def answers(address: str, timeout: float = 1.0) -> bool:
    """Whether something listens at a Spark Connect address (`sc://host:port`)."""
    return listens(address, default_port=SPARK_CONNECT_PORT, timeout=timeout)


class WarmSparkResource(PySparkResource):
    """`PySparkResource` that connects to a warm Spark Connect runtime when one answers, and starts
    Spark in-process from `spark_config` when none is configured or it does not answer."""

    warm_runtime: str | None = None

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if self.warm_runtime and answers(self.warm_runtime):
            self._spark_session = self._connect(self.warm_runtime)
            get_dagster_logger().info(f"Spark: the warm runtime at {self.warm_runtime}")
            return
        if self.warm_runtime:
            get_dagster_logger().warning(
                f"the warm Spark runtime at {self.warm_runtime} does not answer: starting Spark in this process"
            )
        super().setup_for_execution(context)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        # A run's Connect session would otherwise hold its state on the server until it times out.
        if self._spark_session is not None and type(self._spark_session).__module__.startswith("pyspark.sql.connect"):
            self._spark_session.stop()

    def _connect(self, address: str) -> Any:
        builder = SparkSession.builder.remote(address)
        for key in SESSION_CONFIG_KEYS:
            if key in self.spark_config:
                builder = builder.config(key, self.spark_config[key])
        return builder.getOrCreate()


def build_pyspark_resource(settings: Settings) -> PySparkResource:
    if settings.spark_master.startswith("local"):
        # Without it Spark warns that the hostname resolves to a loopback address and may pick another interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # The warm runtime replaces the in-process default only: an explicit cluster stays the cluster.
        return WarmSparkResource(spark_config=spark_config(settings), warm_runtime=settings.spark_warm_runtime)
    return PySparkResource(spark_config=spark_config(settings))
