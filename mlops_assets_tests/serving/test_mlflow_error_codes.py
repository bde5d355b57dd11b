"""/invocations refuses a bad request with the `error_code` and message prefix `mlflow models serve` gives.

Clients written against `mlflow models serve` branch on `error_code` (BAD_REQUEST, INVALID_PARAMETER_VALUE)
and on the start of `message` ("Invalid input.", ...). Both servers run here for real, over sockets, on
the same registered housing model: `python -m serving` as deployed, and `mlflow models serve -m
models:/<name>@production --env-manager local`. Every error case of MLflow's own scoring-server tests
(`tests/pyfunc/test_scoring_server.py`), and every refusal its scoring server
(`mlflow/pyfunc/scoring_server/__init__.py`) and schema enforcement can give for a tabular model, is sent
to both, and the answers are compared: the same error_code, and our message starting as MLflow's while
naming the field and the reason (MLflow's prints the whole input instead).

Some answers of MLflow are not copied, and the tests below say which and why: a 500 (a bad request is
the client's fault: the app answers 4xx), text/plain without an error_code for a content type it does not
take (the app keeps the JSON error body), and a 200 for values the app refuses on every route (out of
range, unknown category, missing, of another type).
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlops_assets_tests.processes import free_port, start, stop

from .conftest import ALIAS, SEED_RECORD, start_serving_process, wait_for

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
OUR_ROUTES = ("/invocations", "/models/housing/invocations")


@dataclass(frozen=True)
class BothServers:
    mlflow_base: str
    our_base: str

    def mlflow(self, case: "BadRequest") -> httpx.Response:
        return httpx.post(
            f"{self.mlflow_base}/invocations", content=case.body, headers={"content-type": case.content_type}, timeout=30
        )

    def ours(self, case: "BadRequest", route: str) -> httpx.Response:
        return httpx.post(f"{self.our_base}{route}", content=case.body, headers={"content-type": case.content_type}, timeout=30)


@pytest.fixture(scope="module")
def both_servers(registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BothServers]:
    model = registry.new_model(["v1"], alias="v1")
    folder = tmp_path_factory.mktemp("mlflow_error_codes")
    ours, our_base, our_log = start_serving_process(
        folder, registry.tracking_uri, workers=1, environment={"MLOPS_MODEL_NAME": model.name}
    )
    try:
        mlflow_server, mlflow_base, mlflow_log = _start_mlflow_models_serve(folder, registry.tracking_uri, model.name)
        try:
            wait_for(lambda: _answers(f"{our_base}/ready", ours), timeout=90, what=f"python -m serving ready ({our_log})")
            wait_for(
                lambda: _answers(f"{mlflow_base}/ping", mlflow_server),
                timeout=90,
                what=f"mlflow models serve ready ({mlflow_log})",
            )
            yield BothServers(mlflow_base, our_base)
        finally:
            stop(mlflow_server)
    finally:
        stop(ours)


def _start_mlflow_models_serve(folder: Path, tracking_uri: str, model_name: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = folder / "mlflow_models_serve.log"
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_"))},
        "MLFLOW_TRACKING_URI": tracking_uri,
        # `mlflow models serve` runs `uvicorn` from PATH: the one of this environment.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{model_name}@{ALIAS}",
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    # In a process group of its own (`start`), so that stopping it stops the uvicorn it spawns.
    return start(command, log=log, env=environment, cwd=folder), f"http://127.0.0.1:{port}", log


def _answers(url: str, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"{process.args} exited with {process.returncode} before it was ready")
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


# --- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadRequest:
    content_type: str
    body: bytes
    prefix: str  # how MLflow's message begins (checked on MLflow's answer too); ours must begin the same
    names: str | None = None  # what our message must name besides: the field, or the part of the body


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _csv(records: list[dict]) -> bytes:
    import pandas as pd

    return pd.DataFrame(records).to_csv(index=False).encode()


def _parquet(records: list[dict]) -> bytes:
    import pandas as pd

    return pd.DataFrame(records).to_parquet()


def _with(**values: object) -> dict:
    return {**SEED_RECORD, **values}


WITHOUT_INCOME = {key: value for key, value in SEED_RECORD.items() if key != "median_income"}
SPLIT = {"columns": list(SEED_RECORD), "data": [list(SEED_RECORD.values())]}
ONE_OF = "The input must be a JSON dictionary with exactly one of the input fields"
INVALID = "Invalid input."
NOT_JSON = "Invalid input. Ensure that input is a valid JSON formatted string."
NOT_A_SPLIT_DATAFRAME = "Invalid input. Provided dataframe_split field is not a valid dataframe representation in 'split' format."
NOT_THE_SIGNATURE = "Invalid input. Data is not compatible with model signature."
UNREADABLE = "Failed to parse input as a Pandas DataFrame."
NOT_PREDICTED = "Failed to predict data"  # MLflow goes on with the input, printed
MODEL_FAILED = "Encountered an unexpected error while evaluating the model."

# `mlflow models serve` answers 400 to each; the comment says which error_code.
BAD_REQUESTS = {
    # tests/pyfunc/test_scoring_server.py, in its order: BAD_REQUEST, but for the dataframe of another model
    "malformed JSON": BadRequest(JSON, b"this is,,,, not valid json", NOT_JSON),
    "a JSON number": BadRequest(JSON, _json(1), f"{INVALID} {ONE_OF}"),
    "a JSON string": BadRequest(JSON, _json("1"), f"{INVALID} {ONE_OF}"),
    "a JSON list": BadRequest(JSON, _json([1]), f"{INVALID} {ONE_OF}"),
    "no input field": BadRequest(JSON, _json({"not": "a serialized dataframe"}), ONE_OF),
    "two input fields": BadRequest(
        JSON, _json({"dataframe_records": [], "dataframe_split": {"data": []}}), ONE_OF, "dataframe_split"
    ),
    "dataframe_split given records": BadRequest(
        JSON, _json({"dataframe_split": [SEED_RECORD]}), "Invalid input. Dataframe split format must be a dictionary. Got"
    ),
    "dataframe_records given a split dataframe": BadRequest(
        JSON, _json({"dataframe_records": SPLIT}), "Invalid input. Dataframe records format must be a list of records. Got"
    ),
    "dataframe_split with more rows than index labels": BadRequest(
        JSON, _json({"dataframe_split": {"index": [1, 2], "data": [[1], [2], [3]]}}), NOT_A_SPLIT_DATAFRAME, "index"
    ),
    "a dataframe of another model (INVALID_PARAMETER_VALUE)": BadRequest(
        JSON,
        _json({"dataframe_split": {"columns": [0], "index": list(range(10)), "data": [[n] for n in range(10)]}}),
        NOT_PREDICTED,
        "longitude",
    ),
    "empty CSV": BadRequest(CSV, b"", UNREADABLE),
    # the other refusals of the scoring server: BAD_REQUEST
    "JSON not in UTF-8": BadRequest(JSON, b'{"dataframe_records": [{"ocean_proximity": "\xff"}]}', NOT_JSON),
    "CSV not in UTF-8": BadRequest(
        CSV, b"ocean_proximity\n\xff\n", "Invalid input. Ensure that input is a valid UTF-8 encoded string."
    ),
    "a CSV line with more cells than the header": BadRequest(
        CSV, _csv([SEED_RECORD]) + b"1,2,3,4,5,6,7,8,NEAR BAY,9\n", UNREADABLE, "line 3"
    ),
    "not Parquet": BadRequest(PARQUET, b"not parquet", UNREADABLE),
    "a dataframe_split row longer than its columns": BadRequest(
        JSON, _json({"dataframe_split": {"columns": ["longitude"], "data": [[1.0, 2.0]]}}), NOT_A_SPLIT_DATAFRAME, "row 0"
    ),
    "dataframe_split data that is not a list": BadRequest(
        JSON, _json({"dataframe_split": {"columns": list(SEED_RECORD), "data": 5}}), NOT_A_SPLIT_DATAFRAME, "data"
    ),
    "dataframe_records given a string": BadRequest(
        JSON, _json({"dataframe_records": "x"}), "Invalid input. Dataframe records format must be a list of records. Got"
    ),
    # schema enforcement: the model's inputs missing, INVALID_PARAMETER_VALUE
    "dataframe_records missing a column": BadRequest(
        JSON, _json({"dataframe_records": [WITHOUT_INCOME]}), NOT_PREDICTED, "median_income"
    ),
    "dataframe_split missing a column": BadRequest(
        JSON,
        _json({"dataframe_split": {"columns": list(WITHOUT_INCOME), "data": [list(WITHOUT_INCOME.values())]}}),
        NOT_PREDICTED,
        "median_income",
    ),
    "instances missing a column": BadRequest(JSON, _json({"instances": [WITHOUT_INCOME]}), NOT_PREDICTED, "median_income"),
    "inputs missing a column": BadRequest(JSON, _json({"inputs": WITHOUT_INCOME}), NOT_PREDICTED, "median_income"),
    "CSV missing a column": BadRequest(CSV, _csv([WITHOUT_INCOME]), NOT_PREDICTED, "median_income"),
    "Parquet missing a column": BadRequest(PARQUET, _parquet([WITHOUT_INCOME]), NOT_PREDICTED, "median_income"),
    "dataframe_split without columns": BadRequest(
        JSON, _json({"dataframe_split": {"data": SPLIT["data"]}}), NOT_PREDICTED, "longitude"
    ),
    "dataframe_records of lists": BadRequest(
        JSON, _json({"dataframe_records": [[1.0, 2.0]]}), NOT_PREDICTED, "dataframe_records[0]"
    ),
    "dataframe_records of numbers": BadRequest(JSON, _json({"dataframe_records": [1, 2]}), NOT_PREDICTED, "dataframe_records[0]"),
    "instances of lists": BadRequest(JSON, _json({"instances": [[1.0, 2.0]]}), NOT_PREDICTED, "instances[0]"),
    "inputs given a number": BadRequest(JSON, _json({"inputs": 5}), NOT_PREDICTED, "inputs"),
    "inputs columns of different lengths": BadRequest(
        JSON, _json({"inputs": {"longitude": [1.0, 2.0], "latitude": [1.0]}}), NOT_PREDICTED, "inputs"
    ),
    "no dataframe_records": BadRequest(JSON, _json({"dataframe_records": []}), NOT_PREDICTED, "no records"),
    "no instances": BadRequest(JSON, _json({"instances": []}), NOT_PREDICTED, "no records"),
    "no inputs": BadRequest(JSON, _json({"inputs": []}), NOT_PREDICTED, "no records"),
    # every column and no row: the model itself fails, BAD_REQUEST
    "dataframe_split with columns and no rows": BadRequest(
        JSON, _json({"dataframe_split": {"columns": list(SEED_RECORD), "data": []}}), MODEL_FAILED, "no rows"
    ),
    "a CSV header without rows": BadRequest(CSV, ",".join(SEED_RECORD).encode() + b"\n", MODEL_FAILED, "no rows"),
    # a value its column cannot take: BAD_REQUEST, worded after the way the body was read
    "dataframe_records with a word for a number": BadRequest(
        JSON, _json({"dataframe_records": [_with(median_income="high")]}), NOT_THE_SIGNATURE, "median_income"
    ),
    "dataframe_split with a word for a number": BadRequest(
        JSON,
        _json({"dataframe_split": {"columns": list(SEED_RECORD), "data": [list(_with(median_income="high").values())]}}),
        NOT_THE_SIGNATURE,
        "median_income",
    ),
    "instances with a word for a number": BadRequest(
        JSON, _json({"instances": [_with(median_income="high")]}), INVALID, "median_income"
    ),
    "inputs with a word for a number": BadRequest(JSON, _json({"inputs": _with(median_income="high")}), INVALID, "median_income"),
    "CSV with a word for a number": BadRequest(CSV, _csv([_with(median_income="high")]), UNREADABLE, "median_income"),
}

# MLflow answers these 415 in text/plain, without an error_code.
UNSUPPORTED_CONTENT_TYPES = {
    "an unsupported content type": BadRequest(
        "not_a_supported_content_type",
        _json({"dataframe_records": [SEED_RECORD]}),
        "This predictor only supports the following content types",
    ),
    "an unknown content type parameter": BadRequest(
        f"{JSON}; something=something",
        _json({"dataframe_records": [SEED_RECORD]}),
        "Unrecognized content type parameters",
        "something",
    ),
    "a charset other than UTF-8": BadRequest(
        f"{JSON}; charset=latin-1", _json({"dataframe_records": [SEED_RECORD]}), "The scoring server only supports UTF-8"
    ),
}

# MLflow lets these through to the model and answers 200; the app refuses them as POST /predict does.
VALUES_REFUSED_HERE_ONLY = {
    "an income out of range": BadRequest(
        JSON, _json({"dataframe_records": [_with(median_income=1000.0)]}), INVALID, "median_income"
    ),
    "an unknown category": BadRequest(
        JSON, _json({"dataframe_records": [_with(ocean_proximity="MARS")]}), INVALID, "ocean_proximity"
    ),
    "a number for a category": BadRequest(
        JSON, _json({"dataframe_records": [_with(ocean_proximity=3)]}), INVALID, "ocean_proximity"
    ),
    "true for a number": BadRequest(JSON, _json({"dataframe_records": [_with(median_income=True)]}), INVALID, "median_income"),
    "null in a required column": BadRequest(
        JSON, _json({"dataframe_records": [_with(median_income=None)]}), INVALID, "median_income"
    ),
    "an empty CSV cell in a required column": BadRequest(CSV, _csv([_with(median_income=None)]), INVALID, "median_income"),
}


def _error(response: httpx.Response) -> dict:
    """The error body, or MLflow's text/plain answer as a message without error_code."""
    try:
        body = response.json()
    except ValueError:
        return {"error_code": None, "message": response.text}
    return body if isinstance(body, dict) else {"error_code": None, "message": response.text}


