"""How a project's model is logged: the same signature, example, requirements, trust list and shipped
code for every version, whether the pipeline or a test logs it."""

from typing import TYPE_CHECKING

from mlops_assets.ml.artifacts import log_sklearn_model
from mlops_assets.platform.project import Domain, ModelProject

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo
    from sklearn.pipeline import Pipeline

INPUT_EXAMPLE_ROWS = 5


def model_signature(domain: Domain, *, regression: bool) -> "ModelSignature":
    """Typed raw columns in (the optional ones not required), a value or a label out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [ColSpec("double", name, required=name not in domain.optional_features) for name in domain.numeric_features]
        + [ColSpec("string", name, required=name not in domain.optional_features) for name in domain.categorical_features]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double" if regression else "string")]))


def log_project_model(
    project: ModelProject, pipeline: "Pipeline", features: "pd.DataFrame", *, registered_model_name: str | None
) -> "ModelInfo":
    """Log `pipeline` to the active MLflow run (and register it): its input example is the first rows of
    `features`; the project's feature code travels with it, so it loads wherever its requirements do."""
    example = features[list(project.domain.raw_features)].head(INPUT_EXAMPLE_ROWS)
    return log_sklearn_model(
        pipeline,
        example,
        signature=model_signature(project.domain, regression=project.task.name == "regression"),
        registered_model_name=registered_model_name,
        code_modules=project.model_code,
        skops_trusted_types=project.skops_trusted_types,
    )


def untrusted_types(project: ModelProject, pipeline: "Pipeline") -> list[str]:
    """What a skops load of `pipeline` would have to trust beyond the project's trust list."""
    import skops.io

    return sorted(set(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))) - set(project.skops_trusted_types))
