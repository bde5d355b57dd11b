"""The app predicts exactly what MLflow's pyfunc predicts, on every path, and speaks MLflow's protocol."""

import io
import json

import numpy as np
import pandas as pd
import pytest

from mlops_assets.projects.housing.domain import CATEGORY, RAW_FEATURES
from serving.batching import columns_of
from serving.fast_predict import SMALL_BATCH_ROWS, FastPredictor

from .conftest import SEED_RECORD, serving


def records_of(frame: pd.DataFrame) -> list[dict]:
    rows = frame[list(RAW_FEATURES)].to_dict("records")
    return [{key: None if isinstance(value, float) and np.isnan(value) else value for key, value in row.items()} for row in rows]


@pytest.fixture(scope="module")
def sample(registry) -> pd.DataFrame:
    """Rows with a missing total_bedrooms, every category, and edge values (zero rooms: inf/NaN ratios)."""
    frame = registry.frame
    missing = frame[frame["total_bedrooms"].isna()].head(20)
    rest = frame.dropna().sample(180, random_state=3)
    edges = frame.dropna().head(3).assign(total_rooms=0.0, households=0.0, population=0.0)
    return pd.concat([missing, rest, edges], ignore_index=True)


def test_every_fast_path_equals_pyfunc_on_the_whole_reference_data(registry) -> None:
    import mlflow.pyfunc

    location = registry.reference.client.get_model_version_download_uri(*registry.sources["v1"])
    pyfunc_model = mlflow.pyfunc.load_model(location)
    frame = registry.frame[list(RAW_FEATURES)]
    expected = np.asarray(pyfunc_model.predict(frame), dtype=np.float64)
    predictor = FastPredictor(pyfunc_model.get_raw_model())
    columns = {name: frame[name].to_numpy() for name in RAW_FEATURES}

    paths = predictor.predict_every_path(columns)

    assert set(paths) == {"compiled-forest", "sklearn"}
    for path, predictions in paths.items():
        np.testing.assert_array_equal(predictions, expected, err_msg=path)
    for size in (1, 2, 17, SMALL_BATCH_ROWS, SMALL_BATCH_ROWS + 1):
        np.testing.assert_array_equal(predictor.predict({k: v[:size] for k, v in columns.items()}), expected[:size])


def test_predict_equals_pyfunc_single_and_batched(served_v1, registry, sample) -> None:
    expected = registry.expected("v1", sample)
    records = records_of(sample)

    batched = (
        served_v1.post("/predict", json=records[:50]).json()["predictions"]
        + served_v1.post("/predict", json=records[50:100]).json()["predictions"]
    )
    single = [served_v1.post("/predict", json=record).json()["predictions"][0] for record in records[100:]]

    np.testing.assert_array_equal(np.array(batched + single), expected)


# --- POST /invocations ---------------------------------------------------------------------------


def invocation_payloads(frame: pd.DataFrame) -> dict[str, tuple[str, bytes]]:
    records = records_of(frame)
    columns = {name: [record[name] for record in records] for name in RAW_FEATURES}
    return {
        "dataframe_split": (
            "application/json",
            json.dumps(
                {"dataframe_split": {"columns": list(RAW_FEATURES), "data": [list(r.values()) for r in records]}}
            ).encode(),
        ),
        # What pandas clients send: `to_json(orient="split")`, with an index and NaN as null.
        "dataframe_split_pandas": (
            "application/json",
            ('{"dataframe_split": ' + frame[list(RAW_FEATURES)].to_json(orient="split") + "}").encode(),
        ),
        "dataframe_records": ("application/json", json.dumps({"dataframe_records": records}).encode()),
        "instances_records": ("application/json", json.dumps({"instances": records}).encode()),
        "instances_columns": ("application/json", json.dumps({"instances": columns}).encode()),
        "inputs_records": ("application/json", json.dumps({"inputs": records, "params": {}}).encode()),
        "inputs_columns": ("application/json; charset=utf-8", json.dumps({"inputs": columns}).encode()),
        "csv": ("text/csv", frame[list(RAW_FEATURES)].to_csv(index=False).encode()),
        "parquet": ("application/vnd.apache.parquet", _parquet(frame[list(RAW_FEATURES)])),
    }


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_invocations_in_every_format_give_the_numbers_of_predict(served_v1, registry, sample) -> None:
    subset = sample.iloc[:40]  # holds rows without total_bedrooms
    from_predict = served_v1.post("/predict", json=records_of(subset)).json()["predictions"]

    for name, (content_type, body) in invocation_payloads(subset).items():
        response = served_v1.post("/invocations", content=body, headers={"content-type": content_type})
        assert response.status_code == 200, (name, response.text)
        assert set(response.json()) == {"predictions"}, name
        assert response.json()["predictions"] == from_predict, name


