"""Housing's Spark transformations: the cleaning rules and the derived features."""

import operator
from functools import reduce

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from mlops_assets.platform.transforms import SPARK_MATH, CleanedRows, counted_rules, normalised_category, row_identity, split_of
from mlops_assets.projects.housing.domain import CATEGORY, NUMERIC_FEATURES, OPTIONAL_FEATURES, SOURCE_COLUMNS, TARGET, TARGET_CAP
from mlops_assets.projects.housing.features import DERIVED_FEATURES, derived_columns

REQUIRED_COLUMNS = [name for name in (*NUMERIC_FEATURES, TARGET, CATEGORY) if name not in OPTIONAL_FEATURES]


def typed_rows(raw: DataFrame) -> DataFrame:
    # Safe casts: the raw contract has already proven every numeric value parses.
    return raw.select(
        row_identity(SOURCE_COLUMNS).alias("row_id"),
        *[F.trim(F.col(name)).cast("double").alias(name) for name in (*NUMERIC_FEATURES, TARGET)],
        F.col(CATEGORY).alias("raw_category"),
        normalised_category(CATEGORY).alias(CATEGORY),
    )


def clean(raw: DataFrame) -> CleanedRows:
    """The cleaned rows, and how many rows each rule touched, counted as they are written.

    Rules: category spelling normalised (case, spaces); rows missing a required value dropped; a
    `total_bedrooms` above `total_rooms` cleared (impossible, so treated as unknown); block groups with
    no rooms, people or households dropped (their ratios are undefined); duplicate rows dropped; capped
    targets flagged. A missing `total_bedrooms` (207 rows in the reference data) is kept as missing: the
    model imputes it, the same way at training and at serving time. Values no rule can repair
    (coordinates outside California, negative counts, unknown categories) are left for the contract.
    """
    typed = typed_rows(raw)
    missing_required = reduce(operator.or_, [F.col(name).isNull() for name in REQUIRED_COLUMNS])
    # Zero, not negative: a negative count is a broken source, for the contract to stop, not a row to drop.
    empty_block_group = (F.col("households") == 0) | (F.col("total_rooms") == 0) | (F.col("population") == 0)
    impossible_bedrooms = F.col("total_bedrooms") > F.col("total_rooms")
    keep = ~missing_required & ~F.coalesce(empty_block_group, F.lit(False))

    kept = counted_rules(
        typed,
        {
            "category_normalised": F.col("raw_category") != F.col(CATEGORY),
            "missing_required_value_dropped": missing_required,
            "empty_block_group_dropped": ~missing_required & empty_block_group,
            "impossible_bedrooms_cleared": keep & impossible_bedrooms,
            "total_bedrooms_missing_kept": keep & F.col("total_bedrooms").isNull(),
            "target_capped_flagged": keep & (F.col(TARGET) >= TARGET_CAP),
        },
        keep,
    )
    return kept.with_frame(
        kept.frame.withColumn("total_bedrooms", F.when(impossible_bedrooms, F.lit(None)).otherwise(F.col("total_bedrooms")))
        .withColumn("target_capped", F.col(TARGET) >= TARGET_CAP)
        .drop("raw_category")
    )


def with_features(cleaned: DataFrame) -> DataFrame:
    """The derived features, from the same formulas the model's pipeline applies (`features.py`), and the split."""
    derived = derived_columns(F.col, SPARK_MATH)
    return cleaned.select(
        "*",
        *[derived[name].alias(name) for name in DERIVED_FEATURES],
        split_of(F.col("row_id")).alias("split"),
    )
