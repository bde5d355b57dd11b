"""The churn and iris projects, each materialized once end to end on the reference data, then each
of their bad batches against that state: the platform hosts classifiers as it hosts housing."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlops_assets_tests.conftest import (
    CLASSIFIERS,
    PROJECTS,
    REFERENCE_DATA_DIR,
    asset_metadata,
    certified_versions,
    check_results,
    materialized,
)
from mlops_assets_tests.projects.bad_batches import BAD_BATCHES, write_bad_batch

# project -> (the primary holdout metric, the least it must reach on the reference data)
QUALITY_BARS = {"churn": ("roc_auc", 0.84), "iris": ("accuracy", 0.93)}
FLOW = ("raw", "cleaned", "features", "trained_model", "model_evaluation", "deployed_model")


@pytest.fixture
def deployed(deployed_classifiers):
    return deployed_classifiers


@pytest.mark.parametrize("project", CLASSIFIERS)
def test_each_classifier_passes_its_checks_and_gate_and_reaches_production(deployed, project: str):
    platform, results = deployed
    result = results[project]
    assert result.success
    assert materialized(result) == {f"{project}/{asset}" for asset in FLOW}
    assert all(check_results(result).values()), check_results(result)
    trained = asset_metadata(result, f"{project}/trained_model")
    assert asset_metadata(result, f"{project}/deployed_model")["deployed"] is True
    assert platform.production_version(project) == str(trained["model_version"])
    assert platform.registry(project).name == PROJECTS[project].model_name


@pytest.mark.parametrize("project", CLASSIFIERS)
def test_each_classifier_is_past_its_quality_bar_on_the_holdout(deployed, project: str):
    _, results = deployed
    metric, bar = QUALITY_BARS[project]
    assert asset_metadata(results[project], f"{project}/model_evaluation")[metric] >= bar


@pytest.mark.parametrize("project", CLASSIFIERS)
def test_every_variant_is_a_child_run_and_the_best_on_validation_is_registered(deployed, project: str):
    platform, results = deployed
    trained = asset_metadata(results[project], f"{project}/trained_model")
    client = MlflowClient(platform.settings.mlflow_tracking_uri)
    parent = client.get_run(trained["mlflow_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    declared = {variant.name for variant in PROJECTS[project].variants}
    assert {child.data.tags["variant"] for child in children} == declared
    metric = PROJECTS[project].task.primary_metric
    scores = {child.data.tags["variant"]: child.data.metrics[f"validation_{metric}"] for child in children}
    # Ties (iris's 24 validation flowers) go to the lowest validation loss: the winner is among the best.
    assert scores[trained["variant"]] == max(scores.values())
    for child in children:
        assert {"training_seconds", "model_size_bytes", f"train_{metric}"} <= set(child.data.metrics)
        assert "importance/permutation_importance.png" in {a.path for a in client.list_artifacts(child.info.run_id, "importance")}
    assert parent.info.status == "FINISHED"


def test_churn_is_evaluated_with_its_threshold_costs_and_plots_per_contract(deployed):
    platform, results = deployed
    evaluation = asset_metadata(results["churn"], "churn/model_evaluation")
    for metric in ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1", "accuracy", "business_value"):
        assert metric in evaluation, metric
    assert {"plot_roc_curve", "plot_pr_curve", "plot_calibration", "plot_confusion_matrix"} <= set(evaluation)
    for contract in ("Month-to-month", "One year", "Two year"):
        assert f"| {contract} |" in evaluation["metrics_by_slice"]
    # The decision threshold was chosen on the validation split when the model was trained.
    decision = asset_metadata(results["churn"], "churn/trained_model")["decision"]
    assert 0.0 < decision["threshold"] < 1.0 and "business_threshold" in decision


def test_iris_reports_per_class_precision_and_recall(deployed):
    _, results = deployed
    evaluation = asset_metadata(results["iris"], "iris/model_evaluation")
    for species in ("setosa", "versicolor", "virginica"):
        assert f"precision_{species}" in evaluation and f"recall_{species}" in evaluation
    assert {"accuracy", "macro_f1", "log_loss", "plot_confusion_matrix"} <= set(evaluation)


@pytest.mark.parametrize(
    ("project", "batch"), [(project, batch) for project in CLASSIFIERS for batch in sorted(BAD_BATCHES[project])]
)
def test_a_bad_batch_stops_at_its_check_and_loses_nothing(deployed, tmp_path: Path, project: str, batch: str):
    platform, _ = deployed
    _, failing_check, column, rule = BAD_BATCHES[project][batch]
    failing_asset = f"{project}/{failing_check.removeprefix('check_contract_')}"
    production_before = platform.production_version(project)
    certified_before = certified_versions(platform, project, from_asset=failing_asset)
    reference_csv = REFERENCE_DATA_DIR / PROJECTS[project].source.file_name

    result = platform.materialize(project=project, source=write_bad_batch(project, reference_csv, batch, tmp_path))

    checks = check_results(result)
    assert [name for name, passed in checks.items() if not passed] == [failing_check], checks
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == failing_check)
    named = [v for v in evaluation.metadata["examples"].value if v["column"] == column and rule in v["rule"]]
    assert named, evaluation.metadata["examples"].value
    assert not {f"{project}/trained_model", f"{project}/deployed_model"} & materialized(result)
    assert platform.production_version(project) == production_before
    assert certified_versions(platform, project, from_asset=failing_asset) == certified_before
