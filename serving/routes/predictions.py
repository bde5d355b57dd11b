"""The prediction routes: every project's `/models/{project}/predict` and `/models/{project}/invocations`,
and `/predict` and `/invocations` for the default project, as they answered when the app served one model.

Bodies are decoded by msgspec straight from the raw bytes into the model's typed records
(`serving.request_schema`), strictly: a Litestar `data:` parameter would convert leniently, accepting
"1.5" for a number, and decode twice. The OpenAPI document still describes them, from the same
records, generated from the projects' declarations when the document is first asked for.
"""

from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.openapi.datastructures import ResponseSpec

from serving.batching import BatchResult, NoModelLoaded, PredictionFailed
from serving.metrics import PREDICTED_ROWS, Metrics
from serving.mlflow_protocol import InvocationsEnvelope, ProtocolError
from serving.prediction_log import new_request_id
from serving.request_schema import batch_type
from serving.routes.responses import RETRY_LATER, JSONBytes, declares_json, json_bytes, json_schema, read_body, with_json_body
from serving.schemas import (
    ClassificationResponse,
    ErrorResponse,
    InvocationsResponse,
    MlflowErrorResponse,
    PredictionResponse,
    feature_rows,
    field_error,
)
from serving.served_models import ModelServing, ServedModels
from serving.settings import ServingSettings
from serving.traffic import CALLER_KEY_HEADER


def caller_key(request: Request) -> str | None:
    """Who is asking, when the caller says (header x-caller-key): a canary keeps each caller on one side."""
    return request.headers.get(CALLER_KEY_HEADER) or None


class Predictions:
    """Answers a prediction request for a project's model (None: the default project's)."""

    def __init__(self, settings: ServingSettings, models: ServedModels, metrics: Metrics) -> None:
        self._settings = settings
        self._models = models
        self._metrics = metrics

    def not_serving(self, project: str | None) -> JSONBytes:
        """Why there is no model to answer with: the projects not read yet, an unknown project, or no model yet."""
        models = self._models
        if not models.loaded:
            if models.loading_error is not None:
                return json_bytes(ErrorResponse(503, f"The projects could not be read: {models.loading_error}"), 503, headers=RETRY_LATER)
            detail = f"No model is serving yet: reading the projects, then waiting for {self._settings.model_uri} in the registry."
            return json_bytes(ErrorResponse(503, detail), 503, headers=RETRY_LATER)
        serving = models.default if project is None else models[project]
        if serving is None:
            detail = f"No project {project!r} is served here; the projects are {', '.join(sorted(models.by_project))}."
            return json_bytes(ErrorResponse(404, detail), 404)
        return json_bytes(ErrorResponse(503, serving.no_model_detail), 503, headers=RETRY_LATER)

    def _serving(self, project: str | None) -> ModelServing | None:
        return self._models.default if project is None else self._models[project]

    async def predict(self, request: Request, project: str | None, route: str) -> JSONBytes:
        serving = self._serving(project)
        if serving is None or serving.holder.current is None:
            return self.not_serving(project)
        if not declares_json(request.headers.get("content-type")):
            detail = f"`content-type` must be application/json, not {request.headers.get('content-type')!r}"
            return json_bytes(ErrorResponse(415, detail), 415)
        try:
            parsed = serving.decode_predict(await read_body(request, self._settings.max_body_bytes))
        except msgspec.ValidationError as error:
            problem = field_error(error, serving.project.layout.features)
            subject = f"`{problem.field}`" if problem.field else "request body" if problem.location == "$" else problem.location
            return json_bytes(ErrorResponse(422, f"Invalid {subject}: {problem.reason}", [problem]), 422)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            # msgspec reports bytes that are not UTF-8 inside a string as a UnicodeDecodeError, not a DecodeError.
            return json_bytes(ErrorResponse(400, f"The body is not valid JSON: {error}"), 400)
        rows = feature_rows(parsed if isinstance(parsed, list) else [parsed])
        request_id = new_request_id()
        try:
            result = await serving.answer(rows, request_id, request.scope["path"] if project else route, caller_key(request))
        except NoModelLoaded:
            return self.not_serving(project)
        except PredictionFailed as error:
            return json_bytes(ErrorResponse(500, str(error)), 500)
        self._metrics.inc(PREDICTED_ROWS, (route, result.model.name, result.model.alias, result.model.version), len(rows))
        return json_bytes(_prediction_body(request_id, result), 200, request_id)

    async def invocations(self, request: Request, project: str | None, route: str) -> JSONBytes:
        serving = self._serving(project)
        if serving is None or serving.holder.current is None:
            refusal = self.not_serving(project)
            code = "RESOURCE_DOES_NOT_EXIST" if refusal.status_code == 404 else "TEMPORARILY_UNAVAILABLE"
            return json_bytes(MlflowErrorResponse(code, msgspec.json.decode(refusal.body)["detail"]), refusal.status_code)
        try:
            rows = serving.invocations.parse(await read_body(request, self._settings.max_body_bytes), request.headers.get("content-type"))
        except ProtocolError as error:
            return json_bytes(MlflowErrorResponse(error.error_code, error.message), error.status_code)
        request_id = new_request_id()
        try:
            result = await serving.answer(rows, request_id, request.scope["path"] if project else route, caller_key(request))
        except NoModelLoaded:
            return json_bytes(MlflowErrorResponse("TEMPORARILY_UNAVAILABLE", serving.no_model_detail), 503)
        except PredictionFailed as error:
            return json_bytes(MlflowErrorResponse("INTERNAL_ERROR", str(error)), 500)
        self._metrics.inc(PREDICTED_ROWS, (route, result.model.name, result.model.alias, result.model.version), len(rows))
        return json_bytes(InvocationsResponse(result.predictions), 200, request_id)


