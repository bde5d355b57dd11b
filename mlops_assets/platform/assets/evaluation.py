"""A project's model evaluation: the new version, loaded back from the registry, on the holdout with
the task's metrics, slices, plots and tables; the production version on the very same rows."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, Output, asset

from mlops_assets.platform.assets.common import ProjectKeys, markdown_table, png_markdown
from mlops_assets.platform.assets.training import target_values
from mlops_assets.platform.automation.rollback import EVALUATED_ON_TAG
from mlops_assets.platform.code_version import project_code_version
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources.io_managers import Versioned
from mlops_assets.platform.resources.mlflow_registry import MlflowResource, wait_for_model_stack


def holdout_rows(project: ModelProject, features: Versioned) -> pd.DataFrame:
    domain = project.domain
    return features.value.filter(F.col("split") == "test").select(*domain.raw_features, domain.target).toPandas()


def _load_estimator(model_uri: str):
    """The registered artifact itself, as the estimator it is: classifiers need `predict_proba`."""
    wait_for_model_stack()
    import mlflow.sklearn

    return mlflow.sklearn.load_model(model_uri)


def build_evaluation_asset(project: ModelProject) -> AssetsDefinition:
    keys = ProjectKeys(project.name)
    task = project.task
    primary = task.primary_metric

    @asset(
        key=keys.model_evaluation,
        ins={"trained_model": AssetIn(keys.trained_model), "features": AssetIn(keys.features)},
        group_name=project.name,
        kinds={"scikitlearn", "mlflow"},
        owners=list(project.owners),
        io_manager_key="json_io_manager",
        code_version=project_code_version(project),
        description=(
            f"The new version of {project.model_name} loaded back from the registry and scored on the holdout: "
            f"{task.name} metrics ({primary} first), overall and per {project.slice_column or 'nothing'}, with plots "
            "and tables (MLflow artifacts and metadata here); the production version scored on the same rows."
        ),
    )
    def model_evaluation(
        context: AssetExecutionContext, mlflow_resource: MlflowResource, trained_model: Versioned, features: Versioned
    ) -> Output[dict]:
        candidate = trained_model.value
        holdout = holdout_rows(project, features)
        inputs = holdout[list(project.domain.raw_features)]
        actual = target_values(project, holdout[project.domain.target])
        slices = holdout[project.slice_column].to_numpy() if project.slice_column else None

        def evaluate(model_uri: str, decision: dict, title: str):
            return task.evaluate(
                _load_estimator(model_uri), inputs, actual, slice_values=slices, decision=decision, costs=project.costs, title=title
            )

        evaluation = evaluate(candidate["model_uri"], candidate["decision"], f"{project.model_name} v{candidate['version']}")
        registry = mlflow_resource.model(project.model_name)
        production_version = registry.aliased_version_number()
        production = None
        if production_version is not None and production_version != candidate["version"]:
            try:
                decision = json.loads((registry.version_tags(production_version) or {}).get("decision") or "{}")
                scored = evaluate(registry.model_uri(production_version), decision, f"production v{production_version}")
                production = {"version": production_version, "metrics": scored.metrics, "slices": scored.slices}
            except Exception as error:  # a broken production artifact must not block evaluating its replacement
                context.log.warning(f"production version {production_version} could not be scored: {error!r}")
                production = {"version": production_version, "error": repr(error)}

        client, run_id = mlflow_resource.client, candidate["mlflow_run_id"]
        for name, value in evaluation.metrics.items():
            if np.isfinite(value):
                client.log_metric(run_id, f"holdout_{name.replace('/', '_')}", float(value))
        client.log_dict(run_id, {"slices": evaluation.slices, "tables": evaluation.tables}, "evaluation/metrics.json")
        with tempfile.TemporaryDirectory(prefix="evaluation-") as folder:
            for file_name, png in evaluation.plots.items():
                (Path(folder) / file_name).write_bytes(png)
            client.log_artifacts(run_id, folder, "evaluation")
        registry.tag_version(
            candidate["version"], {f"holdout_{primary}": f"{evaluation.metrics[primary]:.6g}", EVALUATED_ON_TAG: features.version}
        )

        record = {
            "project": project.name,
            "model_name": candidate["model_name"],
            "version": candidate["version"],
            "mlflow_run_id": run_id,
            "features_version": features.version,
            "holdout_rows": len(holdout),
            "primary_metric": primary,
            "metrics": evaluation.metrics,
            "slices": evaluation.slices,
            "decision": evaluation.decision,
            "production": production,
        }
        metadata = {
            **{name.replace("/", "_"): float(value) for name, value in evaluation.metrics.items()},
            "holdout_rows": len(holdout),
            "model_version": int(candidate["version"]),
            "metrics_by_slice": markdown_table(evaluation.slices),
            **{f"table_{name}": markdown_table(rows) for name, rows in evaluation.tables.items()},
            **{f"plot_{file_name.removesuffix('.png')}": png_markdown(png, file_name) for file_name, png in evaluation.plots.items()},
        }
        if production and "metrics" in production:
            metadata["production_version"] = int(production["version"])
            metadata[f"production_{primary}"] = float(production["metrics"][primary])
            metadata[f"{primary}_change_vs_production"] = float(evaluation.metrics[primary] - production["metrics"][primary])
        return Output(record, metadata=metadata)

    return model_evaluation

