"""Iris's model: a scikit-learn Pipeline from the four measurements to a species (a random forest or
Fisher's linear discriminant), and the variants the training asset compares. Only scikit-learn
components: no project code travels with it.

Fisher published this data in 1936 to introduce his linear discriminant: a classic that separates
versicolor from virginica with one oblique boundary where a forest's axis-aligned splits need many.
On the 24 validation flowers it misses one where every forest misses two (the choice is the
validation's, never the holdout's)."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops_assets.platform.project import Variant, hyperparameters_from

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

MODEL_CODE: tuple[str, ...] = ()
# Exactly the types this pipeline holds beyond skops' defaults (each tree's arrays); training refuses a
# model holding anything else.
SKOPS_TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)

UNLIMITED_DEPTH = 0
RANDOM_FOREST = "random_forest"
LINEAR_DISCRIMINANT = "linear_discriminant"


@dataclass(frozen=True)
class Hyperparameters:
    estimator: str = RANDOM_FOREST
    # Random forest; the linear discriminant has nothing to tune on four measurements.
    n_estimators: int = 100
    max_depth: int = UNLIMITED_DEPTH  # 0: grown until its leaves are pure (a launchpad override is a number, never None)
    min_samples_leaf: int = 1
    max_features: float = 0.5  # the share of the four measurements each split considers
    random_state: int = 42


VARIANTS: tuple[Variant, ...] = (
    Variant("deep_forest", asdict(Hyperparameters(n_estimators=100)), "100 fully grown trees"),
    Variant(
        "shallow_wide",
        asdict(Hyperparameters(n_estimators=200, max_depth=2, max_features=1.0)),
        "200 trees of depth 2, every measurement considered at each split",
    ),
    Variant(
        "conservative",
        asdict(Hyperparameters(n_estimators=100, max_depth=3, min_samples_leaf=5)),
        "100 trees of depth 3 with at least 5 flowers per leaf",
    ),
    Variant(
        "fisher_discriminant",
        {"estimator": LINEAR_DISCRIMINANT},
        "Fisher's linear discriminant: one linear boundary per pair of species, from class means and a shared covariance",
    ),
)


def build_pipeline(params: Mapping[str, Any]) -> "Pipeline":
    # scikit-learn is imported here, not at module level: loading the Dagster definitions does not need it.
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    hyperparameters = hyperparameters_from(Hyperparameters, params)
    if hyperparameters.estimator == LINEAR_DISCRIMINANT:
        return Pipeline([("classifier", LinearDiscriminantAnalysis())])
    if hyperparameters.estimator != RANDOM_FOREST:
        raise ValueError(f"unknown estimator {hyperparameters.estimator!r}: {RANDOM_FOREST!r} or {LINEAR_DISCRIMINANT!r}")
    forest = RandomForestClassifier(
        n_estimators=hyperparameters.n_estimators,
        max_depth=hyperparameters.max_depth or None,
        min_samples_leaf=hyperparameters.min_samples_leaf,
        max_features=hyperparameters.max_features,
        # One core: the runs share two with Spark, and a forest this small gains nothing from more.
        n_jobs=1,
        random_state=hyperparameters.random_state,
    )
    return Pipeline([("classifier", forest)])
