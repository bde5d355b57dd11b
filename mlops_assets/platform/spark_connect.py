"""The warm Spark runtime: a local Spark Connect server that outlives the runs it serves.

Every run of the data assets used to start a JVM and a SparkSession of its own (8 to 17 s here before
the first row). `mlops-assets up` and `mlops-assets dev` start this server once, beside the Dagster
daemon, and hand its address to every run they launch (MLOPS_SPARK_WARM_RUNTIME); a run connects in
about a second (`mlops_assets.platform.resources.spark.WarmSparkResource`). The server is the same
local Spark a run would start itself (`local[*]`, the same configuration), run by the `spark-submit`
that pyspark ships, with the server class that its `sbin/start-connect-server.sh` starts, in the
foreground so that a supervisor watches and restarts it.
"""

import os
import sys

from pyspark.find_spark_home import _find_spark_home

from mlops_assets.platform.resources.spark import SPARK_CONNECT_PORT, spark_config
from mlops_assets.settings import Settings

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = SPARK_CONNECT_PORT
VARIABLE = "MLOPS_SPARK_WARM_RUNTIME"


def warm_runtime_address(port: int, host: str = "127.0.0.1") -> str:
    return f"sc://{host}:{port}"


def server_command(settings: Settings, port: int, host: str = "127.0.0.1") -> list[str]:
    """`spark-submit` running the Spark Connect server on `host:port` with the runs' own Spark configuration."""
    if not settings.spark_master.startswith("local"):
        raise ValueError(f"a warm runtime stands in for local Spark, not for the configured master {settings.spark_master}")
    config = spark_config(settings)
    command = [
        os.path.join(_find_spark_home(), "bin", "spark-submit"),
        "--class", SERVER_CLASS,
        "--name", "mlops-assets warm Spark",
        "--master", config.pop("spark.master"),
        "--driver-memory", config.pop("spark.driver.memory"),
    ]  # fmt: skip
    config.pop("spark.app.name")
    config |= {"spark.connect.grpc.binding.address": host, "spark.connect.grpc.binding.port": str(port)}
    for key, value in config.items():
        command += ["--conf", f"{key}={value}"]
    return command


def server_environment() -> dict[str, str]:
    # Python UDFs (the batch scoring's model) run in workers the server starts: this environment's Python.
    return {"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")}

