"""Iris's Spark transformations: the cleaning rules, and the split (the model takes the raw measurements)."""

import operator
from functools import reduce

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

from mlops_assets.platform.transforms import CleanedRows, counted_rules, parsed_number, row_identity
from mlops_assets.projects.iris.domain import NUMERIC_FEATURES, SOURCE_COLUMNS, SPECIES_PREFIX, TARGET


def normalised_species(column: str) -> Column:
    """Lower case, no surrounding spaces and no 'Iris-' prefix: 'Iris-Setosa ' is 'setosa'."""
    lowered = F.lower(F.trim(F.col(column)))
    return F.when(lowered.startswith(SPECIES_PREFIX), F.substring(lowered, len(SPECIES_PREFIX) + 1, 1_000)).otherwise(lowered)



def typed_rows(raw: DataFrame) -> DataFrame:
    # Safe casts: the raw contract has already proven every numeric value parses.
    return raw.select(
        row_identity(SOURCE_COLUMNS).alias("row_id"),
        *[parsed_number(name).alias(name) for name in NUMERIC_FEATURES],
        F.col(TARGET).alias("raw_species"),
        normalised_species(TARGET).alias(TARGET),
    )


def clean(raw: DataFrame) -> CleanedRows:
    """The cleaned rows, and how many rows each rule touched, counted as they are written.

    Rules: species spelling normalised (case, spaces, UCI's 'Iris-' prefix); rows missing a
    measurement or the species dropped; repeated rows dropped (the reference data has one: two
    virginica measured alike, which a model would otherwise weigh twice). Values no rule can repair
    (negative or implausible measurements, unknown species) are left for the contract.
    """
    typed = typed_rows(raw)
    missing_required = reduce(operator.or_, [F.col(name).isNull() for name in SOURCE_COLUMNS])
    keep = ~missing_required

    kept = counted_rules(
        typed,
        {"species_spelling_normalised": F.col("raw_species") != F.col(TARGET), "missing_required_value_dropped": missing_required},
        keep,
    )
    return kept.with_frame(kept.frame.drop("raw_species"))
