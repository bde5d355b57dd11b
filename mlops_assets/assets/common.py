"""What the assets share: groups, owners and the concurrency pool of Spark steps."""

from functools import partial

from dagster import Backoff, MetadataValue, RetryPolicy, asset

DATA_GROUP = "housing_data"
MODEL_GROUP = "housing_model"
OWNERS = ["team:mlops"]
# Two Spark-heavy steps on two cores only slow each other down: dagster.yaml limits this pool to one.
SPARK_POOL = "spark"

# A Spark step can fail for reasons of the moment (an executor lost, a worker restarting): it is
# retried in its run. A retry writes a new version folder; the half-written one is never read.
SPARK_RETRY_POLICY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)

# Every Spark data asset: versioned Parquet through the IO manager, in the `spark` pool, retried.
spark_data_asset = partial(
    asset,
    group_name=DATA_GROUP,
    kinds={"spark", "parquet"},
    owners=OWNERS,
    io_manager_key="spark_parquet_io_manager",
    pool=SPARK_POOL,
    retry_policy=SPARK_RETRY_POLICY,
)


def markdown_table(rows: list[dict[str, object]]) -> MetadataValue:
    if not rows:
        return MetadataValue.md("(no rows)")
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return MetadataValue.md("\n".join(lines))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "" if value is None else str(value).replace("|", "\\|")
