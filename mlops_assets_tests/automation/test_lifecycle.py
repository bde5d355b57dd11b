"""A production model's life on one platform, in order: deployed by the whole graph with batch
predictions and a quiet drift record; drift in what the serving app is asked, then in new data (and
the retraining it calls for, after a cooldown); a successor that waits for approval and is approved;
a rollback to its predecessor, recorded in the ledger; and the rollbacks that are refused.

The tests share the platform's state and run in this order (the whole graph once: ~1 minute)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, SkipReason, build_sensor_context
from mlflow.tracking import MlflowClient

from mlops_assets.platform.automation.approval import APPROVED_VERSION_RUN_TAG, ApprovalPolicy, build_approval_sensor
from mlops_assets.platform.automation.drift import DriftPolicy
from mlops_assets.platform.automation.retraining import DRIFT_TRIGGER, TRIGGER_TAG, build_drift_retraining_sensor
from mlops_assets.platform.automation.rollback import build_rollback_job
from mlops_assets.platform.ledger import DeploymentLedger, RunTrigger
from mlops_assets.projects.housing.domain import RAW_FEATURES
from mlops_assets_tests.automation.conftest import ASSETS_WITHOUT_LIVE_OUTCOMES, materialize_graph, write_shifted_copy
from mlops_assets_tests.conftest import Platform, asset_metadata, instance_under, materialized, settings_under

MODEL, ALIAS = "housing_price", "production"
approval_sensor = build_approval_sensor("housing", MODEL)
drift_retraining_sensor = build_drift_retraining_sensor("housing")
rollback_production_job = build_rollback_job("housing", MODEL)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, reference_csv: Path):
    state_dir = tmp_path_factory.mktemp("lifecycle")
    instance = instance_under(state_dir / "dagster_home")
    platform = Platform(settings_under(state_dir, reference_csv), instance)
    yield platform
    instance.dispose()


@pytest.fixture(scope="module")
def first_run(platform: Platform):
    return materialize_graph(platform)


def ledger_of(platform: Platform) -> DeploymentLedger:
    return platform.resources()["ledger"]


def drift_record(result) -> dict:
    import json

    return json.loads((Path(asset_metadata(result, "housing/feature_drift")["path"]) / "record.json").read_text())


def rollback(platform: Platform, **config):
    resources = platform.resources()
    return rollback_production_job.execute_in_process(
        instance=platform.instance,
        resources={"mlflow_resource": resources["mlflow_resource"], "ledger": resources["ledger"]},
        run_config={"ops": {"housing_move_production_back": {"config": config}}},
        raise_on_error=False,
    )


def test_the_whole_graph_deploys_records_and_scores_with_the_production_model(platform: Platform, first_run):
    assert first_run.success
    assert materialized(first_run) == ASSETS_WITHOUT_LIVE_OUTCOMES
    production = platform.production_version()
    assert production == str(asset_metadata(first_run, "housing/trained_model")["model_version"])

    predictions = pd.read_parquet(asset_metadata(first_run, "housing/batch_predictions")["path"])
    assert len(predictions) == asset_metadata(first_run, "housing/cleaned")["dagster/row_count"]
    assert set(predictions["model_version"]) == {production}
    assert predictions["prediction"].notna().all()
    # Spark's scoring agrees with the registered model loaded here.
    import mlflow.pyfunc

    sample = predictions.sample(n=25, random_state=3)
    direct = mlflow.pyfunc.load_model(f"models:/{MODEL}/{production}").predict(sample[list(RAW_FEATURES)])
    np.testing.assert_allclose(sample["prediction"].to_numpy(), np.asarray(direct, dtype=float), rtol=1e-9)

    moves = ledger_of(platform).moves(model_name=MODEL, alias=ALIAS)
    assert [(m.version, m.previous_version, m.action, m.run_id) for m in moves] == [(production, None, "deploy", first_run.run_id)]
    assert moves[0].trigger == RunTrigger("manual", None)
    assert "below the bound" in moves[0].reason
    assert asset_metadata(first_run, "housing/deployment_ledger")["production_version"] == int(production)


def test_drift_is_quiet_on_the_data_production_was_trained_on(first_run):
    record = drift_record(first_run)
    assert asset_metadata(first_run, "housing/feature_drift")["drifted"] is False
    assert {d["feature"] for d in record["comparisons"]["data"]} == set(RAW_FEATURES)
    assert {d["status"] for d in record["comparisons"]["data"]} == {"ok"}
    assert "serving" not in record["comparisons"]  # the serving app has logged nothing yet


def test_drift_in_what_the_serving_app_was_asked(platform: Platform, first_run, reference_csv: Path):
    requests = pd.read_csv(reference_csv).sample(n=2_000, random_state=5)
    requests["latitude"] = np.clip(requests["latitude"] + 1.5, 32.4, 42.1)  # everyone moved north
    log = platform.settings.prediction_log_dir / MODEL
    today = log / f"date={datetime.now(UTC).date().isoformat()}"
    long_ago = log / f"date={(datetime.now(UTC) - timedelta(days=60)).date().isoformat()}"
    for folder in (today, long_ago):
        folder.mkdir(parents=True)
    requests.to_parquet(today / "part-1.parquet")
    pd.read_csv(reference_csv).head(5_000).to_parquet(long_ago / "part-1.parquet")
    try:
        result = materialize_graph(platform, selection=["housing/feature_drift"])
    finally:
        for part in log.rglob("*.parquet"):
            part.unlink()

    assert result.success
    record = drift_record(result)
    assert record["serving_rows"] == 2_000  # the old partition is outside the window
    assert {"serving:latitude", "serving:longitude"} >= set(record["drifted_features"]) >= {"serving:latitude"}
    assert asset_metadata(result, "housing/feature_drift")["drifted"] is True


def test_new_data_that_drifted_retrains_once_the_cooldown_is_over(platform: Platform, first_run, reference_csv: Path, tmp_path: Path):
    shifted = write_shifted_copy(reference_csv, tmp_path / "richer.csv", income_factor=1.4)
    result = materialize_graph(
        platform, source=shifted, selection=["housing/raw", "housing/cleaned", "housing/features", "housing/feature_drift"]
    )
    assert result.success
    assert drift_record(result)["drifted_features"] == ["data:median_income"]

    def tick(cooldown_hours: float, cursor: str | None):
        policy = DriftPolicy(prediction_log_dir=str(platform.settings.prediction_log_dir), retrain_cooldown_hours=cooldown_hours)
        context = build_sensor_context(instance=platform.instance, cursor=cursor, resources={"drift_policy": policy})
        return drift_retraining_sensor(context), context.cursor

    # A model was trained minutes ago: retraining waits, and the drift record is kept for later.
    waiting, cursor = tick(cooldown_hours=12, cursor=None)
    assert isinstance(waiting, SkipReason) and "cooling down" in waiting.skip_message
    assert cursor is None
    request, cursor = tick(cooldown_hours=0, cursor=cursor)
    assert request.tags[TRIGGER_TAG] == DRIFT_TRIGGER
    assert "median_income" in request.tags["mlops/drifted_features"]
    # The same record never retrains twice.
    assert isinstance(tick(cooldown_hours=0, cursor=cursor)[0], SkipReason)


def test_a_successor_waits_for_approval_and_the_approval_deploys_it(platform: Platform, first_run):
    predecessor = platform.production_version()
    approval_on = {"approval": ApprovalPolicy(required=True)}

    waiting = materialize_graph(platform, selection=["housing/trained_model", "housing/model_evaluation", "housing/deployed_model"], resources=approval_on)

    assert waiting.success
    decision = asset_metadata(waiting, "housing/deployed_model")
    candidate = str(decision["candidate_version"])
    assert (decision["deployed"], decision["awaiting_approval"]) == (False, True), decision["reason"]
    assert platform.production_version() == predecessor

    def tick(policy: ApprovalPolicy):
        # The MLflow resource has a teardown: the context must be opened and closed around the tick.
        with build_sensor_context(
            instance=platform.instance, resources={"approval": policy, "mlflow_resource": platform.mlflow}
        ) as context:
            return approval_sensor(context)

    assert "switched off" in tick(ApprovalPolicy(required=False)).skip_message
    assert "waits for approval" in tick(ApprovalPolicy(required=True)).skip_message

    client = MlflowClient(platform.settings.mlflow_tracking_uri)
    client.set_model_version_tag(MODEL, candidate, "approved", "true")
    client.set_model_version_tag(MODEL, candidate, "approved_by", "reviewer@example.com")
    request = tick(ApprovalPolicy(required=True))
    assert request.tags == {APPROVED_VERSION_RUN_TAG: candidate}

    deployed = materialize_graph(
        platform, selection=["housing/deployed_model", "housing/deployment_ledger"], resources=approval_on, tags=request.tags
    )

    assert deployed.success
    assert platform.production_version() == candidate
    latest = ledger_of(platform).latest(model_name=MODEL, alias=ALIAS)
    assert (latest.version, latest.previous_version, latest.run_id) == (candidate, predecessor, deployed.run_id)
    assert "approved by reviewer@example.com" in latest.reason
    assert latest.run_tags == {APPROVED_VERSION_RUN_TAG: candidate}
    assert "waits for no approval" in tick(ApprovalPolicy(required=True)).skip_message


def test_rollback_returns_production_to_its_predecessor_and_the_ledger_says_so(platform: Platform, first_run):
    ledger = ledger_of(platform)
    current = platform.production_version()
    predecessor = ledger.latest(model_name=MODEL, alias=ALIAS).previous_version
    before_rollback = datetime.now(UTC)

    result = rollback(platform, reason="predictions too high in the Bay Area")

    assert result.success
    assert platform.production_version() == predecessor
    latest = ledger.latest(model_name=MODEL, alias=ALIAS)
    assert (latest.version, latest.previous_version, latest.action) == (predecessor, current, "rollback")
    assert (latest.run_id, latest.job_name, latest.reason) == (result.run_id, "housing_rollback", "predictions too high in the Bay Area")
    assert ledger.serving_at(before_rollback, model_name=MODEL, alias=ALIAS).version == current
    assert ledger.serving_at(datetime.now(UTC), model_name=MODEL, alias=ALIAS).version == predecessor
    assert "rolled_back_at" in MlflowClient(platform.settings.mlflow_tracking_uri).get_model_version(MODEL, current).tags
    # The ledger asset shows the rollback at once.
    shown = platform.instance.fetch_materializations(AssetKey(["housing", "deployment_ledger"]), limit=1).records[0]
    assert shown.run_id == result.run_id
    assert shown.asset_materialization.metadata["production_version"].value == int(predecessor)


def test_a_rolled_back_version_is_not_deployed_again(platform: Platform, first_run):
    production = platform.production_version()
    result = materialize_graph(platform, selection=["housing/deployed_model"])
    decision = asset_metadata(result, "housing/deployed_model")
    assert decision["deployed"] is False
    assert "was rolled back" in decision["reason"]
    assert platform.production_version() == production


def test_rollback_refuses_what_never_passed_the_gate(platform: Platform, first_run):
    production = platform.production_version()
    moves_before = len(ledger_of(platform).moves(model_name=MODEL, alias=ALIAS))
    client = MlflowClient(platform.settings.mlflow_tracking_uri)
    serving = client.get_model_version(MODEL, production)
    # Registered from the same artifact, but never evaluated.
    unevaluated = client.create_model_version(MODEL, serving.source, run_id=serving.run_id).version

    for target, why in (("999", "does not exist"), (str(unevaluated), "never evaluated"), (production, "already holds")):
        result = rollback(platform, target_version=target)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
        assert why in failure.description, failure.description

    assert platform.production_version() == production
    assert len(ledger_of(platform).moves(model_name=MODEL, alias=ALIAS)) == moves_before
