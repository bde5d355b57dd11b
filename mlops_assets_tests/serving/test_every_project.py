"""One app serves every project: `python -m serving` over real HTTP, on a registry holding a model of each.

Housing, churn and iris models are logged the way the pipeline logs them (the platform's
`log_project_model`, through `serving.reference_model`), in a registry of this module's own: the
session registry's apps must not start serving churn and iris. Iris has no `production` alias when the
server starts; it is served once the alias appears, without a restart.
"""

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlops_assets_tests.conftest import PROJECTS, REFERENCE_DATA_DIR
from mlops_assets_tests.processes import stop
from serving.reference_model import ReferenceRegistry, train_and_register, typed_reference_frame

from .conftest import ALIAS, SEED_RECORD, start_serving_process, wait_for

ROWS_COMPARED = 60


@dataclass
class ProjectsServer:
    base: str
    registry: ReferenceRegistry
    frames: dict[str, pd.DataFrame]  # project -> typed rows (its domain's features and target)
    server: subprocess.Popen
    iris_before_its_alias: httpx.Response  # /models/iris/predict while iris had no production version
    log_root: Path

    def post(self, path: str, body: object) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body, timeout=30)

    def pyfunc(self, project: str):  # noqa: ANN201
        import mlflow.pyfunc

        model_name = PROJECTS[project].model_name
        version = self.registry.client.get_model_version_by_alias(model_name, ALIAS).version
        return mlflow.pyfunc.load_model(self.registry.client.get_model_version_download_uri(model_name, version))


def typed_rows(project: str) -> pd.DataFrame:
    """The reference CSV as the project's cleaned data types it: numbers as float64, rows without a number dropped."""
    return typed_reference_frame(PROJECTS[project], REFERENCE_DATA_DIR)


def records_of(frame: pd.DataFrame, project: str) -> list[dict]:
    rows = frame[list(PROJECTS[project].domain.raw_features)].to_dict("records")
    return [{key: None if isinstance(value, float) and np.isnan(value) else value for key, value in row.items()} for row in rows]


@pytest.fixture(scope="module")
def every_project(registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectsServer]:
    root = tmp_path_factory.mktemp("every_project")
    own = ReferenceRegistry.create(root / "mlflow")
    frames = {project: typed_rows(project) for project in ("churn", "iris")}
    # Housing: the session's first version, registered again here (training it anew would cost more).
    housing = own.register_source(
        PROJECTS["housing"].model_name,
        registry.reference.client.get_model_version_download_uri(*registry.sources["v1"]),
        run_id=None,
        tags={},
    )
    own.move_alias(PROJECTS["housing"].model_name, ALIAS, housing)
    train_and_register(own, frames["churn"], model_name=PROJECTS["churn"].model_name, project=PROJECTS["churn"], alias=ALIAS)
    train_and_register(own, frames["iris"], model_name=PROJECTS["iris"].model_name, project=PROJECTS["iris"])  # no alias yet

    server, base, log_path = start_serving_process(root, own.tracking_uri, workers=1)
    try:
        wait_for(
            lambda: _status(f"{base}/models/churn") == 200 and _status(f"{base}/ready") == 200,
            timeout=120,
            what=f"housing and churn served ({log_path})",
        )
        iris_before = httpx.post(f"{base}/models/iris/predict", json=records_of(frames["iris"].head(1), "iris")[0], timeout=30)
        yield ProjectsServer(base, own, frames, server, iris_before, root / "prediction_log")
    finally:
        stop(server, grace=30)


@pytest.fixture(scope="module")
def iris_in_production(every_project: ProjectsServer) -> ProjectsServer:
    """Iris's alias set while the server runs, and the server serving it."""
    model_name = PROJECTS["iris"].model_name
    (version,) = every_project.registry.client.search_model_versions(f"name = '{model_name}'")
    every_project.registry.move_alias(model_name, ALIAS, version.version)
    wait_for(lambda: _status(f"{every_project.base}/models/iris") == 200, timeout=60, what="iris to be served")
    return every_project


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


def test_a_project_whose_alias_appears_after_the_start_is_served_without_a_restart(iris_in_production) -> None:
    served = iris_in_production
    before = served.iris_before_its_alias

    after = served.post("/models/iris/predict", records_of(served.frames["iris"].head(1), "iris")[0])

    assert before.status_code == 503, before.text
    assert f"models:/{PROJECTS['iris'].model_name}@{ALIAS}" in before.json()["detail"]
    assert after.status_code == 200, after.text
    assert served.server.poll() is None  # the same process throughout


