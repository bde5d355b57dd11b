"""POST /predict: what it accepts, and how it refuses everything else (always 4xx, naming the field)."""

import json
import uuid

import pytest

from mlops_assets.projects.housing.domain import NUMERIC_FEATURES, OCEAN_PROXIMITY_CATEGORIES, OPTIONAL_FEATURES, RAW_FEATURES, VALUE_RANGES

from .conftest import SEED_RECORD

REQUIRED = [name for name in RAW_FEATURES if name not in OPTIONAL_FEATURES]


def assert_refused(response, status: int, field: str | None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status
    assert "Traceback" not in response.text and 'File "' not in response.text
    if field is not None:
        assert body["errors"][0]["field"] == field, body
        assert field in body["detail"]
    return body


def test_the_seed_payload_is_predicted_as_is(served_v1) -> None:
    response = served_v1.post("/predict", json=SEED_RECORD)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"request_id", "model_name", "model_version", "predictions"}
    assert uuid.UUID(body["request_id"]).version == 7
    assert response.headers["x-request-id"] == body["request_id"]
    assert body["model_version"] == "1"
    assert body["model_name"].startswith("housing_test_")
    assert len(body["predictions"]) == 1
    assert 50_000 < body["predictions"][0] < 600_000  # a plausible Bay Area price


def test_a_list_of_records_gives_one_prediction_per_record_in_order(served_v1, registry) -> None:
    records = registry.frame[list(RAW_FEATURES)].iloc[:7].to_dict("records")

    together = served_v1.post("/predict", json=records).json()["predictions"]
    one_by_one = [served_v1.post("/predict", json=record).json()["predictions"][0] for record in records]

    assert together == one_by_one
    assert len(set(together)) == 7


@pytest.mark.parametrize("missing", ["left out", "null"])
def test_total_bedrooms_may_be_missing(served_v1, missing: str) -> None:
    record = {key: value for key, value in SEED_RECORD.items() if key != "total_bedrooms"}
    if missing == "null":
        record["total_bedrooms"] = None

    response = served_v1.post("/predict", json=record)

    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0] != served_v1.post("/predict", json=SEED_RECORD).json()["predictions"][0]


@pytest.mark.parametrize("field", REQUIRED)
def test_each_required_field_missing_is_named(served_v1, field: str) -> None:
    record = {key: value for key, value in SEED_RECORD.items() if key != field}

    body = assert_refused(served_v1.post("/predict", json=record), 422, field)

    assert "missing" in body["errors"][0]["reason"]


@pytest.mark.parametrize("field", REQUIRED)
def test_each_required_field_null_is_named(served_v1, field: str) -> None:
    assert_refused(served_v1.post("/predict", json={**SEED_RECORD, field: None}), 422, field)


@pytest.mark.parametrize("field", RAW_FEATURES)
@pytest.mark.parametrize("wrong", ["a string", True, [1.0], {"value": 1.0}])
def test_each_field_of_the_wrong_type_is_named(served_v1, field: str, wrong: object) -> None:
    if field == "ocean_proximity" and wrong == "a string":
        wrong = 3.0
    elif field in NUMERIC_FEATURES and wrong == "a string":
        wrong = str(SEED_RECORD[field])  # a number sent as a string is not a number

    body = assert_refused(served_v1.post("/predict", json={**SEED_RECORD, field: wrong}), 422, field)

    assert "Expected" in body["errors"][0]["reason"]


@pytest.mark.parametrize("field", NUMERIC_FEATURES)
@pytest.mark.parametrize("side", ["below", "above"])
def test_each_number_outside_its_plausible_range_is_named(served_v1, field: str, side: str) -> None:
    low, high = VALUE_RANGES[field]
    value = low - 1.0 if side == "below" else high + 1.0

    body = assert_refused(served_v1.post("/predict", json={**SEED_RECORD, field: value}), 422, field)

    bound = low if side == "below" else high
    assert str(bound) in body["errors"][0]["reason"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "nan"])
def test_nan_and_infinity_are_not_numbers(served_v1, literal: str) -> None:
    body = json.dumps(SEED_RECORD).replace("8.3252", literal)

    assert_refused(served_v1.post("/predict", content=body), 400, None)


@pytest.mark.parametrize("huge", ["1e999", "-1e999"])
def test_numbers_that_overflow_to_infinity_are_out_of_range(served_v1, huge: str) -> None:
    body = json.dumps(SEED_RECORD).replace("8.3252", huge)

    assert_refused(served_v1.post("/predict", content=body), 422, "median_income")


