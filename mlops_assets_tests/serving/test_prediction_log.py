"""Every prediction lands in the Parquet log, and GET /predictions/{id} tells its whole lineage."""

import math
import time
import uuid

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mlops_assets.projects.housing.domain import NUMERIC_FEATURES, RAW_FEATURES

from .conftest import SEED_RECORD, serving, wait_for

LOG_COLUMNS = [
    "request_id",
    "row_index",
    "predicted_at",
    "route",
    "worker",
    "model_name",
    "model_version",
    "model_run_id",
    *RAW_FEATURES,
    "prediction",
]


def log_files(folder) -> list:
    return sorted(folder.glob("date=*/part-*.parquet"))


def test_predictions_are_logged_with_inputs_outputs_and_version(registry, settings_for, tmp_path) -> None:
    model = registry.new_model(["v1"], alias="v1")
    settings = settings_for(model)
    records = [SEED_RECORD, {**SEED_RECORD, "total_bedrooms": None, "ocean_proximity": "INLAND"}]

    with serving(settings) as client:
        single = client.post("/predict", json=SEED_RECORD).json()
        batch = client.post("/predict", json=records).json()
        mlflow_style = client.post("/invocations", json={"dataframe_records": [SEED_RECORD]})
        wait_for(
            lambda: (
                len(pq.read_table(settings.prediction_log_dir).column("request_id")) >= 4
                if log_files(settings.prediction_log_dir)
                else False
            ),
            what="the log to be written",
        )

    files = log_files(settings.prediction_log_dir)
    assert files and not list(settings.prediction_log_dir.rglob(".*.tmp")), "no partial files left behind"
    table = ds.dataset(settings.prediction_log_dir, format="parquet", partitioning="hive").to_table()
    assert table.schema.names[: len(LOG_COLUMNS)] == LOG_COLUMNS and "date" in table.schema.names
    assert table.schema.field("predicted_at").type == pa.timestamp("ms", tz="UTC")
    assert all(table.schema.field(name).type == pa.float64() for name in NUMERIC_FEATURES)
    rows = {(row["request_id"], row["row_index"]): row for row in table.to_pylist()}
    assert len(rows) == 4

    logged_single = rows[(single["request_id"], 0)]
    assert {name: logged_single[name] for name in RAW_FEATURES} == SEED_RECORD
    assert logged_single["prediction"] == single["predictions"][0]
    assert (logged_single["model_name"], logged_single["model_version"]) == (model.name, model.versions["v1"])
    assert logged_single["model_run_id"] == registry.reference.client.get_model_version(model.name, model.versions["v1"]).run_id
    assert logged_single["route"] == "/predict"
    assert rows[(batch["request_id"], 1)]["total_bedrooms"] is None  # missing stays missing (null, not NaN)
    assert rows[(batch["request_id"], 1)]["prediction"] == batch["predictions"][1]
    assert rows[(mlflow_style.headers["x-request-id"], 0)]["route"] == "/invocations"
    assert abs(logged_single["predicted_at"].timestamp() - time.time()) < 300
    assert str(logged_single["date"]) == logged_single["predicted_at"].strftime("%Y-%m-%d")


def test_the_lineage_of_one_prediction(registry, settings_for) -> None:
    model = registry.new_model(["v1"], alias="v1")
    version = registry.reference.client.get_model_version(model.name, model.versions["v1"])
    run = registry.reference.client.get_run(version.run_id)

    with serving(settings_for(model)) as client:
        answer = client.post("/predict", json=[SEED_RECORD, {**SEED_RECORD, "median_income": 2.5}]).json()
        from_memory = client.get(f"/predictions/{answer['request_id']}")  # possibly before the flush
        wait_for(lambda: log_files(settings_for(model).prediction_log_dir), what="a log file")
        time.sleep(0.5)
        from_files = client.get(f"/predictions/{answer['request_id']}")
        unknown = client.get(f"/predictions/{uuid.uuid4()}")
        not_an_id = client.get("/predictions/..%2F..%2Fetc%2Fpasswd")

    for response in (from_memory, from_files):
        assert response.status_code == 200, response.text
        lineage = response.json()
        assert lineage["request_id"] == answer["request_id"]
        assert [row["prediction"] for row in lineage["rows"]] == answer["predictions"]
        assert lineage["rows"][1]["features"]["median_income"] == 2.5
        assert lineage["route"] == "/predict"
        assert lineage["model"]["model_version"] == model.versions["v1"]
        assert lineage["model"]["mlflow_run_id"] == version.run_id
        assert lineage["model"]["dagster_run_id"] == version.tags["dagster_run_id"]
        assert lineage["model"]["features_version"] == version.tags["features_version"]
        assert lineage["model"]["features_digest"] == version.tags["features_digest"]
        assert lineage["model"]["code_version"] == version.tags["code_version"]
        assert lineage["model"]["evaluated_on"] == version.tags["evaluated_on"]
        assert math.isclose(lineage["model"]["holdout_metrics"]["rmse"], run.data.metrics["holdout_rmse"])
        assert set(lineage["model"]["holdout_metrics"]) == {"rmse", "mae", "r2"}
    assert unknown.status_code == 404 and "No prediction logged" in unknown.json()["detail"]
    assert not_an_id.status_code == 404


def test_the_model_route_tells_version_lineage_and_metrics(served_v1, registry) -> None:
    state = served_v1.get("/model").json()
    version = registry.reference.client.get_model_version(state["name"], state["version"])

    assert state["alias"] == "production" and state["version"] == str(version.version)
    assert state["lineage"]["mlflow_run_id"] == version.run_id
    assert state["lineage"]["features_version"] == version.tags["features_version"]
    assert state["lineage"]["holdout_metrics"]["r2"] > 0.5
    assert state["predictor"] == "compiled-forest"
    assert state["loaded_at"] and state["refused_versions"] == []


def test_rows_beyond_the_memory_budget_are_dropped_and_counted(registry, settings_for) -> None:
    model = registry.new_model(["v1"], alias="v1")
    settings = settings_for(model, prediction_log_max_pending_rows=30, prediction_log_flush_seconds=3600)

    with serving(settings) as client:
        kept = client.post("/predict", json=[SEED_RECORD] * 25).json()
        dropped = client.post("/predict", json=[SEED_RECORD] * 25)  # 50 > 30 pending rows
        metrics = client.get("/metrics").text
    # leaving the app flushed what was pending

    assert dropped.status_code == 200, "a full log never fails a prediction"
    assert 'serving_prediction_log_rows_dropped_total{reason="buffer_full"} 25' in metrics
    logged = pq.read_table(settings.prediction_log_dir).column("request_id").to_pylist()
    assert logged == [kept["request_id"]] * 25


def test_the_oldest_files_are_pruned_to_stay_within_the_disk_budget(registry, settings_for) -> None:
    model = registry.new_model(["v1"], alias="v1")
    settings = settings_for(model, prediction_log_flush_seconds=0.1, prediction_log_max_bytes=25_000)

    with serving(settings) as client:
        first = client.post("/predict", json=[SEED_RECORD] * 10).json()["request_id"]
        for _ in range(12):  # one file of ~5 KB per flush against a 25 KB budget
            last = client.post("/predict", json=[SEED_RECORD] * 10).json()["request_id"]
            time.sleep(0.25)
        metrics = client.get("/metrics").text

    files = log_files(settings.prediction_log_dir)
    logged = set(pq.read_table(settings.prediction_log_dir).column("request_id").to_pylist())
    assert sum(path.stat().st_size for path in files) <= 25_000
    assert last in logged and first not in logged
    assert "serving_prediction_log_files_pruned_total 0\n" not in metrics
