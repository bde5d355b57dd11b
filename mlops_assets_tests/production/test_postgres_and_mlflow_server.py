"""The production profile for real: the Dagster instance on PostgreSQL (the project's production
dagster.yaml), MLflow as an `mlflow server` process on a Postgres backend store."""

import json
import os
import sys
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef
from mlflow.tracking import MlflowClient

from mlops_assets.settings import Settings
from mlops_assets_tests.conftest import REPOSITORY_ROOT, Platform, check_results, materialized
from mlops_assets_tests.processes import free_port, http_ok, start, stop, wait_until

PRODUCTION_INSTANCE_CONFIG = REPOSITORY_ROOT / "mlops_assets" / "deploy"


@pytest.fixture(scope="module")
def production_platform(postgres_database, mlflow_server, tmp_path_factory, reference_csv: Path):
    dagster_url = postgres_database("dagster")
    state_dir = tmp_path_factory.mktemp("production")
    (state_dir / "dagster_home").mkdir()
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("DAGSTER_POSTGRES_URL", dagster_url)
        instance = DagsterInstance.from_ref(
            InstanceRef.from_dir(str(state_dir / "dagster_home"), config_dir=str(PRODUCTION_INSTANCE_CONFIG))
        )
        settings = Settings.from_env(
            {
                "MLOPS_STATE_DIR": str(state_dir),
                "MLOPS_DATA_SOURCE": str(reference_csv),
                "MLFLOW_TRACKING_URI": mlflow_server.url,
            }
        )
        platform = Platform(settings, instance)
        result = platform.materialize()
        yield platform, result, dagster_url
        instance.dispose()


def test_the_instance_is_on_postgres_and_the_registry_behind_the_server(production_platform):
    platform, result, dagster_url = production_platform
    assert type(platform.instance.run_storage).__name__ == "PostgresRunStorage"
    assert platform.settings.mlflow_artifact_root is None  # the server decides where artifacts go

    assert result.success
    assert materialized(result) == {
        "housing/raw", "housing/cleaned", "housing/features", "housing/trained_model", "housing/model_evaluation", "housing/deployed_model"
    }
    assert all(check_results(result).values()), check_results(result)
    with psycopg2.connect(dagster_url.replace("+psycopg2", "")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cursor.fetchone()[0] == DagsterRunStatus.SUCCESS.value


def test_the_model_is_tracked_in_postgres_and_served_through_the_server(production_platform, mlflow_server):
    import mlflow.pyfunc
    import pandas as pd

    platform, result, _ = production_platform
    client = MlflowClient(mlflow_server.url)
    production = client.get_model_version_by_alias("housing_price", "production")
    with psycopg2.connect(mlflow_server.backend_store_uri.replace("+psycopg2", "")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_uuid = %s", (production.run_id,))
        assert cursor.fetchone()[0] == "FINISHED"

    # Artifacts come back through the server's proxy, not from a shared folder.
    model = mlflow.pyfunc.load_model("models:/housing_price@production")
    prediction = model.predict(pd.DataFrame([SEED_ROW]))
    assert 100_000 < float(prediction[0]) < 1_000_000


def test_the_serving_app_serves_the_production_alias_from_the_server(production_platform, mlflow_server, tmp_path: Path):
    import mlflow.pyfunc
    import pandas as pd

    production = MlflowClient(mlflow_server.url).get_model_version_by_alias("housing_price", "production")
    port = free_port()
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_"))},
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MLOPS_STATE_DIR": str(tmp_path),
    }
    server = start(
        [sys.executable, "-m", "serving", "--workers", "1", "--port", str(port)],
        log=tmp_path / "serving.log",
        env=environment,
        cwd=REPOSITORY_ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{base}/ready"), timeout=120, what="the serving app", process=server)
        request = urllib.request.Request(
            f"{base}/predict", data=json.dumps(SEED_ROW).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
    finally:
        stop(server)

    assert answer["model_version"] == str(production.version)
    expected = mlflow.pyfunc.load_model(f"models:/housing_price/{production.version}").predict(pd.DataFrame([SEED_ROW]))
    assert answer["predictions"] == [float(expected[0])]


SEED_ROW = {
    "longitude": -122.23, "latitude": 37.88, "housing_median_age": 41.0, "total_rooms": 880.0,
    "total_bedrooms": 129.0, "population": 322.0, "households": 126.0, "median_income": 8.3252,
    "ocean_proximity": "NEAR BAY",
}
