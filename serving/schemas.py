"""Request and response bodies of the serving API, as msgspec Structs.

The request record is generated from the housing domain module (`RAW_FEATURES`, `VALUE_RANGES`,
`OCEAN_PROXIMITY_CATEGORIES`, `OPTIONAL_FEATURES`), so the API accepts exactly the rows the pipeline
considers plausible and cannot drift from it. Bodies are decoded strictly: a number sent as a string,
NaN or infinity, an unknown category or an unknown field is a 4xx naming the field, never a guess.
"""

import re
from typing import Annotated, Any, Literal

import msgspec

from mlops_assets.projects.housing.domain import CATEGORY, OCEAN_PROXIMITY_CATEGORIES, OPTIONAL_FEATURES, RAW_FEATURES, VALUE_RANGES

OceanProximity = Literal[OCEAN_PROXIMITY_CATEGORIES]  # type: ignore[valid-type]


def _plausible_number(feature: str) -> Any:
    low, high = VALUE_RANGES[feature]
    # The bounds also keep out infinities; JSON itself has no NaN.
    return Annotated[float, msgspec.Meta(ge=low, le=high, description=f"{feature}, {low} to {high}")]


def _feature_field(feature: str) -> tuple:
    if feature == CATEGORY:
        return (feature, OceanProximity)
    if feature in OPTIONAL_FEATURES:
        return (feature, _plausible_number(feature) | None, None)
    return (feature, _plausible_number(feature))


def _record_type(name: str, *, forbid_unknown_fields: bool) -> type[msgspec.Struct]:
    # Optional fields may come anywhere in RAW_FEATURES: keyword-only fields keep the declared order.
    record = msgspec.defstruct(
        name, [_feature_field(feature) for feature in RAW_FEATURES], kw_only=True, forbid_unknown_fields=forbid_unknown_fields
    )
    record.__doc__ = (
        "One California block group, with the reference dataset's feature columns. "
        f"`{'`, `'.join(sorted(OPTIONAL_FEATURES))}` may be null or left out."
    )
    return record


# POST /predict: anything beyond the features is a client mistake worth reporting.
HousingFeatures = _record_type("HousingFeatures", forbid_unknown_fields=True)
# POST /invocations follows `mlflow models serve`, which ignores extra columns (often the target).
InvocationRecord = _record_type("InvocationRecord", forbid_unknown_fields=False)


def predict_request_type(max_batch_rows: int) -> Any:
    """One record or a bounded, non-empty list of records."""
    return HousingFeatures | Annotated[list[HousingFeatures], msgspec.Meta(min_length=1, max_length=max_batch_rows)]


def feature_rows(records: list[msgspec.Struct]) -> list[tuple]:
    """Records as tuples in RAW_FEATURES order (the Struct's field order), the batcher's input."""
    astuple = msgspec.structs.astuple
    return [astuple(record) for record in records]


class PredictionResponse(msgspec.Struct):
    request_id: str
    model_name: str
    model_version: str
    predictions: list[float]


class InvocationsResponse(msgspec.Struct):
    """The body `mlflow models serve` answers with."""

    predictions: list[float]


class FieldError(msgspec.Struct, omit_defaults=True):
    reason: str
    location: str
    field: str | None = None


class ErrorResponse(msgspec.Struct, omit_defaults=True):
    status_code: int
    detail: str
    errors: list[FieldError] = []


class MlflowErrorResponse(msgspec.Struct):
    """The error body of `mlflow models serve`, for clients written against it."""

    error_code: str
    message: str


class ModelLineage(msgspec.Struct):
    """Where a registered version comes from, as the pipeline tagged it."""

    model_name: str
    model_version: str
    mlflow_run_id: str | None
    source: str | None
    dagster_run_id: str | None
    features_version: str | None
    features_path: str | None
    features_digest: str | None
    code_version: str | None
    evaluated_on: str | None
    holdout_metrics: dict[str, float]


class RefusedVersion(msgspec.Struct):
    version: str
    stage: str
    reason: str
    refused_at: str


class ModelState(msgspec.Struct):
    name: str
    alias: str
    version: str | None
    loaded_at: str | None
    load_seconds: float | None
    predictor: str | None
    lineage: ModelLineage | None
    last_checked_at: str | None
    last_registry_error: str | None
    refused_versions: list[RefusedVersion]
    worker: str


class ReloadResponse(msgspec.Struct):
    outcome: str
    version: str | None
    detail: str


class LoggedPrediction(msgspec.Struct):
    row_index: int
    features: dict[str, float | str | None]
    prediction: float


class PredictionLineage(msgspec.Struct):
    request_id: str
    predicted_at: str
    route: str
    worker: str
    rows: list[LoggedPrediction]
    model: ModelLineage


_ERROR_LOCATION = re.compile(r"^(?P<reason>.*?)(?: - at `(?P<location>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"field `(?P<field>[^`]+)`")


def field_error(error: msgspec.ValidationError) -> FieldError:
    """msgspec's "Expected `float` <= 30.0 - at `$[2].median_income`" as field, location and reason."""
    match = _ERROR_LOCATION.match(str(error))
    assert match is not None  # the pattern matches any string
    reason, location = match["reason"], match["location"] or "$"
    if named := _NAMED_FIELD.search(reason):  # missing or unknown fields name themselves in the reason
        return FieldError(reason=reason, location=f"{location}.{named['field']}", field=named["field"])
    last = location.rsplit(".", 1)[-1] if "." in location else None
    return FieldError(reason=reason, location=location, field=last.split("[", 1)[0] if last else None)
