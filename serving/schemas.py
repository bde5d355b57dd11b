"""Response bodies of the serving API, as msgspec Structs, and the way a refused request names its field.

Request records are generated per model from its project's domain (`serving.request_schema`).
"""

import re
from collections.abc import Iterable

import msgspec


def feature_rows(records: list[msgspec.Struct]) -> list[tuple]:
    """Records as tuples in the model's column order (the Struct's field order), the batcher's input."""
    astuple = msgspec.structs.astuple
    return [astuple(record) for record in records]


class PredictionResponse(msgspec.Struct):
    """A regressor's answer: a value per record."""

    request_id: str
    model_name: str
    model_version: str
    predictions: list[float]


class ClassificationResponse(msgspec.Struct):
    """A classifier's answer: per record, the predicted label and the probability of every class."""

    request_id: str
    model_name: str
    model_version: str
    predictions: list[str]
    probabilities: list[dict[str, float]]


class InvocationsResponse(msgspec.Struct):
    """The body `mlflow models serve` answers with: pyfunc's predictions (values, or labels)."""

    predictions: list[float | str]


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
    project: str
    task: str
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
    # Beside the champion: the challenger loaded (None without one) and the traffic mode in effect.
    challenger_version: str | None = None
    traffic_mode: str = "off"


class ReloadResponse(msgspec.Struct):
    outcome: str
    version: str | None
    detail: str


class LoggedPrediction(msgspec.Struct):
    row_index: int
    features: dict[str, float | str | None]
    prediction: float | str
    # In shadow mode: what the challenger said for the same row (`shadow_version` names it).
    shadow_prediction: float | str | None = None


class PredictionLineage(msgspec.Struct):
    request_id: str
    predicted_at: str
    route: str
    worker: str
    rows: list[LoggedPrediction]
    model: ModelLineage
    answered_by: str = "champion"  # or "challenger": a canary answer, `model` is then the challenger's
    shadow_version: str | None = None


_ERROR_LOCATION = re.compile(r"^(?P<reason>.*?)(?: - at `(?P<location>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"field `(?P<field>[^`]+)`")


def field_error(error: msgspec.ValidationError, columns: Iterable[str] = ()) -> FieldError:
    """msgspec's "Expected `float` <= 30.0 - at `$[2].income`" as field, location and reason. msgspec does
    not quote keys, so a column whose name holds a dot is recognised among `columns`."""
    match = _ERROR_LOCATION.match(str(error))
    assert match is not None  # the pattern matches any string
    reason, location = match["reason"], match["location"] or "$"
    if named := _NAMED_FIELD.search(reason):  # missing or unknown fields name themselves in the reason
        return FieldError(reason=reason, location=f"{location}.{named['field']}", field=named["field"])
    if column := next((name for name in columns if location.endswith(f".{name}")), None):
        return FieldError(reason=reason, location=location, field=column)
    last = location.rsplit(".", 1)[-1] if "." in location else None
    return FieldError(reason=reason, location=location, field=last.split("[", 1)[0] if last else None)
