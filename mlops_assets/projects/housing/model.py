"""Housing's model: a scikit-learn Pipeline from raw feature columns to a price (the feature formulas,
then gradient-boosted trees), and the variants the training asset compares."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.platform.project import Variant, hyperparameters_from
from mlops_assets.projects.housing.features import engineer_features, engineered_feature_names

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# Imported by the pipeline at load time: they travel with every logged model.
MODEL_CODE: tuple[str, ...] = ("mlops_assets.projects.housing.features", "mlops_assets.projects.housing.domain")
# Exactly the types this pipeline holds beyond skops' defaults; training refuses a model holding anything else.
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "mlops_assets.projects.housing.features.engineer_features",
    "mlops_assets.projects.housing.features.engineered_feature_names",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


@dataclass(frozen=True)
class Hyperparameters:
    learning_rate: float = 0.12
    max_iter: int = 200
    max_leaf_nodes: int = 63
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0
    max_features: float = 0.3
    random_state: int = 42


VARIANTS: tuple[Variant, ...] = (
    Variant("boosted_trees", asdict(Hyperparameters()), "200 trees of 63 leaves, 30% of features per split"),
    Variant(
        "small_trees",
        asdict(Hyperparameters(learning_rate=0.15, max_iter=150, max_leaf_nodes=31, max_features=0.5)),
        "150 trees of 31 leaves, 50% of features per split: half the cost",
    ),
)


def build_pipeline(params: "Mapping[str, Any] | Hyperparameters") -> "Pipeline":
    # scikit-learn is imported here, not at module level: loading the Dagster definitions does not need it.
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    hyperparameters = params if isinstance(params, Hyperparameters) else hyperparameters_from(Hyperparameters, params)
    return Pipeline(
        [
            ("features", FunctionTransformer(engineer_features, feature_names_out=engineered_feature_names, validate=False)),
            (
                "regressor",
                HistGradientBoostingRegressor(
                    learning_rate=hyperparameters.learning_rate,
                    max_iter=hyperparameters.max_iter,
                    max_leaf_nodes=hyperparameters.max_leaf_nodes,
                    min_samples_leaf=hyperparameters.min_samples_leaf,
                    l2_regularization=hyperparameters.l2_regularization,
                    max_features=hyperparameters.max_features,
                    early_stopping=False,
                    random_state=hyperparameters.random_state,
                ),
            ),
        ]
    )