def _side_by_side(mlflow: httpx.Response, ours: httpx.Response) -> str:
    return f"\nmlflow {mlflow.status_code}: {mlflow.text[:600]}\nours   {ours.status_code}: {ours.text[:600]}"


@pytest.mark.parametrize("route", OUR_ROUTES)
@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_request_mlflow_refuses_gets_its_error_code_and_message_prefix(
    both_servers: BothServers, case: BadRequest, route: str
) -> None:
    mlflow, ours = both_servers.mlflow(case), both_servers.ours(case, route)
    context = _side_by_side(mlflow, ours)

    assert 400 <= mlflow.status_code < 500, context
    assert 400 <= ours.status_code < 500, context
    assert _error(mlflow)["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE"), context
    assert _error(ours)["error_code"] == _error(mlflow)["error_code"], context
    assert _error(mlflow)["message"].startswith(case.prefix), context
    assert _error(ours)["message"].startswith(case.prefix), context
    if case.names:
        assert case.names in _error(ours)["message"], context


@pytest.mark.parametrize("route", OUR_ROUTES)
@pytest.mark.parametrize("case", UNSUPPORTED_CONTENT_TYPES.values(), ids=UNSUPPORTED_CONTENT_TYPES.keys())
def test_a_content_type_mlflow_does_not_take_gets_415_with_its_message_in_a_json_error_body(
    both_servers: BothServers, case: BadRequest, route: str
) -> None:
    mlflow, ours = both_servers.mlflow(case), both_servers.ours(case, route)
    context = _side_by_side(mlflow, ours)

    assert mlflow.status_code == ours.status_code == 415, context
    assert mlflow.text.startswith(case.prefix), context
    assert _error(ours)["message"].startswith(case.prefix), context
    if case.names:
        assert case.names in _error(ours)["message"], context
    # MLflow's 415 is text/plain, without an error_code to copy. The app keeps MLflow's JSON error body,
    # with the code MLflow gives every other refusal of the request itself, so that a client reads
    # every refusal the same way.
    assert _error(mlflow)["error_code"] is None, context
    assert _error(ours)["error_code"] == "BAD_REQUEST", context