@pytest.mark.parametrize("category", ["NEAR_BAY", "near bay", "", "MARS"])
def test_unknown_categories_are_named(served_v1, category: str) -> None:
    body = assert_refused(served_v1.post("/predict", json={**SEED_RECORD, "ocean_proximity": category}), 422, "ocean_proximity")

    assert "enum" in body["errors"][0]["reason"]


def test_every_known_category_is_accepted(served_v1) -> None:
    for category in OCEAN_PROXIMITY_CATEGORIES:
        assert served_v1.post("/predict", json={**SEED_RECORD, "ocean_proximity": category}).status_code == 200


@pytest.mark.parametrize("extra", ["median_house_value", "id", "Longitude"])
def test_extra_fields_are_named(served_v1, extra: str) -> None:
    body = assert_refused(served_v1.post("/predict", json={**SEED_RECORD, extra: 1.0}), 422, extra)

    assert "unknown field" in body["errors"][0]["reason"]


def test_an_error_in_a_batch_names_the_record(served_v1) -> None:
    records = [SEED_RECORD, SEED_RECORD, {**SEED_RECORD, "latitude": 99.0}]

    body = assert_refused(served_v1.post("/predict", json=records), 422, "latitude")

    assert body["errors"][0]["location"] == "$[2].latitude"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"{'longitude': 1}",
        b"\xff\xfe",
        b'{"ocean_proximity": "\xff"}',
        b'{"longitude": -122.2,',
        json.dumps(SEED_RECORD).encode() + b" trailing",
    ],
)
def test_empty_and_malformed_bodies_are_400(served_v1, body: bytes) -> None:
    assert_refused(served_v1.post("/predict", content=body), 400, None)


@pytest.mark.parametrize("body", ["[]", '"a string"', "42", "null", "[42]", "[[]]"])
def test_json_of_the_wrong_shape_is_422(served_v1, body: str) -> None:
    assert_refused(served_v1.post("/predict", content=body), 422, None)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "text/csv", "application/xml"])
def test_a_body_declared_as_something_else_than_json_is_415(served_v1, content_type: str) -> None:
    response = served_v1.post("/predict", content=json.dumps(SEED_RECORD), headers={"content-type": content_type})

    assert response.status_code == 415
    assert "content-type" in response.json()["detail"] and content_type in response.json()["detail"]
    accepted = served_v1.post("/predict", content=json.dumps(SEED_RECORD), headers={"content-type": "application/json; charset=utf-8"})
    assert accepted.status_code == 200


def test_a_batch_beyond_the_limit_is_refused(served_v1) -> None:
    # served_v1 allows 50 records per request
    assert served_v1.post("/predict", json=[SEED_RECORD] * 50).status_code == 200

    body = assert_refused(served_v1.post("/predict", json=[SEED_RECORD] * 51), 422, None)

    assert "length <= 50" in body["errors"][0]["reason"]


def test_a_body_beyond_the_size_limit_is_413(served_v1) -> None:
    # served_v1 allows 64 KiB bodies; padding with whitespace keeps the JSON valid
    body = json.dumps(SEED_RECORD) + " " * (64 * 1024)

    response = served_v1.post("/predict", content=body)

    assert response.status_code == 413
    assert "Traceback" not in response.text


def test_garbage_never_gets_a_5xx(served_v1) -> None:
    bodies = [
        b"\x00" * 100,
        b'{"longitude": ' + b"9" * 5000 + b"}",
        b"[" * 5000 + b"]" * 5000,
        json.dumps({"\u2603": "\u2603"}).encode(),
        json.dumps([SEED_RECORD, None]).encode(),
        json.dumps({**SEED_RECORD, "longitude": 10**400}).encode(),
    ]
    for body in bodies:
        for route in ("/predict", "/invocations"):
            response = served_v1.post(route, content=body, headers={"content-type": "application/json"})
            assert 400 <= response.status_code < 500, (route, body[:40], response.status_code, response.text)


def test_the_openapi_document_carries_the_constraints(served_v1) -> None:
    document = served_v1.get("/schema/openapi.json").json()

    predict = document["paths"]["/predict"]["post"]
    schema = predict["requestBody"]["content"]["application/json"]["schema"]
    record = next(option for option in schema["anyOf"] if option.get("type") == "object")
    assert record["properties"]["median_income"]["maximum"] == VALUE_RANGES["median_income"][1]
    assert record["properties"]["longitude"]["minimum"] == VALUE_RANGES["longitude"][0]
    assert record["properties"]["ocean_proximity"]["enum"] == list(OCEAN_PROXIMITY_CATEGORIES)
    assert set(record["required"]) == set(REQUIRED)
    assert record["additionalProperties"] is False
    assert "/invocations" in document["paths"] and "/model" in document["paths"] and "/metrics" in document["paths"]
