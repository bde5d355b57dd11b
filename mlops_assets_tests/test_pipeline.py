"""The whole graph on the reference data, then bad batches and a worse model against that state."""

from pathlib import Path

import pytest
from dagster import AssetKey
from mlflow.tracking import MlflowClient

from mlops_assets.platform.ledger import DeploymentLedger
from mlops_assets.platform.resources.versioned_store import VersionedStore
from mlops_assets_tests.bad_data import BAD_BATCHES, write_bad_batch
from mlops_assets_tests.conftest import Platform, asset_metadata, certified_versions, check_results, materialized, step_config

ALL_ASSETS = {"housing/raw", "housing/cleaned", "housing/features", "housing/trained_model", "housing/model_evaluation", "housing/deployed_model"}
REFERENCE_RMSE = 47_730.0


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, reference_csv: Path):
    """One full materialization of the reference data; the tests below build on its state."""
    from mlops_assets_tests.conftest import instance_under, settings_under

    state_dir = tmp_path_factory.mktemp("deployed")
    instance = instance_under(state_dir / "dagster_home")
    platform = Platform(settings_under(state_dir, reference_csv), instance)
    result = platform.materialize()
    yield platform, result
    instance.dispose()


def test_the_whole_graph_materializes_and_deploys_the_new_version(deployed):
    platform, result = deployed
    assert result.success
    assert materialized(result) == ALL_ASSETS
    assert check_results(result) == {
        "check_contract_raw": True,
        "check_contract_cleaned": True,
        "check_contract_features": True,
        "check_contract_trained_model": True,
        "check_contract_model_evaluation": True,
        "check_consistency_production_alias": True,
    }
    trained = asset_metadata(result, "housing/trained_model")
    evaluation = asset_metadata(result, "housing/model_evaluation")
    assert platform.production_version() == str(trained["model_version"])
    assert evaluation["rmse"] < REFERENCE_RMSE
    assert asset_metadata(result, "housing/cleaned")["rule/total_bedrooms_missing_kept"] == 207
    assert asset_metadata(result, "housing/raw")["dagster/row_count"] == 20_640
    assert "ocean_proximity" in asset_metadata(result, "housing/raw")["preview"]
    features = asset_metadata(result, "housing/features")
    split_rows = features["train_rows"] + features["validation_rows"] + features["test_rows"]
    assert split_rows == features["dagster/row_count"] == asset_metadata(result, "housing/cleaned")["dagster/row_count"]
    assert 0.1 < features["test_rows"] / split_rows < 0.3