@pytest.mark.parametrize("route", OUR_ROUTES)
def test_json_nested_past_pythons_recursion_limit_gets_a_4xx_where_mlflow_answers_500(
    both_servers: BothServers, route: str
) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    case = BadRequest(JSON, b'{"dataframe_records": [{"median_income": ' + deep + b"}]}", NOT_THE_SIGNATURE, "median_income")
    mlflow, ours = both_servers.mlflow(case), both_servers.ours(case, route)
    context = _side_by_side(mlflow, ours)

    # Python's json module raises RecursionError, which MLflow does not catch: a 500 without an
    # error_code. The request is the client's fault, so the app answers 400, with the code MLflow
    # gives a value its column cannot take.
    assert mlflow.status_code == 500 and _error(mlflow)["error_code"] is None, context
    assert ours.status_code == 400, context
    assert _error(ours)["error_code"] == "BAD_REQUEST", context
    assert _error(ours)["message"].startswith(case.prefix) and case.names in _error(ours)["message"], context


@pytest.mark.parametrize("route", OUR_ROUTES)
@pytest.mark.parametrize("case", VALUES_REFUSED_HERE_ONLY.values(), ids=VALUES_REFUSED_HERE_ONLY.keys())
def test_a_value_mlflow_lets_through_is_refused_as_invalid_input_naming_the_field(
    both_servers: BothServers, case: BadRequest, route: str
) -> None:
    mlflow, ours = both_servers.mlflow(case), both_servers.ours(case, route)
    context = _side_by_side(mlflow, ours)

    assert mlflow.status_code == 200, context
    assert ours.status_code == 400, context
    assert _error(ours)["error_code"] == "BAD_REQUEST", context
    assert _error(ours)["message"].startswith(case.prefix) and case.names in _error(ours)["message"], context


@pytest.mark.parametrize("params", [{"temperature": 0.5}, 5, None], ids=["an object", "a number", "null"])
def test_params_the_model_does_not_declare_are_ignored_by_both(both_servers: BothServers, params: object) -> None:
    case = BadRequest(JSON, _json({"dataframe_records": [SEED_RECORD], "params": params}), "")
    mlflow, ours = both_servers.mlflow(case), both_servers.ours(case, "/invocations")

    assert mlflow.status_code == ours.status_code == 200, _side_by_side(mlflow, ours)
    assert ours.json() == mlflow.json()
