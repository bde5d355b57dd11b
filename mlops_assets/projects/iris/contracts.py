"""Iris's Pandera contracts, built from its domain facts with the platform's contract builders.

Raw data is kept as the strings the source had, so its contract is about structure (columns, numbers
that parse, enough rows, no mostly-empty column). The typed rows must be plausible flowers, in
centimetres, of a known species.
"""

from mlops_assets.ml.tasks import MulticlassTask
from mlops_assets.platform.checks.rules import (
    cleaned_contract,
    evaluation_contract,
    features_contract,
    raw_contract,
    smoke_predictions_contract,
    typed_columns,
)
from mlops_assets.platform.project import Contracts, Domain
from mlops_assets.projects.iris.domain import MIN_ROWS, NUMERIC_FEATURES, TARGET, TARGET_CLASSES, VALUE_RANGES

DOMAIN = Domain(
    target=TARGET,
    numeric_features=NUMERIC_FEATURES,
    categories={},
    value_ranges=VALUE_RANGES,
    target_classes=TARGET_CLASSES,
)
TASK = MulticlassTask()

_TYPED = typed_columns(DOMAIN, regression_target=False)

CONTRACTS = Contracts(
    raw=raw_contract("iris_raw", DOMAIN, numeric_columns=NUMERIC_FEATURES, text_columns=(TARGET,), min_rows=MIN_ROWS),
    cleaned=cleaned_contract("iris_cleaned", _TYPED, min_rows=MIN_ROWS),
    features=features_contract("iris_features", _TYPED, min_rows=MIN_ROWS),
    smoke_predictions=smoke_predictions_contract("iris_trained_model", DOMAIN),
    evaluation=evaluation_contract("iris_model_evaluation", TASK),
)