def test_mlflow_records_the_run_its_lineage_and_ends_it(deployed):
    platform, result = deployed
    trained = asset_metadata(result, "housing/trained_model")
    client = MlflowClient(platform.settings.mlflow_tracking_uri)
    run = client.get_run(trained["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.tags["features_version"] == trained["features_version"]
    assert len(run.data.tags["features_digest"]) == 64
    assert run.data.metrics["holdout_rmse"] == pytest.approx(asset_metadata(result, "housing/model_evaluation")["rmse"])
    assert "evaluation/residuals.png" in {artifact.path for artifact in client.list_artifacts(run.info.run_id, "evaluation")}
    running = client.search_runs([run.info.experiment_id], "attributes.status = 'RUNNING'")
    assert running == []


@pytest.mark.parametrize("batch", sorted(BAD_BATCHES))
def test_a_bad_batch_stops_at_its_check_and_loses_nothing(deployed, tmp_path: Path, reference_csv: Path, batch: str):
    platform, _ = deployed
    _, failing_check, column, rule = BAD_BATCHES[batch]
    failing_asset = "housing/" + failing_check.removeprefix("check_contract_")
    production_before, certified_before = platform.production_version(), certified_versions(platform, from_asset=failing_asset)

    result = platform.materialize(source=write_bad_batch(reference_csv, batch, tmp_path))

    checks = check_results(result)
    assert checks[failing_check] is False, checks
    assert [name for name, passed in checks.items() if not passed] == [failing_check]
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == failing_check)
    violations = evaluation.metadata["examples"].value
    named = [v for v in violations if v["column"] == column and rule in v["rule"]]
    assert named, violations
    if column is not None and rule not in ("column_in_dataframe",):
        assert named[0]["failing_rows"] > 0
    assert not {"housing/trained_model", "housing/model_evaluation", "housing/deployed_model"} & materialized(result)
    assert platform.production_version() == production_before
    # The bad version was written, but where no other run will ever read it.
    assert certified_versions(platform, from_asset=failing_asset) == certified_before
    assert len(platform.versions(failing_asset)) > 1


def test_after_the_bad_batches_the_next_good_batch_goes_through(deployed, reference_csv: Path):
    platform, _ = deployed
    certified_before = certified_versions(platform)
    data_assets = ["housing/raw", "housing/cleaned", "housing/features"]

    result = platform.materialize(source=reference_csv, selection=data_assets)

    assert result.success
    assert all(check_results(result).values()), check_results(result)
    certified_now = certified_versions(platform)
    for asset in data_assets:
        assert certified_now[asset] == asset_metadata(result, asset)["version"] != certified_before[asset]


def test_the_gate_keeps_production_when_the_new_model_is_worse(deployed):
    platform, _ = deployed
    production_before = platform.production_version()

    result = platform.materialize(
        selection="housing/trained_model*",
        run_config=step_config("housing/trained_model", {"variants": ["boosted_trees"], "overrides": {"max_iter": 3, "learning_rate": 0.05}}),
    )

    assert result.success
    decision = asset_metadata(result, "housing/deployed_model")
    assert decision["deployed"] is False
    assert "bound" in decision["reason"]
    assert platform.production_version() == production_before
    assert str(asset_metadata(result, "housing/trained_model")["model_version"]) != production_before

    # A person may override the gate from the launchpad; the record says so and names the run.
    forced = platform.materialize(selection="housing/deployed_model", run_config=step_config("housing/deployed_model", {"force": True}))
    assert forced.success
    override = asset_metadata(forced, "housing/deployed_model")
    assert override["deployed"] is True
    assert f"forced by run {forced.run_id}" in override["reason"] and "bound" in override["reason"]
    assert (str(override["production_version"]), str(override["replaced_version"])) == (
        str(asset_metadata(result, "housing/trained_model")["model_version"]),
        production_before,
    )
    assert platform.production_version() == str(override["production_version"])


def test_with_live_evidence_asked_a_passing_candidate_challenges_production_instead_of_replacing_it(deployed):
    platform, _ = deployed
    production_before = platform.production_version()

    result = platform.materialize(
        selection="housing/trained_model*",
        run_config={
            "ops": {
                **step_config("housing/trained_model", {"variants": ["boosted_trees"]})["ops"],
                **step_config("housing/deployed_model", {"live_evidence": True})["ops"],
            }
        },
    )

    assert result.success
    decision = asset_metadata(result, "housing/deployed_model")
    candidate = str(asset_metadata(result, "housing/trained_model")["model_version"])
    assert decision["deployed"] is False and decision["challenger"] is True, decision["reason"]
    assert "challenges version" in decision["reason"]
    assert platform.production_version() == production_before
    assert platform.registry().with_alias("challenger").aliased_version_number() == candidate
    challenge = DeploymentLedger(path=str(platform.settings.ledger_path)).latest(model_name="housing_price", alias="challenger")
    assert (challenge.version, challenge.action, challenge.run_id) == (candidate, "challenge", result.run_id)


def test_a_second_run_leaves_the_first_runs_data_intact(deployed):
    platform, first = deployed
    first_versions = {asset: asset_metadata(first, asset)["version"] for asset in ("housing/raw", "housing/cleaned", "housing/features")}

    second = platform.materialize(selection=list(first_versions))

    assert second.success
    store = VersionedStore(root=str(platform.settings.data_root))
    for asset, version in first_versions.items():
        folder = store.asset_dir(AssetKey.from_user_string(asset)) / version
        assert store.manifest(folder)["digest"] == asset_metadata(first, asset)["digest"]
        assert asset_metadata(second, asset)["version"] != version
        # Same input, same code: the new version holds the same rows.
        assert asset_metadata(second, asset)["dagster/row_count"] == asset_metadata(first, asset)["dagster/row_count"]
