"""Housing's Pandera contracts, built from its domain facts with the platform's contract builders.

Raw data is kept as the strings the source had, so its contract is about structure (columns, numbers
that parse, enough rows, no mostly-empty column). The typed data must be plausible California block
groups. Rows the cleaning rules can repair are repaired there; a batch that breaks these contracts is
broken as a whole and stops here.
"""

import pandera.pyspark as pa_spark

from mlops_assets.ml.tasks import RegressionTask
from mlops_assets.platform.checks.rules import (
    cleaned_contract,
    evaluation_contract,
    features_contract,
    raw_contract,
    smoke_predictions_contract,
    typed_columns,
)
from mlops_assets.platform.project import Contracts, Domain
from mlops_assets.projects.housing.domain import (
    CATEGORY,
    NUMERIC_FEATURES,
    OCEAN_PROXIMITY_CATEGORIES,
    OPTIONAL_FEATURES,
    TARGET,
    VALUE_RANGES,
)
from mlops_assets.projects.housing.features import DERIVED_FEATURES, category_column_name

DOMAIN = Domain(
    target=TARGET,
    numeric_features=NUMERIC_FEATURES,
    categories={CATEGORY: OCEAN_PROXIMITY_CATEGORIES},
    value_ranges=VALUE_RANGES,
    optional_features=OPTIONAL_FEATURES,
)
TASK = RegressionTask()

_TYPED = {**typed_columns(DOMAIN, regression_target=True), "target_capped": pa_spark.Column("bool")}
_ONE_HOT = {category_column_name(category) for category in OCEAN_PROXIMITY_CATEGORIES}


def _derived_column(name: str) -> pa_spark.Column:
    checks = pa_spark.Check.isin([0.0, 1.0]) if name in _ONE_HOT else pa_spark.Check.ge(0.0) if "distance" in name else []
    # Undefined exactly where the optional total_bedrooms is missing.
    return pa_spark.Column("double", checks, nullable=name == "bedrooms_per_room")


CONTRACTS = Contracts(
    raw=raw_contract("housing_raw", DOMAIN, numeric_columns=(*NUMERIC_FEATURES, TARGET), text_columns=(CATEGORY,)),
    cleaned=cleaned_contract("housing_cleaned", _TYPED),
    features=features_contract("housing_features", {**_TYPED, **{name: _derived_column(name) for name in DERIVED_FEATURES}}),
    # Wider than the target's range: a sane model may extrapolate a little, a broken one does not stay near it.
    smoke_predictions=smoke_predictions_contract("housing_trained_model", DOMAIN, plausible=(1_000.0, 2_000_000.0)),
    evaluation=evaluation_contract("housing_model_evaluation", TASK),
)
