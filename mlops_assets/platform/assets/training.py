"""A project's trained model: every variant fit and compared on the validation split, the best refit
on all training rows, logged to MLflow and registered. Deployment is decided downstream."""

import json

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, Config, Failure, MetadataValue, Output, asset
from pydantic import Field

from mlops_assets.platform.assets.common import ProjectKeys, markdown_table, png_markdown
from mlops_assets.platform.code_version import project_code_version
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources.io_managers import Versioned
from mlops_assets.platform.resources.mlflow_registry import MlflowResource, wait_for_model_stack
from mlops_assets.platform.transforms import TRAINING_SPLITS


def training_rows(project: ModelProject, features: Versioned) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The raw feature columns, the target and each row's split, for every row outside the holdout (in
    the order the features are stored, so the same data gives the same model)."""
    domain = project.domain
    rows = (
        features.value.filter(F.col("split").isin(*TRAINING_SPLITS))
        .select(*domain.raw_features, domain.target, "split")
        .toPandas()
    )
    return rows[list(domain.raw_features)], target_values(project, rows[domain.target]), rows["split"].to_numpy()


def target_values(project: ModelProject, column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=np.float64 if project.task.name == "regression" else object)


def build_training_asset(project: ModelProject) -> AssetsDefinition:
    keys = ProjectKeys(project.name)
    task = project.task
    variant_names = [variant.name for variant in project.variants]

    class TrainingConfig(Config):
        variants: list[str] = Field(
            default=[], description=f"The variants to fit and compare ({', '.join(variant_names)}); empty: every one."
        )
        overrides: dict[str, float] = Field(
            default={}, description="Hyperparameters set on every variant fitted (for an experiment from the launchpad)."
        )

    @asset(
        key=keys.trained_model,
        ins={"features": AssetIn(keys.features)},
        group_name=project.name,
        kinds={"scikitlearn", "mlflow"},
        owners=list(project.owners),
        io_manager_key="json_io_manager",
        code_version=project_code_version(project),
        description=(
            f"Every variant of {project.model_name} ({', '.join(variant_names)}) fit on the train split and compared on "
            f"the validation split by {task.primary_metric}, each an MLflow child run; the best refit on train and "
            "validation rows, logged with its params, metrics, permutation importance, signature, input example, "
            "shipped feature code and lineage, and registered as a new version. Deployment is decided downstream."
        ),
    )
    def trained_model(
        context: AssetExecutionContext, config: TrainingConfig, mlflow_resource: MlflowResource, features: Versioned
    ) -> Output[dict]:
        wait_for_model_stack()
        import mlflow

        from mlops_assets.ml.training import best_variant, fit_variant, importance_plot_png, selection_reason
        from mlops_assets.platform.model_logging import log_project_model, untrusted_types

        unknown = sorted(set(config.variants) - set(variant_names))
        if unknown:
            raise Failure(f"unknown variants {unknown}: {project.name} declares {variant_names}")
        chosen = [variant for variant in project.variants if not config.variants or variant.name in config.variants]
        frame, target, split = training_rows(project, features)
        train, validation = split == "train", split == "validation"

        lineage = {
            "project": project.name,
            "features_path": features.path,
            "features_version": features.version,
            "features_digest": features.digest,
            "dagster_run_id": context.run_id,
            "code_version": project_code_version(project),
        }
        with mlflow_resource.start_run(experiment_name=project.model_name, run_name=f"train-{context.run_id[:8]}", tags=lineage) as parent:
            results, importance_plots = [], {}
            for variant in chosen:
                params = {**variant.params, **config.overrides}
                result = fit_variant(
                    variant.name, params, project.build_model, task, (frame[train], target[train]), (frame[validation], target[validation])
                )
                # In the parent's experiment: a nested run without one lands in MLflow's default experiment.
                with mlflow_resource.start_run(
                    experiment_name=project.model_name, run_name=variant.name, tags={**lineage, "variant": variant.name}, nested=True
                ):
                    mlflow.log_params(params)
                    mlflow.log_metrics(
                        {
                            **{f"train_{name}": value for name, value in result.train_metrics.items()},
                            **{f"validation_{name}": value for name, value in result.validation_metrics.items()},
                            "training_seconds": result.training_seconds,
                            "model_size_bytes": result.model_size_bytes,
                        }
                    )
                    mlflow.log_dict({"permutation_importance": result.importance}, "importance/permutation_importance.json")
                    importance_plots[variant.name] = importance_plot_png(result.importance, f"{variant.name}: permutation importance")
                    mlflow.log_image(_png_array(importance_plots[variant.name]), "importance/permutation_importance.png")
                context.log.info(f"variant {variant.name}: validation {task.primary_metric} {result.validation_metrics[task.primary_metric]:,.4g}")
                results.append(result)

            winner = best_variant(results, task)
            reason = selection_reason(winner, results, task)
            # Decided with the winner as fit on the train split, on rows it never saw: never the holdout.
            decision = task.choose_decision(winner.model, frame[validation], target[validation], project.costs)
            final = project.build_model(winner.params)
            final.fit(frame, target)
            if unexpected := untrusted_types(project, final):
                raise TypeError(f"the pipeline holds types outside the project's skops trust list: {unexpected}")
            train_metrics = task.score(final, frame, target)
            comparison = [result.summary(task.primary_metric) for result in results]

            mlflow.log_params({**winner.params, "variant": winner.name, "train_rows": len(frame)})
            mlflow.log_metrics(
                {
                    **{f"train_{name}": value for name, value in train_metrics.items()},
                    **{f"validation_{name}": value for name, value in winner.validation_metrics.items()},
                    "model_size_bytes": winner.model_size_bytes,
                }
            )
            mlflow.log_dict({"variants": comparison, "winner": winner.name, "reason": reason, "decision": decision}, "variants.json")
            mlflow.log_dict({"permutation_importance": winner.importance}, "importance/permutation_importance.json")
            model_info = log_project_model(project, final, frame, registered_model_name=project.model_name)

        version = str(model_info.registered_model_version)
        registry = mlflow_resource.model(project.model_name)
        registry.tag_version(version, {**lineage, "variant": winner.name, "decision": json.dumps(decision, default=str)})
        record = {
            "project": project.name,
            "model_name": project.model_name,
            "version": version,
            "model_uri": registry.model_uri(version),
            "mlflow_run_id": parent.info.run_id,
            **lineage,
            "train_rows": int(train.sum()),
            "validation_rows": int(validation.sum()),
            "variant": winner.name,
            "variant_reason": reason,
            "variants": comparison,
            "params": dict(winner.params),
            "train_metrics": train_metrics,
            "validation_metrics": winner.validation_metrics,
            "decision": decision,
        }
        return Output(
            record,
            metadata={
                "model_version": int(version),
                "model_uri": record["model_uri"],
                "mlflow_run_id": parent.info.run_id,
                "mlflow_run": MetadataValue.text(mlflow_resource.run_url(parent.info.run_id)),
                "variant": winner.name,
                "variant_reason": reason,
                "variants": markdown_table(comparison),
                f"validation_{task.primary_metric}": winner.validation_metrics[task.primary_metric],
                f"train_{task.primary_metric}": train_metrics[task.primary_metric],
                "training_rows": len(frame),
                "permutation_importance": markdown_table(winner.importance),
                "importance_plot": png_markdown(importance_plots[winner.name], "importance"),
                "features_version": features.version,
                **({"decision": MetadataValue.json(decision)} if decision else {}),
            },
        )

    return trained_model


def _png_array(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image

    return (matplotlib.image.imread(io.BytesIO(png), format="png")[:, :, :3] * 255).astype(np.uint8)
