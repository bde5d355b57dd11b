"""Production judged on live outcomes: `python -m serving` answers real requests (churn with a challenger
in canary, iris alone), callers send the actual outcomes back, and `online_performance` decides.

Churn's production is a weak model (fit on 60 customers), its challenger the project's boosted trees:
with enough outcomes the challenger takes production, and the ledger says why. Iris's production
answers well, but the outcomes sent back contradict it: production is worse live than on its holdout,
and the live rollback sensor hands it to the rollback job, which puts the version it replaced back.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from mlops_assets.platform.automation.live_evidence import build_live_rollback_sensor
from mlops_assets.platform.automation.rollback import GATE_PASSED_TAG, REPLACED_VERSION_TAG, build_rollback_job
from mlops_assets.platform.ledger import DeploymentLedger
from mlops_assets.settings import Settings
from mlops_assets_tests.conftest import PROJECTS, REFERENCE_DATA_DIR, Platform, asset_metadata, instance_under
from mlops_assets_tests.processes import stop
from mlops_assets_tests.serving.conftest import ADMIN_TOKEN, ALIAS, start_serving_process, wait_for
from mlops_assets_tests.serving.test_every_project import records_of, typed_rows
from serving.reference_model import ReferenceRegistry, train_and_register

REQUESTS = 300
AUTHORIZATION = {"authorization": f"Bearer {ADMIN_TOKEN}"}
CHURN, IRIS = PROJECTS["churn"], PROJECTS["iris"]


@dataclass
class LiveTraffic:
    registry: ReferenceRegistry
    platform: Platform
    churn_versions: dict[str, str]  # weak (production), strong (challenger)
    iris_versions: dict[str, str]  # earlier (replaced), current (production)
    canary_answers: dict[str, int]  # churn version -> requests it answered


def _ask_and_tell(http: httpx.Client, base: str, project: str, frame, outcome_of) -> dict[str, int]:
    """REQUESTS single-record predictions, each from its own caller, then every actual outcome in one call."""
    rows = random.Random(0).choices(range(len(frame)), k=REQUESTS)
    answers, outcomes = {}, []
    for caller, row in enumerate(rows):
        record = records_of(frame.iloc[[row]], project)[0]
        answer = http.post(f"{base}/models/{project}/predict", json=record, headers={"x-caller-key": f"caller-{caller}"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        answers[body["model_version"]] = answers.get(body["model_version"], 0) + 1
        outcomes.append({"request_id": body["request_id"], "outcome": outcome_of(frame.iloc[row][PROJECTS[project].domain.target])})
    stored = http.post(f"{base}/models/{project}/feedback", json=outcomes, timeout=60)
    assert stored.status_code == 201, stored.text
    return answers


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveTraffic]:
    root = tmp_path_factory.mktemp("online_performance")
    registry = ReferenceRegistry.create(root / "mlflow")
    churn_rows, iris_rows = typed_rows("churn"), typed_rows("iris")
    strongest = next(variant.params for variant in CHURN.variants if variant.name == "shallow_boosting")
    churn = {
        "weak": train_and_register(registry, churn_rows.sample(60, random_state=1), model_name=CHURN.model_name, project=CHURN, alias=ALIAS),
        "strong": train_and_register(registry, churn_rows, model_name=CHURN.model_name, params=strongest, project=CHURN, alias="challenger"),
    }
    iris = {
        "earlier": train_and_register(registry, iris_rows, model_name=IRIS.model_name, project=IRIS),
        "current": train_and_register(registry, iris_rows, model_name=IRIS.model_name, project=IRIS, alias=ALIAS),
    }
    # As the deployment step leaves them: both passed the gate, and the current one replaced the earlier.
    for version in iris.values():
        registry.client.set_model_version_tag(IRIS.model_name, version, GATE_PASSED_TAG, "true")
    registry.client.set_model_version_tag(IRIS.model_name, iris["current"], REPLACED_VERSION_TAG, iris["earlier"])

    server, base, _ = start_serving_process(root, registry.tracking_uri, workers=1, environment={"MLOPS_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        with httpx.Client(timeout=30) as http:
            wait_for(lambda: _challenger_loaded(http, base), timeout=120, what="churn's challenger loaded")
            policy = http.put(f"{base}/admin/models/churn/traffic", json={"mode": "canary", "canary_share": 0.5}, headers=AUTHORIZATION)
            assert policy.status_code == 200, policy.text
            canary_answers = _ask_and_tell(http, base, "churn", churn_rows, lambda outcome: outcome)
            swapped = {"setosa": "versicolor", "versicolor": "virginica", "virginica": "setosa"}
            _ask_and_tell(http, base, "iris", iris_rows, lambda outcome: swapped[outcome])
    finally:
        stop(server)

    settings = Settings.from_env(
        {
            "MLOPS_STATE_DIR": str(root / "state"),
            "MLOPS_DATA_DIR": str(REFERENCE_DATA_DIR),
            "MLFLOW_TRACKING_URI": registry.tracking_uri,
            "MLOPS_MODEL_ALIAS": ALIAS,
            "MLOPS_PREDICTION_LOG_DIR": str(root / "prediction_log"),
        }
    )
    instance = instance_under(root / "dagster_home")
    yield LiveTraffic(registry, Platform(settings, instance), churn, iris, canary_answers)
    instance.dispose()


def _challenger_loaded(http: httpx.Client, base: str) -> bool:
    try:
        state = http.get(f"{base}/admin/models/churn/traffic", headers=AUTHORIZATION)
    except httpx.TransportError:  # not listening yet
        return False
    return state.status_code == 200 and state.json().get("challenger_version") is not None


def _aliases(registry: ReferenceRegistry, model_name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in registry.client.get_registered_model(model_name).aliases.items()}


def test_the_canary_share_went_to_both_versions_and_every_outcome_was_stored(live: LiveTraffic) -> None:
    assert set(live.canary_answers) == set(live.churn_versions.values())
    assert 0.35 < live.canary_answers[live.churn_versions["strong"]] / REQUESTS < 0.65


def test_a_challenger_better_on_live_outcomes_takes_production_with_a_ledger_row(live: LiveTraffic) -> None:
    result = live.platform.materialize(project="churn", selection="churn/online_performance", monitoring=True)

    assert result.success
    judged = asset_metadata(result, "churn/online_performance")
    assert judged["outcomes"] == REQUESTS
    assert judged["decision"] == "promote challenger", judged["decision_reason"]
    assert judged["improvement_low"] > 0
    assert judged["live_roc_auc/challenger"] > judged["live_roc_auc/champion"]
    assert _aliases(live.registry, CHURN.model_name) == {ALIAS: live.churn_versions["strong"]}
    promotion = DeploymentLedger(path=str(live.platform.settings.ledger_path)).latest(model_name=CHURN.model_name, alias=ALIAS)
    assert (promotion.version, promotion.previous_version, promotion.action) == (live.churn_versions["strong"], live.churn_versions["weak"], "promote")
    assert "better by" in promotion.reason and promotion.run_id == result.run_id


def test_a_production_model_worse_live_than_on_its_holdout_is_rolled_back_by_the_rollback_job(live: LiveTraffic) -> None:
    judged_run = live.platform.materialize(project="iris", selection="iris/online_performance", monitoring=True)
    judged = asset_metadata(judged_run, "iris/online_performance")
    assert judged["decision"] == "roll back production", judged["decision_reason"]
    assert judged["rollback_recommended"] is True
    assert _aliases(live.registry, IRIS.model_name) == {ALIAS: live.iris_versions["current"]}  # the asset only recommends

    instance: DagsterInstance = live.platform.instance
    sensor = build_live_rollback_sensor("iris")
    context = build_sensor_context(instance=instance)
    request = sensor(context)
    assert isinstance(request, RunRequest), request
    rolled_back = build_rollback_job("iris", IRIS.model_name).execute_in_process(
        run_config=request.run_config, instance=instance, resources=live.platform.resources(), tags=request.tags
    )

    assert rolled_back.success
    assert _aliases(live.registry, IRIS.model_name) == {ALIAS: live.iris_versions["earlier"]}
    move = DeploymentLedger(path=str(live.platform.settings.ledger_path)).latest(model_name=IRIS.model_name, alias=ALIAS)
    assert (move.version, move.action) == (live.iris_versions["earlier"], "rollback")
    assert move.reason.startswith("live evidence:") and "worse than its holdout" in move.reason
    assert isinstance(sensor(build_sensor_context(instance=instance, cursor=context.cursor)), SkipReason), "one record, one rollback"


def test_without_enough_outcomes_nothing_moves(live: LiveTraffic) -> None:
    result = live.platform.materialize(
        project="churn",
        selection="churn/online_performance",
        monitoring=True,
        run_config={"ops": {"churn__online_performance": {"config": {"min_outcomes": REQUESTS + 1}}}},
    )
    judged = asset_metadata(result, "churn/online_performance")
    assert judged["decision"] == "keep" and f"fewer than the {REQUESTS + 1}" in judged["decision_reason"]


def test_the_launchpad_sets_the_traffic_policy_every_serving_worker_follows(tmp_path) -> None:
    from mlops_assets.platform.automation.traffic import ServingTraffic, build_traffic_job
    from serving.traffic import TrafficMode, read_policy

    job = build_traffic_job("churn")
    canary = job.execute_in_process(
        run_config={"ops": {"churn_set_traffic": {"config": {"mode": "canary", "canary_share": 0.25}}}},
        resources={"serving_traffic": ServingTraffic(state_dir=str(tmp_path))},
    )

    assert canary.success
    policy = read_policy(tmp_path, "churn")
    assert (policy.mode, policy.canary_share) == (TrafficMode.CANARY, 0.25)
    assert read_policy(tmp_path, "iris").mode == TrafficMode.OFF