def _prediction_body(request_id: str, result: BatchResult) -> msgspec.Struct:
    model = result.model
    if result.probabilities is None:
        return PredictionResponse(request_id, model.name, model.version, result.predictions)  # type: ignore[arg-type]
    classes = model.predictor.classes
    probabilities = [dict(zip(classes, row, strict=True)) for row in result.probabilities]
    return ClassificationResponse(request_id, model.name, model.version, result.predictions, probabilities)  # type: ignore[arg-type]


# --- the OpenAPI description of the bodies, from the projects' declarations ------------------------


def _predict_body_of(project: Any, max_rows: int) -> dict[str, Any]:
    from serving.served_project import ServedProject

    return json_schema(batch_type(ServedProject.of(project, ServingSettings.from_env()).predict_record, max_rows))


def _default_predict_body() -> dict[str, Any]:
    from serving.served_project import declared_project

    return _predict_body_of(declared_project(), ServingSettings.from_env().max_batch_rows)


def _any_predict_body() -> dict[str, Any]:
    from mlops_assets.projects import load_projects

    max_rows = ServingSettings.from_env().max_batch_rows
    # One body per project: the path names which one applies.
    return {"anyOf": [_predict_body_of(project, max_rows) | {"title": project.name} for project in load_projects()]}


_PREDICT_RESPONSES = {
    200: ResponseSpec(
        PredictionResponse | ClassificationResponse,  # type: ignore[arg-type]
        description="Per record, in order: the value (regression), or the label and the class probabilities.",
    ),
    400: ResponseSpec(ErrorResponse, description="The body is not JSON."),
    413: ResponseSpec(ErrorResponse, description="The body is larger than MLOPS_SERVING_MAX_BODY_BYTES."),
    415: ResponseSpec(ErrorResponse, description="The body is declared as something other than JSON."),
    422: ResponseSpec(ErrorResponse, description="A field is missing, of the wrong type or implausible."),
    503: ResponseSpec(ErrorResponse, description="No model is in production yet."),
}
_INVOCATIONS_RESPONSES = {
    200: ResponseSpec(InvocationsResponse, description="pyfunc's predictions (values or labels), in the order of the records."),
    400: ResponseSpec(MlflowErrorResponse, description="Malformed or invalid input."),
    415: ResponseSpec(MlflowErrorResponse, description="Unsupported content type or charset."),
    503: ResponseSpec(MlflowErrorResponse, description="No model is in production yet."),
}
_INVOCATIONS_BODY = with_json_body(lambda: json_schema(InvocationsEnvelope))


class PredictionController(Controller):
    tags = ["predictions"]

    @post(
        "/predict",
        summary="Predict with the default project's model",
        description="One record, or a list of up to MLOPS_SERVING_MAX_BATCH_ROWS records, of the default project "
        "(MLOPS_SERVING_DEFAULT_MODEL).",
        operation_class=with_json_body(_default_predict_body),
        status_code=200,
        responses=_PREDICT_RESPONSES,
    )
    async def predict(self, request: Request, predictions: Predictions) -> JSONBytes:
        return await predictions.predict(request, None, "/predict")

    @post(
        "/models/{project:str}/predict",
        summary="Predict with a project's model",
        description="One record, or a list of up to MLOPS_SERVING_MAX_BATCH_ROWS records, of the project's domain.",
        operation_class=with_json_body(_any_predict_body),
        status_code=200,
        responses={**_PREDICT_RESPONSES, 404: ResponseSpec(ErrorResponse, description="No such project.")},
    )
    async def project_predict(self, request: Request, predictions: Predictions, project: str) -> JSONBytes:
        return await predictions.predict(request, project, "/models/{project}/predict")

    @post(
        "/invocations",
        summary="Score with the default project's model, in the protocol of `mlflow models serve`",
        description="JSON (dataframe_split, dataframe_records, instances, inputs), text/csv or Parquet; "
        'answers {"predictions": [...]}, the same values or labels as /predict.',
        operation_class=_INVOCATIONS_BODY,
        status_code=200,
        responses=_INVOCATIONS_RESPONSES,
    )
    async def invocations(self, request: Request, predictions: Predictions) -> JSONBytes:
        return await predictions.invocations(request, None, "/invocations")

    @post(
        "/models/{project:str}/invocations",
        summary="Score with a project's model, in the protocol of `mlflow models serve`",
        description="As /invocations, for the named project.",
        operation_class=_INVOCATIONS_BODY,
        status_code=200,
        responses={**_INVOCATIONS_RESPONSES, 404: ResponseSpec(MlflowErrorResponse, description="No such project.")},
    )
    async def project_invocations(self, request: Request, predictions: Predictions, project: str) -> JSONBytes:
        return await predictions.invocations(request, project, "/models/{project}/invocations")
