"""The Pandera contracts of the flow, one per asset, built from the domain facts in `ml.housing`.

Raw data is kept as the strings the source had, so its contract is about structure (columns, numbers
that parse, enough rows, no mostly-empty column). The typed data must be plausible California block
groups. Rows the cleaning rules can repair are repaired there; a batch that breaks these contracts is
broken as a whole and stops here.
"""

import pandera.pandas as pa
import pandera.pyspark as pa_spark
import pyspark.sql.functions as F

from mlops_assets.ml.features import DERIVED_FEATURES, category_column_name
from mlops_assets.ml.housing import (
    CATEGORY,
    NUMERIC_FEATURES,
    OCEAN_PROXIMITY_CATEGORIES,
    OPTIONAL_FEATURES,
    SOURCE_COLUMNS,
    TARGET,
    VALUE_RANGES,
)

NUMBER_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
MAX_NULL_FRACTION = 0.05
# A few repeated rows are dropped by the cleaning; beyond this share the export itself is broken.
MAX_DUPLICATE_FRACTION = 0.01
MIN_ROWS = 100
TEST_FRACTION_BOUNDS = (0.1, 0.3)


def _null_fraction_at_most(data, max_fraction: float) -> bool:
    stats = data.dataframe.agg(
        F.count(F.lit(1)).alias("rows"), F.count_if(F.col(data.column_name).isNull()).alias("nulls")
    ).first()
    return stats.rows == 0 or stats.nulls / stats.rows <= max_fraction


def null_fraction_at_most(max_fraction: float) -> pa_spark.Check:
    return pa_spark.Check(
        _null_fraction_at_most,
        name="null_fraction_at_most",
        error=f"null_fraction_at_most({max_fraction})",
        max_fraction=max_fraction,
    )


def _row_count_at_least(frame, min_rows: int) -> bool:
    return frame.limit(min_rows).count() >= min_rows


def row_count_at_least(min_rows: int) -> pa_spark.Check:
    return pa_spark.Check(
        _row_count_at_least, name="row_count_at_least", error=f"row_count_at_least({min_rows})", min_rows=min_rows
    )


def _duplicate_fraction_at_most(frame, max_fraction: float) -> bool:
    # Rows compared by a hash of every column: one long per row to count, not ten strings.
    stats = frame.agg(
        F.count(F.lit(1)).alias("rows"), F.count_distinct(F.xxhash64(*frame.columns)).alias("distinct")
    ).first()
    return stats.rows == 0 or (stats.rows - stats.distinct) / stats.rows <= max_fraction


def duplicate_fraction_at_most(max_fraction: float) -> pa_spark.Check:
    return pa_spark.Check(
        _duplicate_fraction_at_most,
        name="duplicate_fraction_at_most",
        error=f"duplicate_fraction_at_most({max_fraction})",
        max_fraction=max_fraction,
    )


def _test_fraction_within(frame, low: float, high: float) -> bool:
    stats = frame.agg(F.count(F.lit(1)).alias("rows"), F.count_if(F.col("split") == "test").alias("test")).first()
    return stats.rows > 0 and low <= stats.test / stats.rows <= high


def _in_range(name: str) -> pa_spark.Check:
    value_range = VALUE_RANGES[name]
    return pa_spark.Check.in_range(value_range.min, value_range.max)


RAW_HOUSING = pa_spark.DataFrameSchema(
    {
        **{
            name: pa_spark.Column(
                "string",
                [pa_spark.Check.str_matches(NUMBER_PATTERN), null_fraction_at_most(MAX_NULL_FRACTION)],
                nullable=True,
            )
            for name in (*NUMERIC_FEATURES, TARGET)
        },
        CATEGORY: pa_spark.Column("string", null_fraction_at_most(MAX_NULL_FRACTION), nullable=True),
    },
    checks=[row_count_at_least(MIN_ROWS), duplicate_fraction_at_most(MAX_DUPLICATE_FRACTION)],
    name="raw_housing",
    description=(
        "Every source column is present, numbers parse, no column is mostly empty, few rows repeat, and there are rows."
    ),
)

_TYPED_COLUMNS = {
    **{
        name: pa_spark.Column(
            "double",
            [_in_range(name), *([null_fraction_at_most(MAX_NULL_FRACTION)] if name in OPTIONAL_FEATURES else [])],
            nullable=name in OPTIONAL_FEATURES,
        )
        for name in (*NUMERIC_FEATURES, TARGET)
    },
    CATEGORY: pa_spark.Column("string", pa_spark.Check.isin(list(OCEAN_PROXIMITY_CATEGORIES))),
    "row_id": pa_spark.Column("long"),
    "target_capped": pa_spark.Column("bool"),
}

CLEANED_HOUSING = pa_spark.DataFrameSchema(
    _TYPED_COLUMNS,
    checks=[row_count_at_least(MIN_ROWS)],
    name="cleaned_housing",
    description="Typed rows inside California's plausible ranges, known categories, targets present.",
)

_ONE_HOT = {category_column_name(category) for category in OCEAN_PROXIMITY_CATEGORIES}

HOUSING_FEATURES = pa_spark.DataFrameSchema(
    {
        **_TYPED_COLUMNS,
        **{
            name: pa_spark.Column(
                "double",
                pa_spark.Check.isin([0.0, 1.0]) if name in _ONE_HOT else pa_spark.Check.ge(0.0) if "distance" in name else [],
                nullable=name == "bedrooms_per_room",
            )
            for name in DERIVED_FEATURES
        },
        "split": pa_spark.Column("string", pa_spark.Check.isin(["train", "test"])),
    },
    checks=[
        row_count_at_least(MIN_ROWS),
        pa_spark.Check(
            _test_fraction_within,
            name="test_fraction_within",
            error=f"test_fraction_within{TEST_FRACTION_BOUNDS}",
            low=TEST_FRACTION_BOUNDS[0],
            high=TEST_FRACTION_BOUNDS[1],
        ),
    ],
    name="housing_features",
    description="Every model feature present and finite where defined, and a holdout of sane size.",
)

MODEL_SMOKE_PREDICTIONS = pa.DataFrameSchema(
    {"prediction": pa.Column(float, pa.Check.in_range(1_000.0, 2_000_000.0))},
    checks=pa.Check(lambda frame: len(frame) > 0, error="at least one prediction"),
    name="trained_model",
    description="The registered model loads from the registry and predicts plausible prices for its input example.",
)

EVALUATION_METRICS = pa.DataFrameSchema(
    {
        "slice": pa.Column(str, unique=True),
        "rows": pa.Column(int, pa.Check.gt(0)),
        "rmse": pa.Column(float, [pa.Check.gt(0.0), pa.Check.lt(1e7)]),
        "mae": pa.Column(float, [pa.Check.gt(0.0), pa.Check.lt(1e7)]),
        "r2": pa.Column(float, pa.Check.le(1.0), nullable=True),
    },
    checks=pa.Check(lambda frame: (frame["slice"] == "overall").any(), error="has an 'overall' row"),
    name="model_evaluation",
    description="Holdout metrics are finite and present for the whole holdout and each slice.",
)
