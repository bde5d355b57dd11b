"""Spark building blocks every project's transforms share: reading a source as text, a stable row id,
the split of rows into train, validation and holdout, and a cleaning built from the domain alone. Free of Dagster, so that a benchmark's bare
peer and the tests run exactly what the assets run."""

import operator
from collections.abc import Callable
from functools import reduce
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pyspark.sql.functions as F
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame

if TYPE_CHECKING:
    from mlops_assets.platform.project import Domain

# Changing a salt or a share reshuffles the split: models before and after would not be comparable.
HOLDOUT_SALT = "holdout-v1"
HOLDOUT_PERCENT = 20
# Carved from the rows outside the holdout: variants are compared here, never on the holdout.
VALIDATION_SALT = "validation-v1"
VALIDATION_PERCENT = 20
SPLITS = ("train", "validation", "test")
TRAINING_SPLITS = ("train", "validation")

# How every data asset's Parquet is written. Parquet's dictionary pages are tried on every column and
# abandoned on the many-valued ones (numbers, raw text): at 10M housing rows that attempt made the
# writes of raw 26.7 s instead of 20.2, cleaned 31.4 instead of 25.1 and features 34.1 instead of 25.8,
# for files 0 to 22% smaller (zstd does most of that work anyway).
PARQUET_WRITE_OPTIONS = {"parquet.enable.dictionary": "false"}

# What feature formulas written once for numpy and Spark need from Spark (see a project's features).
SPARK_MATH = SimpleNamespace(sqrt=F.sqrt, least=F.least, as_float=lambda column: column.cast("double"))


def read_source_csv(spark, path: str) -> DataFrame:
    # Strings only: a malformed value must reach the raw contract as it was, not as a silent null.
    return spark.read.csv(path, header=True, inferSchema=False)


def row_identity(columns: tuple[str, ...] | list[str]) -> Column:
    """A stable id from the source text of a row: the same row gets the same id on every run and machine."""
    return F.xxhash64(*[F.coalesce(F.trim(F.col(name)), F.lit("")) for name in columns])


def normalised_category(column: str) -> Column:
    """Upper case and single spaces: 'near  bay ' and 'NEAR BAY' are one category."""
    return F.upper(F.regexp_replace(F.trim(F.col(column)), r"\s+", " "))


def _bucket(salt: str, row_id: Column) -> Column:
    return F.pmod(F.xxhash64(F.lit(salt), row_id), F.lit(100))


def split_of(row_id: Column) -> Column:
    """'test' for a fixed 20% of rows chosen by a hash of the row's id, 'validation' for a fixed 20% of
    the rest, 'train' otherwise: stable across runs and machines."""
    return (
        F.when(_bucket(HOLDOUT_SALT, row_id) < HOLDOUT_PERCENT, F.lit("test"))
        .when(_bucket(VALIDATION_SALT, row_id) < VALIDATION_PERCENT, F.lit("validation"))
        .otherwise(F.lit("train"))
    )


def split_description() -> str:
    return (
        f"holdout {HOLDOUT_PERCENT}% by xxhash64('{HOLDOUT_SALT}', row_id); validation {VALIDATION_PERCENT}% "
        f"of the rest by xxhash64('{VALIDATION_SALT}', row_id)"
    )


def parsed_number(column: str) -> Column:
    # Blank means missing: with ANSI casts (Spark 4's default) casting '' would fail the whole job.
    return F.nullif(F.trim(F.col(column)), F.lit("")).cast("double")


def single_spaced(column: str) -> Column:
    return F.regexp_replace(F.trim(F.col(column)), r"\s+", " ")


# Frames kept by Spark for the passes of one asset, until its output is written (`release_kept`).
_kept: list[DataFrame] = []


