"""The Spark transformations of the data assets, free of Dagster so that the benchmark's bare peer
and the tests run exactly the code the assets run."""

import operator
from functools import reduce
from types import SimpleNamespace

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

from mlops_assets.ml.features import DERIVED_FEATURES, derived_columns
from mlops_assets.ml.housing import CATEGORY, NUMERIC_FEATURES, OPTIONAL_FEATURES, SOURCE_COLUMNS, TARGET, TARGET_CAP

REQUIRED_COLUMNS = [name for name in (*NUMERIC_FEATURES, TARGET, CATEGORY) if name not in OPTIONAL_FEATURES]
# Changing the salt or the share reshuffles the holdout: models before and after would not be comparable.
HOLDOUT_SALT = "holdout-v1"
HOLDOUT_PERCENT = 20
SPARK_MATH = SimpleNamespace(sqrt=F.sqrt, least=F.least, as_float=lambda column: column.cast("double"))


def read_source_csv(spark, path: str) -> DataFrame:
    # Strings only: a malformed value must reach the raw contract as it was, not as a silent null.
    return spark.read.csv(path, header=True, inferSchema=False)


def row_identity() -> Column:
    """A stable id from the source text of a row: the same row gets the same id on every run and machine."""
    return F.xxhash64(*[F.coalesce(F.trim(F.col(name)), F.lit("")) for name in SOURCE_COLUMNS])


def typed_rows(raw: DataFrame) -> DataFrame:
    # Safe casts: the raw contract has already proven every numeric value parses.
    return raw.select(
        row_identity().alias("row_id"),
        *[F.trim(F.col(name)).cast("double").alias(name) for name in (*NUMERIC_FEATURES, TARGET)],
        F.col(CATEGORY).alias("raw_category"),
        F.upper(F.regexp_replace(F.trim(F.col(CATEGORY)), r"\s+", " ")).alias(CATEGORY),
    )


def clean(raw: DataFrame) -> tuple[DataFrame, dict[str, int]]:
    """The cleaned rows and, from one pass over the data, how many rows each rule touched."""
    typed = typed_rows(raw)
    missing_required = reduce(operator.or_, [F.col(name).isNull() for name in REQUIRED_COLUMNS])
    # Zero, not negative: a negative count is a broken source, for the contract to stop, not a row to drop.
    empty_block_group = (F.col("households") == 0) | (F.col("total_rooms") == 0) | (F.col("population") == 0)
    impossible_bedrooms = F.col("total_bedrooms") > F.col("total_rooms")
    keep = ~missing_required & ~F.coalesce(empty_block_group, F.lit(False))

    stats = typed.agg(
        F.count(F.lit(1)).alias("rows_in"),
        F.count_if(F.col("raw_category") != F.col(CATEGORY)).alias("category_normalised"),
        F.count_if(missing_required).alias("missing_required_value_dropped"),
        F.count_if(~missing_required & empty_block_group).alias("empty_block_group_dropped"),
        F.count_if(keep & impossible_bedrooms).alias("impossible_bedrooms_cleared"),
        F.count_if(keep & F.col("total_bedrooms").isNull()).alias("total_bedrooms_missing_kept"),
        F.count_if(keep & (F.col(TARGET) >= TARGET_CAP)).alias("target_capped_flagged"),
        F.count_if(keep).alias("rows_kept"),
        F.count_distinct(F.when(keep, F.col("row_id"))).alias("rows_out"),
    ).first().asDict()
    stats["duplicate_dropped"] = stats.pop("rows_kept") - stats["rows_out"]

    cleaned = (
        typed.filter(keep)
        .withColumn("total_bedrooms", F.when(impossible_bedrooms, F.lit(None)).otherwise(F.col("total_bedrooms")))
        .withColumn("target_capped", F.col(TARGET) >= TARGET_CAP)
        .drop("raw_category")
        .dropDuplicates(["row_id"])
    )
    return cleaned, stats


def holdout_split(row_id: Column) -> Column:
    """'test' for a fixed 20% of rows chosen by a hash of the row's id: stable across runs and machines."""
    bucket = F.pmod(F.xxhash64(F.lit(HOLDOUT_SALT), row_id), F.lit(100))
    return F.when(bucket < HOLDOUT_PERCENT, F.lit("test")).otherwise(F.lit("train"))


def with_features(cleaned: DataFrame) -> DataFrame:
    derived = derived_columns(F.col, SPARK_MATH)
    return cleaned.select(
        "*",
        *[derived[name].alias(name) for name in DERIVED_FEATURES],
        holdout_split(F.col("row_id")).alias("split"),
    )