@pytest.mark.parametrize("project", ["churn", "iris"])
def test_a_classifier_answers_labels_and_probabilities_equal_to_pyfunc(iris_in_production, project: str) -> None:
    served = iris_in_production
    rows = served.frames[project].sample(ROWS_COMPARED, random_state=7)
    features = rows[list(PROJECTS[project].domain.raw_features)]
    pyfunc_model = served.pyfunc(project)
    expected_labels = [str(label) for label in pyfunc_model.predict(features)]
    classifier = pyfunc_model.get_raw_model()

    def probabilities(frame: pd.DataFrame) -> list[dict]:
        return [dict(zip(map(str, classifier.classes_), row, strict=True)) for row in classifier.predict_proba(frame)]

    # The rows of one call, as one call: a linear model's last bit depends on how many rows BLAS multiplies at once.
    expected_probabilities = probabilities(features.iloc[:40]) + [
        row for position in range(40, len(features)) for row in probabilities(features.iloc[position : position + 1])
    ]
    records = records_of(rows, project)

    batch = served.post(f"/models/{project}/predict", records[:40])
    singles = [served.post(f"/models/{project}/predict", record) for record in records[40:]]
    invocations = served.post(f"/models/{project}/invocations", {"dataframe_records": records})

    answers = [batch, *singles]
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200][:1]
    bodies = [answer.json() for answer in answers]
    version = served.registry.client.get_model_version_by_alias(PROJECTS[project].model_name, ALIAS).version
    for body, answer in zip(bodies, answers, strict=True):
        assert set(body) == {"request_id", "model_name", "model_version", "predictions", "probabilities"}
        assert (body["model_name"], body["model_version"]) == (PROJECTS[project].model_name, str(version))
        assert answer.headers["x-request-id"] == body["request_id"]
    assert [label for body in bodies for label in body["predictions"]] == expected_labels
    assert [row for body in bodies for row in body["probabilities"]] == expected_probabilities  # to the bit
    assert invocations.status_code == 200 and invocations.json() == {"predictions": expected_labels}


def test_each_project_logs_its_predictions_in_its_own_folder(iris_in_production) -> None:
    import pyarrow.dataset as ds

    served = iris_in_production
    answer = served.post("/models/churn/predict", records_of(served.frames["churn"].head(1), "churn")[0]).json()
    folder = served.log_root / PROJECTS["churn"].model_name

    def logged() -> list[dict]:
        if not folder.is_dir() or not list(folder.glob("date=*/part-*.parquet")):
            return []
        table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
        return [row for row in table.to_pylist() if row["request_id"] == answer["request_id"]]

    (row,) = wait_for(logged, what="the churn prediction in churn's log")
    assert row["prediction"] == answer["predictions"][0] and row["route"] == "/models/churn/predict"
    assert row["Contract"] == served.frames["churn"]["Contract"].iloc[0]


def test_the_default_routes_answer_for_the_default_project_and_an_unknown_project_is_404(every_project) -> None:
    served = every_project

    default = served.post("/predict", SEED_RECORD)
    named = served.post("/models/housing/predict", SEED_RECORD)
    unknown = served.post("/models/wine/predict", SEED_RECORD)

    assert default.status_code == named.status_code == 200
    assert default.json()["predictions"] == named.json()["predictions"]
    assert default.json()["model_name"] == PROJECTS["housing"].model_name
    assert unknown.status_code == 404 and "wine" in unknown.json()["detail"] and "churn" in unknown.json()["detail"]


def _churn_record(served: ProjectsServer) -> dict:
    return records_of(served.frames["churn"].head(1), "churn")[0]


def _iris_record(served: ProjectsServer) -> dict:
    return records_of(served.frames["iris"].head(1), "iris")[0]


# (project, how the record is broken, the field the 422 must name, a phrase of its reason)
REFUSALS = [
    ("housing", lambda s: {**SEED_RECORD, "latitude": 99.0}, "latitude", "<= 42.1"),
    ("churn", lambda s: {**_churn_record(s), "Contract": "Three year"}, "Contract", "enum"),
    ("churn", lambda s: {k: v for k, v in _churn_record(s).items() if k != "tenure"}, "tenure", "missing"),
    ("churn", lambda s: {**_churn_record(s), "MonthlyCharges": "29.85"}, "MonthlyCharges", "Expected `float`"),
    ("iris", lambda s: {**_iris_record(s), "petal_width": 0.0}, "petal_width", ">= 0.05"),
    ("iris", lambda s: {**_iris_record(s), "species": "setosa"}, "species", "unknown field"),
]


@pytest.mark.parametrize(("project", "broken", "field", "reason"), REFUSALS, ids=[f"{p}-{f}" for p, _, f, _ in REFUSALS])
def test_a_bad_record_is_a_422_naming_the_field_and_the_reason(iris_in_production, project, broken, field, reason) -> None:
    response = iris_in_production.post(f"/models/{project}/predict", broken(iris_in_production))

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["field"] == field and field in body["detail"]
    assert reason in body["errors"][0]["reason"], body


