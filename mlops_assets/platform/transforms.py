"""Spark building blocks every project's transforms share: reading a source as text, a stable row id,
the split of rows into train, validation and holdout, the cleaning's counts and its write, and a cleaning
built from the domain alone. Free of Dagster, so that a benchmark's bare peer and the tests run exactly
what the assets run."""

import dataclasses
import operator
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Observation

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


@dataclass(frozen=True)
class CleanedRows:
    """A cleaning's rows on their way to be written, and the counts Spark takes of them in the write's own
    pass (an `Observation`): the rows in, the rows each cleaning rule touched, the rows kept. Written by
    `write_cleaned`, which also drops repeated rows."""

    frame: DataFrame
    observation: Observation

    def with_frame(self, frame: DataFrame) -> "CleanedRows":
        """The same counting, for the kept rows as the project finishes them (its repairs, dropped helper columns)."""
        return dataclasses.replace(self, frame=frame)


def counted_rules(typed: DataFrame, rules: dict[str, Column], keep: Column) -> CleanedRows:
    """The rows of `typed` that `keep` holds, counted on their way out: `rows_in`, how many rows each
    cleaning rule touched (`rules`: a name and the predicate counted over `typed`), and the rows kept.

    Counted while the cleaned rows are written, not in passes of their own: a pass of its own computed
    the typing (trims, casts, the row hash) again, or needed the typed rows kept in memory for the write
    (at 10M housing rows, cleaning and its write took 31 to 38 s that way, 22 to 25 s this way).
    """
    observation = Observation()
    observed = typed.observe(
        observation,
        F.count(F.lit(1)).alias("rows_in"),
        *[F.count_if(predicate).alias(name) for name, predicate in rules.items()],
        F.count_if(keep).alias("rows_kept"),
    )
    return CleanedRows(observed.filter(keep), observation)


def write_cleaned(rows: CleanedRows, path: Path) -> dict[str, int]:
    """Write the cleaned rows to `path` as Parquet, without repeated rows (the same `row_id`), and return
    the cleaning's counts: `rows_in`, one per rule, the repeated rows dropped (`duplicate_dropped`) and
    `rows_out`.

    Repeats are looked for in the written ids, one column read back, and only when there are some are
    the rows written again without them: finding them before the write cost another pass of the typing,
    and dropping them is a sort over every column (44 s of 178 at 10M rows), for a source that mostly
    has none.
    """
    rows.frame.write.options(**PARQUET_WRITE_OPTIONS).parquet(str(path))
    counts = dict(rows.observation.get)
    written = rows.frame.sparkSession.read.parquet(str(path))
    distinct = written.select("row_id").distinct().count()
    if distinct < counts["rows_kept"]:
        unique = path.with_name(f"{path.name}.unique")
        written.dropDuplicates(["row_id"]).write.options(**PARQUET_WRITE_OPTIONS).parquet(str(unique))
        shutil.rmtree(path)
        unique.rename(path)
    counts["rows_out"] = distinct
    counts["duplicate_dropped"] = counts.pop("rows_kept") - distinct
    return counts


def domain_cleaning(domain: "Domain", source_columns: tuple[str, ...]) -> "Callable[[DataFrame], CleanedRows]":
    """The cleaning every project starts from, for a project that needs no rule of its own: numbers
    parsed (a blank cell is missing), categories and labels single-spaced, rows missing a required value
    dropped, repeated rows dropped, each rule counted while the rows are written. What no rule can
    repair (values out of range, unknown categories) is left for the contracts to stop."""
    numeric = (*domain.numeric_features, *(() if domain.target_classes else (domain.target,)))
    text = (*domain.categorical_features, *((domain.target,) if domain.target_classes else ()))
    required = [name for name in (*numeric, *text) if name not in domain.optional_features]

    def clean(raw: DataFrame) -> CleanedRows:
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
        kept = counted_rules(
            typed,
            {"spacing_normalised": respaced, "missing_required_value_dropped": missing_required},
            keep=~missing_required,
        )
        return kept.with_frame(kept.frame.drop(*[f"_raw_{name}" for name in text]))

    return clean


def split_only(cleaned: DataFrame) -> DataFrame:
    """The cleaned rows as the model takes them, and the split."""
    return cleaned.select("*", split_of(F.col("row_id")).alias("split"))
