"""Churn's Spark transformations: the cleaning rules, and the split (the model takes the raw columns)."""

import operator
from functools import reduce

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

from mlops_assets.platform.transforms import CleanedRows, counted_rules, parsed_number, row_identity, single_spaced
from mlops_assets.projects.churn.domain import (
    CATEGORIES,
    ID_COLUMN,
    NUMERIC_FEATURES,
    SOURCE_COLUMNS,
    TARGET,
    TARGET_CLASSES,
    TOTAL_CHARGES,
)

# Every column but TotalCharges, whose blank the cleaning repairs.
REQUIRED_COLUMNS: tuple[str, ...] = tuple(name for name in SOURCE_COLUMNS if name != TOTAL_CHARGES)
SPELLED_COLUMNS: dict[str, tuple[str, ...]] = {**CATEGORIES, TARGET: TARGET_CLASSES}


def known_spelling(column: str, values: tuple[str, ...]) -> Column:
    """The source's own spelling of a value written in another case or spacing ('fiber  OPTIC' ->
    'Fiber optic'); an unknown value is kept as written, for the contract to name it."""
    # Unlike housing's categories, these are mixed case: upper-casing would turn every value into a new one.
    spellings = F.create_map(*[F.lit(part) for value in values for part in (value.lower(), value)])
    return F.coalesce(spellings[F.lower(single_spaced(column))], single_spaced(column))



def typed_rows(raw: DataFrame) -> DataFrame:
    # Safe casts: the raw contract has already proven every numeric value parses or is blank.
    respelled = [F.coalesce(F.col(name) != known_spelling(name, values), F.lit(False)) for name, values in SPELLED_COLUMNS.items()]
    return raw.select(
        row_identity(SOURCE_COLUMNS).alias("row_id"),
        F.trim(F.col(ID_COLUMN)).alias(ID_COLUMN),
        *[parsed_number(name).alias(name) for name in NUMERIC_FEATURES],
        *[known_spelling(name, values).alias(name) for name, values in SPELLED_COLUMNS.items()],
        reduce(operator.or_, respelled).alias("respelled"),
    )


def clean(raw: DataFrame) -> CleanedRows:
    """The cleaned rows, and how many rows each rule touched, counted as they are written.

    Rules: categories and the label mapped onto the source's spelling (case, spaces); rows missing any
    other value dropped; a missing `TotalCharges` repaired as `MonthlyCharges * tenure` (the source
    leaves it blank for customers in their first month, tenure 0, who have been billed nothing yet: 11
    rows of the reference data, repaired to 0; for a longer tenure it is an estimate); repeated rows
    (the same customer with the same values) dropped. `customerID` is kept to identify a row, never as
    a feature. Values no rule can repair (unknown categories, labels other than Yes/No, charges out of
    range) are left for the contract.
    """
    typed = typed_rows(raw)
    missing_required = reduce(operator.or_, [F.col(name).isNull() for name in REQUIRED_COLUMNS])
    keep = ~missing_required
    missing_total_charges = F.col(TOTAL_CHARGES).isNull()

    kept = counted_rules(
        typed,
        {
            "category_spelling_normalised": F.col("respelled"),
            "missing_required_value_dropped": missing_required,
            "total_charges_missing_repaired": keep & missing_total_charges,
        },
        keep,
    )
    return kept.with_frame(
        kept.frame.withColumn(TOTAL_CHARGES, F.coalesce(F.col(TOTAL_CHARGES), F.col("MonthlyCharges") * F.col("tenure"))).drop("respelled")
    )
