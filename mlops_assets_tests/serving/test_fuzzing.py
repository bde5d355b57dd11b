"""Property-based fuzzing of the prediction routes: whatever a client sends, the app answers 200 with
finite predictions, one per record, or a 4xx whose JSON body says what was wrong; never a 5xx, never a
stack trace. Records are mostly valid with a few fields broken, so that the generated requests reach
every stage (parsing, field validation, range checks, prediction), not only the JSON parser."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.projects.housing.domain import OCEAN_PROXIMITY_CATEGORIES, VALUE_RANGES

from .conftest import SEED_RECORD

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12
)


def plausible(field: str) -> st.SearchStrategy:
    if field == "ocean_proximity":
        return st.sampled_from(list(OCEAN_PROXIMITY_CATEGORIES))
    low, high = VALUE_RANGES[field]
    return st.floats(min_value=low, max_value=high, allow_nan=False)


@st.composite
def records(draw) -> dict:
    record = {}
    for field in SEED_RECORD:
        choice = draw(st.sampled_from(["plausible", "plausible", "plausible", "anything", "missing"]))
        if choice == "plausible":
            record[field] = draw(plausible(field))
        elif choice == "anything":
            record[field] = draw(json_scalars)
    if draw(st.booleans()) and draw(st.booleans()):
        record[draw(st.text(min_size=1, max_size=12))] = draw(json_scalars)
    return record


def assert_answered_cleanly(response, rows: int | None) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    body = response.json()
    if response.status_code == 200:
        predictions = body["predictions"]
        assert rows is None or len(predictions) == rows
        assert all(isinstance(value, float) and math.isfinite(value) for value in predictions)
    else:
        assert 400 <= response.status_code < 500
        assert body.get("detail") or body.get("message"), body


@FUZZ
@given(batch=st.one_of(records(), st.lists(records(), min_size=1, max_size=5)))
def test_predict_answers_any_record_cleanly(served_v1, batch) -> None:
    response = served_v1.post("/predict", content=json.dumps(batch))
    assert_answered_cleanly(response, 1 if isinstance(batch, dict) else len(batch))
    if response.status_code == 422:
        # A refusal names the field it refused, or the record's position in a batch.
        problem = response.json()["errors"][0]
        assert problem.get("field") or problem.get("location"), problem


@FUZZ
@given(rows=st.lists(records(), min_size=1, max_size=5), shape=st.sampled_from(["dataframe_records", "instances", "inputs"]))
def test_the_scoring_protocol_answers_any_record_cleanly(served_v1, rows, shape) -> None:
    response = served_v1.post("/invocations", content=json.dumps({shape: rows}), headers={"content-type": "application/json"})
    assert_answered_cleanly(response, len(rows))


@FUZZ
@given(body=json_values)
def test_any_json_document_gets_a_clean_answer(served_v1, body) -> None:
    for route in ("/predict", "/invocations"):
        response = served_v1.post(route, content=json.dumps(body), headers={"content-type": "application/json"})
        assert_answered_cleanly(response, None)


@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "text/csv"]))
def test_any_bytes_of_any_content_type_get_a_clean_answer(served_v1, body, content_type) -> None:
    for route in ("/predict", "/invocations"):
        response = served_v1.post(route, content=body, headers={"content-type": content_type})
        assert_answered_cleanly(response, None)
