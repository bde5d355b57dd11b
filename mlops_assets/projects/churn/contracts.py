"""Churn's Pandera contracts, built from its domain facts with the platform's contract builders.

Raw data is kept as the strings the source had, so its contract is about structure: every column
present, numbers that parse (a blank TotalCharges is allowed: the source writes one for customers in
their first month, and the cleaning repairs it), enough rows, no mostly-empty column. The typed rows
must be plausible customers with known categories and a Yes/No label.
"""

import pandera.pyspark as pa_spark

from mlops_assets.ml.tasks import BinaryTask
from mlops_assets.platform.checks.rules import (
    cleaned_contract,
    evaluation_contract,
    features_contract,
    raw_contract,
    smoke_predictions_contract,
    typed_columns,
)
from mlops_assets.platform.project import Contracts, Domain
from mlops_assets.projects.churn.domain import (
    CATEGORICAL_FEATURES,
    CATEGORIES,
    ID_COLUMN,
    ID_COLUMNS,
    NUMERIC_FEATURES,
    POSITIVE_LABEL,
    SENIOR_CITIZEN,
    TARGET,
    TARGET_CLASSES,
    TOTAL_CHARGES,
    VALUE_RANGES,
)

DOMAIN = Domain(
    target=TARGET,
    numeric_features=NUMERIC_FEATURES,
    categories=CATEGORIES,
    value_ranges=VALUE_RANGES,
    target_classes=TARGET_CLASSES,
    id_columns=ID_COLUMNS,
)
TASK = BinaryTask(positive_label=POSITIVE_LABEL)

_TYPED = {
    **typed_columns(DOMAIN, regression_target=False),
    # A range would let 0.5 through: the flag is exactly 0 or 1.
    SENIOR_CITIZEN: pa_spark.Column("double", pa_spark.Check.isin([0.0, 1.0])),
    ID_COLUMN: pa_spark.Column("string"),
}

CONTRACTS = Contracts(
    raw=raw_contract(
        "churn_raw",
        DOMAIN,
        numeric_columns=NUMERIC_FEATURES,
        text_columns=(ID_COLUMN, *CATEGORICAL_FEATURES, TARGET),
        blank_is_missing=frozenset({TOTAL_CHARGES}),
    ),
    cleaned=cleaned_contract("churn_cleaned", _TYPED),
    features=features_contract("churn_features", _TYPED),
    smoke_predictions=smoke_predictions_contract("churn_trained_model", DOMAIN),
    evaluation=evaluation_contract("churn_model_evaluation", TASK),
)