def test_invocations_answer_like_mlflow_models_serve(served_v1, registry, sample) -> None:
    """The same payloads through MLflow's own scoring-server code give the same body."""
    import mlflow.pyfunc
    from mlflow.pyfunc.scoring_server import invocations

    location = registry.reference.client.get_model_version_download_uri(*registry.sources["v1"])
    pyfunc_model = mlflow.pyfunc.load_model(location)
    complete_rows = sample.dropna().iloc[:25]  # MLflow itself fails on a missing optional column

    for name, (content_type, body) in invocation_payloads(complete_rows).items():
        if name == "parquet":
            continue  # MLflow's parquet path skips schema enforcement; covered against /predict above
        mlflow_answer = invocations(body.decode(), content_type, pyfunc_model, pyfunc_model.metadata.get_input_schema())
        ours = served_v1.post("/invocations", content=body, headers={"content-type": content_type})
        assert mlflow_answer.status == 200, (name, mlflow_answer.response)
        assert json.loads(ours.text) == json.loads(mlflow_answer.response), name


def test_invocations_ignore_extra_columns_and_accept_numbers_as_strings_like_mlflow(served_v1) -> None:
    record = {**SEED_RECORD, "median_house_value": 452600.0}
    as_strings = {key: str(value) if key != CATEGORY else value for key, value in SEED_RECORD.items()}
    expected = served_v1.post("/predict", json=SEED_RECORD).json()["predictions"]

    for body in ({"dataframe_records": [record]}, {"dataframe_records": [as_strings]}, {"inputs": SEED_RECORD}):
        response = served_v1.post("/invocations", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == expected


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error_code", "needle"),
    [
        ({"dataframe_records": [SEED_RECORD], "inputs": [SEED_RECORD]}, "application/json", 400, "BAD_REQUEST", "exactly one of"),
        ({"records": [SEED_RECORD]}, "application/json", 400, "BAD_REQUEST", "exactly one of"),
        ([SEED_RECORD], "application/json", 400, "BAD_REQUEST", "exactly one of"),
        ({"dataframe_records": [{**SEED_RECORD, "median_income": 1000.0}]}, "application/json", 400, "BAD_REQUEST", "median_income"),
        ({"dataframe_records": [{**SEED_RECORD, "ocean_proximity": "MARS"}]}, "application/json", 400, "BAD_REQUEST", "ocean_proximity"),
        ({"dataframe_split": {"columns": ["longitude"], "data": [[1.0, 2.0]]}}, "application/json", 400, "BAD_REQUEST", "row 0"),
        # The model's inputs missing: MLflow's schema enforcement answers INVALID_PARAMETER_VALUE (test_mlflow_error_codes).
        ({"inputs": [[1.0, 2.0]]}, "application/json", 400, "INVALID_PARAMETER_VALUE", "inputs"),
        ({"dataframe_records": []}, "application/json", 400, "INVALID_PARAMETER_VALUE", "no records"),
        ({"dataframe_records": [SEED_RECORD]}, "text/plain", 415, "BAD_REQUEST", "content types"),
        ({"dataframe_records": [SEED_RECORD]}, "application/json; charset=latin-1", 415, "BAD_REQUEST", "UTF-8"),
        ({"dataframe_records": [SEED_RECORD]}, "application/json; format=pandas-split", 415, "BAD_REQUEST", "format"),
    ],
)
def test_invocations_refusals_use_mlflows_error_body(
    served_v1, body, content_type: str, status: int, error_code: str, needle: str
) -> None:
    response = served_v1.post("/invocations", content=json.dumps(body), headers={"content-type": content_type})

    assert response.status_code == status, response.text
    assert response.json()["error_code"] == error_code
    assert needle in response.json()["message"]
    assert "Traceback" not in response.text


def test_invocations_enforce_the_batch_limit(served_v1) -> None:
    response = served_v1.post("/invocations", json={"dataframe_records": [SEED_RECORD] * 51})

    assert response.status_code == 400
    assert "At most 50" in response.json()["message"]


def test_mlflow_health_routes_answer_too(served_v1) -> None:
    assert served_v1.get("/ping").status_code == 200
    assert served_v1.get("/version").status_code == 200


def test_columns_of_turns_missing_values_into_nan() -> None:
    columns = columns_of([(1.0, 2.0, 3.0, 4.0, None, 6.0, 7.0, 8.0, "INLAND")])

    assert np.isnan(columns["total_bedrooms"][0])
    assert columns[CATEGORY].dtype == object


def test_the_app_serves_a_model_it_loaded_itself(registry, settings_for) -> None:
    """Independent of the shared app: a fresh one, the seed payload, pyfunc's number."""
    model = registry.new_model(["v2"], alias="v2")
    expected = registry.expected("v2", pd.DataFrame([SEED_RECORD]))

    with serving(settings_for(model)) as client:
        body = client.post("/predict", json=SEED_RECORD).json()

    assert body["predictions"] == expected.tolist()
    assert body["model_version"] == model.versions["v2"]
