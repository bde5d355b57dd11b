"""The model: a scikit-learn Pipeline from raw feature columns to a price, and how it is serialised."""

from dataclasses import dataclass

from typing import TYPE_CHECKING

from mlops_assets.ml.features import engineer_features, engineered_feature_names
from mlops_assets.ml.housing import OPTIONAL_FEATURES, RAW_FEATURES

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo
    from sklearn.pipeline import Pipeline

INPUT_EXAMPLE_ROWS = 5

# Exactly the types this pipeline holds beyond skops' defaults; training refuses a model holding anything else.
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "mlops_assets.ml.features.engineer_features",
    "mlops_assets.ml.features.engineered_feature_names",
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


def build_pipeline(params: Hyperparameters) -> "Pipeline":
    # scikit-learn is imported here, not at module level: loading the Dagster definitions does not need it.
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    return Pipeline(
        [
            (
                "features",
                FunctionTransformer(engineer_features, feature_names_out=engineered_feature_names, validate=False),
            ),
            (
                "regressor",
                HistGradientBoostingRegressor(
                    learning_rate=params.learning_rate,
                    max_iter=params.max_iter,
                    max_leaf_nodes=params.max_leaf_nodes,
                    min_samples_leaf=params.min_samples_leaf,
                    l2_regularization=params.l2_regularization,
                    max_features=params.max_features,
                    early_stopping=False,
                    random_state=params.random_state,
                ),
            ),
        ]
    )


def pip_requirements() -> list[str]:
    """What loading the model needs, pinned to this environment. Stated, not inferred: MLflow's
    inference runs `uv export` or imports the model in a subprocess, seconds per logged model. The
    feature step itself comes from the `mlops_assets` package, which the serving app ships."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in ("scikit-learn", "skops", "numpy", "pandas", "scipy")]


def untrusted_types(pipeline: "Pipeline") -> list[str]:
    """What a skops load of `pipeline` would have to trust beyond SKOPS_TRUSTED_TYPES."""
    import skops.io

    return sorted(set(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))) - set(SKOPS_TRUSTED_TYPES))


def model_signature(example: "pd.DataFrame") -> "ModelSignature":
    """Typed raw columns in, one price out; the optional columns are not required."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string" if example[name].dtype == object else "double", name, required=name not in OPTIONAL_FEATURES)
            for name in RAW_FEATURES
        ]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double")]))


def log_housing_model(pipeline: "Pipeline", features: "pd.DataFrame", *, registered_model_name: str) -> "ModelInfo":
    """Log `pipeline` to the active MLflow run and register it: signature, input example (the first
    rows of `features`), the skops trust list and explicit requirements, the same for every version."""
    import mlflow.sklearn

    example = features[list(RAW_FEATURES)].head(INPUT_EXAMPLE_ROWS)
    return mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=model_signature(example),
        input_example=example,
        registered_model_name=registered_model_name,
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        pip_requirements=pip_requirements(),
    )