def kept_until_written(frame: DataFrame) -> DataFrame:
    """`frame` kept by Spark (in memory, spilling to disk) so that its transformation runs once for the
    several passes an asset makes over it, not once per pass. Spark finds it by its plan, so any frame
    built on it reads the kept rows. Released once the asset's output is written (the IO manager calls
    `release_kept`)."""
    # Deserialized, as `DataFrame.cache()` keeps it: the serialized level costs a serialization per
    # pass (cleaning and its write at 10M rows: 32.9 s against 30.7 s).
    _kept.append(frame.persist(StorageLevel.MEMORY_AND_DISK_DESER))
    return frame


def release_kept() -> None:
    while _kept:
        _kept.pop().unpersist()


def counted_rules(typed: DataFrame, rules: dict[str, Column], keep: Column) -> dict[str, int]:
    """How many rows each cleaning rule touched (`rules`: a name and the predicate counted over `typed`),
    `rows_in`, and among the rows `keep` holds, the repeated ones (`duplicate_dropped`) and the rest
    (`rows_out`).

    Two Spark jobs, not one: a distinct count beside the rule counts makes Spark aggregate every rule
    per distinct row (measured at 10M rows: 30 to 35 s, against 25 to 28 s for the two apart). Both,
    and the write of the cleaned rows after them, read `typed` kept: the typing (trims, casts, the row
    hash over the source text) runs once, not three times (at 10M housing rows, cleaning and its write
    took 57 s instead of 71).
    """
    kept_until_written(typed)
    stats = typed.agg(
        F.count(F.lit(1)).alias("rows_in"),
        *[F.count_if(predicate).alias(name) for name, predicate in rules.items()],
        F.count_if(keep).alias("rows_kept"),
    ).first().asDict()
    stats["rows_out"] = typed.filter(keep).select("row_id").distinct().count()
    stats["duplicate_dropped"] = stats.pop("rows_kept") - stats["rows_out"]
    return stats


def without_repeats(cleaned: DataFrame, stats: dict[str, int]) -> DataFrame:
    """`cleaned` without its repeated rows, deduplicating only when `counted_rules` found some: the
    deduplication is a sort-based aggregate over every column, the costliest job of the data assets at
    scale (44 s of 178 at 10M rows)."""
    return cleaned.dropDuplicates(["row_id"]) if stats["duplicate_dropped"] else cleaned


def domain_cleaning(domain: "Domain", source_columns: tuple[str, ...]) -> "Callable[[DataFrame], tuple[DataFrame, dict[str, int]]]":
    """The cleaning every project starts from, for a project that needs no rule of its own: numbers
    parsed (a blank cell is missing), categories and labels single-spaced, rows missing a required value
    dropped, repeated rows dropped, each rule counted in one pass. What no rule can repair (values out
    of range, unknown categories) is left for the contracts to stop."""
    numeric = (*domain.numeric_features, *(() if domain.target_classes else (domain.target,)))
    text = (*domain.categorical_features, *((domain.target,) if domain.target_classes else ()))
    required = [name for name in (*numeric, *text) if name not in domain.optional_features]

    def clean(raw: DataFrame) -> tuple[DataFrame, dict[str, int]]:
        """Rules: numbers parsed (a blank cell is missing); categories and labels single-spaced; rows
        missing a required value dropped; repeated rows dropped."""
        typed = raw.select(
            row_identity(source_columns).alias("row_id"),
            *[parsed_number(name).alias(name) for name in numeric],
            *[single_spaced(name).alias(name) for name in text],
            *[F.col(name).alias(f"_raw_{name}") for name in text],
        )
        missing_required = reduce(operator.or_, [F.col(name).isNull() for name in required])
        respaced = reduce(operator.or_, [F.col(f"_raw_{name}") != F.col(name) for name in text], F.lit(False))
        stats = counted_rules(
            typed,
            {"spacing_normalised": respaced, "missing_required_value_dropped": missing_required},
            keep=~missing_required,
        )
        cleaned = without_repeats(typed.filter(~missing_required).drop(*[f"_raw_{name}" for name in text]), stats)
        return cleaned, stats

    return clean


def split_only(cleaned: DataFrame) -> DataFrame:
    """The cleaned rows as the model takes them, and the split."""
    return cleaned.select("*", split_of(F.col("row_id")).alias("split"))