# --- the Open Inference Protocol, through a real client of it ---------------------------------------


def triton_inputs(frame: pd.DataFrame, project: str, *, binary: bool) -> list:
    import tritonclient.http as triton

    domain = PROJECTS[project].domain
    inputs = []
    for name in domain.raw_features:
        categorical = name in domain.categorical_features
        values = frame[name].to_numpy(dtype=object if categorical else np.float64)
        tensor = triton.InferInput(name, [len(values)], "BYTES" if categorical else "FP64")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.fixture(scope="module")
def triton_client(iris_in_production):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=iris_in_production.base.removeprefix("http://"), network_timeout=30)
    yield client
    client.close()


def test_the_open_inference_protocol_tells_health_readiness_and_typed_metadata(triton_client) -> None:
    churn = triton_client.get_model_metadata("churn")
    iris = triton_client.get_model_metadata(PROJECTS["iris"].model_name)  # the registered model's name works too

    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert all(triton_client.is_model_ready(name) for name in ("housing", "churn", "iris"))
    assert not triton_client.is_model_ready("wine")
    inputs = {tensor["name"]: tensor["datatype"] for tensor in churn["inputs"]}
    assert inputs["Contract"] == "BYTES" and inputs["tenure"] == "FP64" and set(inputs) == set(PROJECTS["churn"].domain.raw_features)
    assert {tensor["name"]: tensor["datatype"] for tensor in churn["outputs"]} == {"predictions": "BYTES", "probabilities": "FP64"}
    assert iris["name"] == "iris" and iris["versions"] == ["1"] and iris["parameters"]["classes"] == list(PROJECTS["iris"].domain.target_classes)


@pytest.mark.parametrize(("project", "binary"), [("churn", True), ("iris", False)], ids=["churn-binary-tensors", "iris-json-tensors"])
def test_a_triton_client_infers_labels_and_probabilities_equal_to_pyfunc(iris_in_production, triton_client, project, binary) -> None:
    import tritonclient.http as triton

    served = iris_in_production
    rows = served.frames[project].sample(25, random_state=11)
    features = rows[list(PROJECTS[project].domain.raw_features)]
    pyfunc_model = served.pyfunc(project)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("predictions", "probabilities")]

    result = triton_client.infer(project, triton_inputs(rows, project, binary=binary), outputs=outputs)

    labels = [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("predictions")]
    assert labels == [str(label) for label in pyfunc_model.predict(features)]
    np.testing.assert_array_equal(result.as_numpy("probabilities"), pyfunc_model.get_raw_model().predict_proba(features))
    answer = result.get_response()
    assert (answer["model_name"], answer["model_version"]) == (project, "1")
    assert answer["parameters"]["registered_model"] == PROJECTS[project].model_name and answer["parameters"]["request_id"]


def test_a_triton_client_infers_housing_values_as_predict_does(iris_in_production, triton_client, registry) -> None:
    served = iris_in_production
    rows = registry.frame.dropna().sample(10, random_state=5)

    result = triton_client.infer("housing", triton_inputs(rows, "housing", binary=True))  # outputs in binary by default

    expected = served.post("/models/housing/predict", records_of(rows, "housing")).json()["predictions"]
    assert result.as_numpy("predictions").tolist() == expected


def test_a_bad_tensor_is_a_400_naming_the_input(iris_in_production, triton_client) -> None:
    from tritonclient.utils import InferenceServerException

    rows = iris_in_production.frames["iris"].head(3).assign(petal_width=[0.2, 12.0, 0.2])

    with pytest.raises(InferenceServerException) as refused:
        triton_client.infer("iris", triton_inputs(rows, "iris", binary=False))

    assert refused.value.status() == "400"
    assert "petal_width" in refused.value.message() and "row 1" in refused.value.message() and "<= 4.0" in refused.value.message()


def test_the_openapi_document_describes_every_project_record_and_the_v2_routes(every_project) -> None:
    document = httpx.get(f"{every_project.base}/schema/openapi.json", timeout=30).json()

    body = document["paths"]["/models/{project}/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    records = {option["title"]: option for option in body["anyOf"]}
    assert set(records) == {"housing", "churn", "iris"}
    churn = next(option for option in records["churn"]["anyOf"] if option.get("type") == "object")
    assert churn["properties"]["Contract"]["enum"] == list(PROJECTS["churn"].domain.categories["Contract"])
    assert churn["properties"]["tenure"]["maximum"] == PROJECTS["churn"].domain.value_ranges["tenure"][1]
    assert {"/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready", "/v2/models/{name}/infer"} <= set(
        document["paths"]
    )
