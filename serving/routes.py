"""The HTTP routes, built around one worker's serving state.

Every hosted project has its routes, `POST /models/{project}/predict` and `/models/{project}/invocations`;
`POST /predict` and `/invocations` answer for the default project (MLOPS_SERVING_DEFAULT_MODEL), as
they did when the app served one model. Request bodies are decoded by msgspec straight from the raw
bytes into the model's typed records (`serving.request_schema`), strictly (a Litestar `data:`
parameter would convert leniently, accepting "1.5" for a number, and decode twice). The OpenAPI
document still describes them: each body schema is generated from the same msgspec types and
attached to its operation when the document is first asked for, once the projects are read.
"""

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.exceptions.http_exceptions import ClientException, RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from serving.batching import BatchResult, NoModelLoaded, PredictionFailed
from serving.metrics import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from serving.metrics import PREDICTED_ROWS, Metrics
from serving.mlflow_protocol import CONTENT_TYPE_JSON, InvocationsEnvelope, ProtocolError
from serving.model_holder import Outcome, ReloadSignal
from serving.prediction_log import new_request_id
from serving.request_schema import batch_type
from serving.schemas import (
    ClassificationResponse,
    ErrorResponse,
    InvocationsResponse,
    LoggedPrediction,
    MlflowErrorResponse,
    ModelState,
    PredictionLineage,
    PredictionResponse,
    ReloadResponse,
    feature_rows,
    field_error,
)
from serving.served_models import ModelServing, ServedModels
from serving.settings import ServingSettings

_RELOAD_STATUS = {
    Outcome.LOADED: 200,
    Outcome.UNCHANGED: 200,
    Outcome.REFUSED: 409,
    Outcome.PREVIOUSLY_REFUSED: 409,
    Outcome.NO_ALIAS: 503,
    Outcome.REGISTRY_ERROR: 503,
}
PROJECT_PREDICT = "/models/{project:str}/predict"
PROJECT_INVOCATIONS = "/models/{project:str}/invocations"
_RETRY_LATER = [(b"retry-after", b"5")]


@dataclass
class ServingState:
    """Everything one worker process serves with."""

    settings: ServingSettings
    models: ServedModels
    metrics: Metrics
    reload_signal: ReloadSignal


def build_routes(state: ServingState) -> list[HTTPRouteHandler]:
    settings, models, metrics = state.settings, state.models, state.metrics

    def not_serving(project: str | None) -> JSONBytes:
        """Why there is no model to answer with: the projects not read yet, an unknown project, or no model yet."""
        if not models.loaded:
            if models.loading_error is not None:
                return _json(ErrorResponse(503, f"The projects could not be read: {models.loading_error}"), 503, headers=_RETRY_LATER)
            detail = f"No model is serving yet: reading the projects, then waiting for {settings.model_uri} in the registry."
            return _json(ErrorResponse(503, detail), 503, headers=_RETRY_LATER)
        serving = models.default if project is None else models[project]
        if serving is None:
            detail = f"No project {project!r} is served here; the projects are {', '.join(sorted(models.by_project))}."
            return _json(ErrorResponse(404, detail, []), 404)
        return _json(ErrorResponse(503, serving.no_model_detail), 503, headers=_RETRY_LATER)

    async def answer_predict(serving: ModelServing | None, request: Request, route: str, project: str | None) -> JSONBytes:
        if serving is None or serving.holder.current is None:
            return not_serving(project)
        if not _declares_json(request.headers.get("content-type")):
            detail = f"`content-type` must be application/json, not {request.headers.get('content-type')!r}"
            return _json(ErrorResponse(415, detail), 415)
        try:
            parsed = serving.decode_predict(await _read_body(request, settings.max_body_bytes))
        except msgspec.ValidationError as error:
            problem = field_error(error)
            subject = f"`{problem.field}`" if problem.field else "request body" if problem.location == "$" else problem.location
            return _json(ErrorResponse(422, f"Invalid {subject}: {problem.reason}", [problem]), 422)
        except msgspec.DecodeError as error:
            return _json(ErrorResponse(400, f"The body is not valid JSON: {error}"), 400)
        rows = feature_rows(parsed if isinstance(parsed, list) else [parsed])
        request_id = new_request_id()
        try:
            result = await serving.batcher.predict(rows, request_id, request.url.path if project else route)
        except NoModelLoaded:
            return not_serving(project)
        except PredictionFailed as error:
            return _json(ErrorResponse(500, str(error)), 500)
        metrics.inc(PREDICTED_ROWS, (route, result.model.name, result.model.alias, result.model.version), len(rows))
        return _json(_prediction_body(request_id, result), 200, request_id)

    async def answer_invocations(serving: ModelServing | None, request: Request, route: str, project: str | None) -> JSONBytes:
        if serving is None or serving.holder.current is None:
            refusal = not_serving(project)
            code = "RESOURCE_DOES_NOT_EXIST" if refusal.status_code == 404 else "TEMPORARILY_UNAVAILABLE"
            return _json(MlflowErrorResponse(code, msgspec.json.decode(refusal.body)["detail"]), refusal.status_code)
        try:
            rows = serving.invocations.parse(await _read_body(request, settings.max_body_bytes), request.headers.get("content-type"))
        except ProtocolError as error:
            return _json(MlflowErrorResponse(error.error_code, error.message), error.status_code)
        request_id = new_request_id()
        try:
            result = await serving.batcher.predict(rows, request_id, request.url.path if project else route)
        except NoModelLoaded:
            return _json(MlflowErrorResponse("TEMPORARILY_UNAVAILABLE", serving.no_model_detail), 503)
        except PredictionFailed as error:
            return _json(MlflowErrorResponse("INTERNAL_ERROR", str(error)), 500)
        metrics.inc(PREDICTED_ROWS, (route, result.model.name, result.model.alias, result.model.version), len(rows))
        return _json(InvocationsResponse(result.predictions), 200, request_id)

    predict_responses = {
        200: ResponseSpec(
            PredictionResponse | ClassificationResponse,  # type: ignore[arg-type]
            description="Per record, in order: the value (regression), or the label and class probabilities.",
        ),
        400: ResponseSpec(ErrorResponse, description="The body is not JSON."),
        413: ResponseSpec(ErrorResponse, description="The body is larger than MLOPS_SERVING_MAX_BODY_BYTES."),
        415: ResponseSpec(ErrorResponse, description="The body is declared as something other than JSON."),
        422: ResponseSpec(ErrorResponse, description="A field is missing, of the wrong type or implausible."),
        503: ResponseSpec(ErrorResponse, description="No model is in production yet."),
    }
    invocations_responses = {
        200: ResponseSpec(InvocationsResponse, description="Predictions, in the order of the records."),
        400: ResponseSpec(MlflowErrorResponse, description="Malformed or invalid input."),
        415: ResponseSpec(MlflowErrorResponse, description="Unsupported content type or charset."),
        503: ResponseSpec(MlflowErrorResponse, description="No model is in production yet."),
    }

    def predict_body_of(serving: ModelServing) -> dict[str, Any]:
        return _json_schema(batch_type(serving.project.predict_record, settings.max_batch_rows))

    def default_predict_body() -> dict[str, Any]:
        return predict_body_of(models.default) if models.default else {"type": "object"}

    def any_predict_body() -> dict[str, Any]:
        # One body per project: the path names which one applies.
        bodies = [predict_body_of(serving) | {"title": name} for name, serving in models.by_project.items()]
        return {"anyOf": bodies} if bodies else {"type": "object"}

    @post(
        "/predict",
        summary="Predict with the default project's model",
        description="One record, or a list of up to MLOPS_SERVING_MAX_BATCH_ROWS records, of the default project "
        "(MLOPS_SERVING_DEFAULT_MODEL).",
        operation_class=_with_json_body(default_predict_body),
        status_code=200,
        responses=predict_responses,
    )
    async def predict(request: Request) -> JSONBytes:
        return await answer_predict(models.default, request, "/predict", None)

    @post(
        PROJECT_PREDICT,
        summary="Predict with a project's model",
        description="One record, or a list of up to MLOPS_SERVING_MAX_BATCH_ROWS records, of the project's domain. "
        "404 for a project not served here.",
        operation_class=_with_json_body(any_predict_body),
        status_code=200,
        responses={**predict_responses, 404: ResponseSpec(ErrorResponse, description="No such project.")},
    )
    async def project_predict(request: Request, project: str) -> JSONBytes:
        return await answer_predict(models[project], request, "/models/{project}/predict", project)

    @post(
        "/invocations",
        summary="Score with the default project's model, in the protocol of `mlflow models serve`",
        description="JSON (dataframe_split, dataframe_records, instances, inputs), text/csv or Parquet; "
        'answers {"predictions": [...]}, the same values or labels as /predict.',
        operation_class=_with_json_body(lambda: _json_schema(InvocationsEnvelope)),
        status_code=200,
        responses=invocations_responses,
    )
    async def invocations(request: Request) -> JSONBytes:
        return await answer_invocations(models.default, request, "/invocations", None)

    @post(
        PROJECT_INVOCATIONS,
        summary="Score with a project's model, in the protocol of `mlflow models serve`",
        description="As /invocations, for the named project.",
        operation_class=_with_json_body(lambda: _json_schema(InvocationsEnvelope)),
        status_code=200,
        responses={**invocations_responses, 404: ResponseSpec(MlflowErrorResponse, description="No such project.")},
    )
    async def project_invocations(request: Request, project: str) -> JSONBytes:
        return await answer_invocations(models[project], request, "/models/{project}/invocations", project)

    @get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Readiness: the default project's model is loaded", responses={503: ResponseSpec(dict, description="No model yet.")})
    async def ready() -> Response[dict[str, Any]]:
        serving = models.default
        model = serving.holder.current if serving else None
        if serving is None or model is None:
            detail = serving.no_model_detail if serving else f"reading the projects; then waiting for {settings.model_uri}"
            return Response({"ready": False, "detail": detail}, status_code=503)
        body: dict[str, Any] = {"ready": True, "status": "ok", "model_name": model.name, "model_version": model.version}
        if (error := serving.holder.state().last_registry_error) is not None:
            # Still ready: the loaded model answers. Only following the alias waits for the registry.
            body |= {"status": "degraded", "detail": f"the registry does not answer; serving the loaded version: {error}"}
        return Response(body)

    @get("/ping", summary="Readiness, as `mlflow models serve` answers it", include_in_schema=False)
    async def ping() -> Response[str]:
        serving = models.default
        loaded = serving is not None and serving.holder.current is not None
        return Response("\n", status_code=200 if loaded else 503, media_type=MediaType.JSON)

    @get("/version", summary="The MLflow version, as `mlflow models serve` answers it", include_in_schema=False)
    async def mlflow_version() -> Response[str]:
        return Response(package_version("mlflow"), media_type=MediaType.JSON)

    def state_of(serving: ModelServing | None) -> Response[ModelState]:
        if serving is None:  # the projects are not read yet
            current = ModelState(
                project=settings.default_project, task="", name=settings.model_name or "", alias=settings.model_alias,
                version=None, loaded_at=None, load_seconds=None, predictor=None, lineage=None, last_checked_at=None,
                last_registry_error=models.loading_error, refused_versions=[], worker="",
            )  # fmt: skip
        else:
            current = serving.holder.state()
        return Response(current, status_code=200 if current.version is not None else 503)

    @get(
        "/model",
        summary="The default project's served version, its lineage and holdout metrics, and refused versions",
        responses={503: ResponseSpec(ModelState, description="No model loaded yet (refusals still listed).")},
    )
    async def model_state() -> Response[ModelState]:
        return state_of(models.default)

    @get("/models", summary="Every project served here: its model's state, as GET /model tells it")
    async def every_model_state() -> dict[str, ModelState]:
        return {name: serving.holder.state() for name, serving in models.by_project.items()}

    @get(
        "/models/{project:str}",
        summary="A project's served version, its lineage and holdout metrics, and refused versions",
        responses={
            404: ResponseSpec(ErrorResponse, description="No such project."),
            503: ResponseSpec(ModelState, description="No model loaded yet."),
        },
    )
    async def project_model_state(project: str) -> Response[ModelState]:
        serving = models[project]
        if serving is None and models.loaded:
            return Response(ErrorResponse(404, f"No project {project!r} is served here."), status_code=404)  # type: ignore[return-value]
        return state_of(serving)

    @get("/metrics", summary="Prometheus metrics", media_type=PROMETHEUS_CONTENT_TYPE)
    async def prometheus_metrics() -> Response[str]:
        return Response(metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    @get(
        "/predictions/{request_id:str}",
        summary="The lineage of one prediction",
        description="Inputs, outputs, the model version, its MLflow run, the Dagster run and the data version "
        "behind it, from whichever project's log holds it. Predictions reach the log within "
        "MLOPS_PREDICTION_LOG_FLUSH_SECONDS.",
        responses={404: ResponseSpec(ErrorResponse, description="No prediction logged under this id.")},
    )
    async def prediction_lineage(request_id: str) -> Response[PredictionLineage]:
        found: tuple[ModelServing, list[dict[str, Any]]] | None = None
        for serving in models.by_project.values():
            if rows := await asyncio.to_thread(serving.prediction_log.find, request_id):
                found = (serving, rows)
                break
        if found is None:
            detail = (
                f"No prediction logged under request id {request_id!r}. Predictions reach the log within "
                f"{settings.prediction_log_flush_seconds:g} s of being made."
            )
            return Response(ErrorResponse(404, detail), status_code=404)  # type: ignore[return-value]
        serving, rows = found
        first = rows[0]
        try:
            lineage = await asyncio.to_thread(serving.holder.lineage_of, first["model_version"])
        except Exception as error:
            return Response(ErrorResponse(502, f"The registry could not be read for the lineage: {error}"), status_code=502)  # type: ignore[return-value]
        body = PredictionLineage(
            request_id=request_id,
            predicted_at=first["predicted_at"].isoformat(),
            route=first["route"],
            worker=first["worker"],
            rows=[
                LoggedPrediction(
                    row_index=row["row_index"],
                    features={name: row[name] for name in serving.project.layout.features},
                    prediction=row["prediction"],
                )
                for row in rows
            ],
            model=lineage,
        )
        return Response(body)

    handlers: list[HTTPRouteHandler] = [
        predict,
        invocations,
        project_predict,
        project_invocations,
        health,
        ready,
        ping,
        mlflow_version,
        model_state,
        every_model_state,
        project_model_state,
        prometheus_metrics,
        prediction_lineage,
    ]

    if settings.admin_token is not None:  # no token configured: the route does not exist (404)
        expected = f"Bearer {settings.admin_token}".encode()

        @post(
            "/admin/reload",
            summary="Load the version every alias points to now (all workers follow within a second)",
            description="Answers with the default project's outcome; every project is reloaded.",
            status_code=200,
            responses={
                401: ResponseSpec(ErrorResponse, description="No bearer token."),
                403: ResponseSpec(ErrorResponse, description="Wrong bearer token."),
                409: ResponseSpec(ReloadResponse, description="The version was refused."),
                503: ResponseSpec(ReloadResponse, description="Registry unreachable or alias missing."),
            },
        )
        async def admin_reload(request: Request) -> Response[ReloadResponse]:
            authorization = request.headers.get("authorization")
            if not authorization or not authorization.lower().startswith("bearer "):
                return Response(  # type: ignore[return-value]
                    ErrorResponse(401, "A bearer token is required."), status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
            if not hmac.compare_digest(authorization.encode(), expected):
                return Response(ErrorResponse(403, "The bearer token is not valid."), status_code=403)  # type: ignore[return-value]
            if not models.loaded:
                return Response(ReloadResponse(outcome="not_ready", version=None, detail="the projects are still being read"), status_code=503)
            state.reload_signal.request()
            results = await models.reload_all()
            result = results[settings.default_project]
            body = ReloadResponse(outcome=result.outcome.value, version=result.version, detail=result.detail)
            return Response(body, status_code=_RELOAD_STATUS[result.outcome])

        handlers.append(admin_reload)
    return handlers


def _prediction_body(request_id: str, result: BatchResult) -> msgspec.Struct:
    model = result.model
    if result.probabilities is None:
        return PredictionResponse(request_id, model.name, model.version, result.predictions)  # type: ignore[arg-type]
    classes = model.predictor.classes
    probabilities = [dict(zip(classes, row, strict=True)) for row in result.probabilities]
    return ClassificationResponse(request_id, model.name, model.version, result.predictions, probabilities)  # type: ignore[arg-type]


def _json_schema(body_type: Any) -> dict[str, Any]:
    return _inline_references(msgspec.json.schema(body_type))


_encode_json = msgspec.json.Encoder().encode
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class JSONBytes:
    """A response already encoded, sent as is: Litestar's Response and ASGIResponse cost ~20-30 us each
    in header handling, a tenth of a whole prediction; these hot routes set no cookies nor varied headers."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, body: bytes, status_code: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.status_code = status_code
        self.headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def _json(
    body: msgspec.Struct, status_code: int, request_id: str | None = None, headers: list[tuple[bytes, bytes]] | None = None
) -> JSONBytes:
    encoded = _encode_json(body)
    all_headers = [_JSON_CONTENT_TYPE, (b"content-length", str(len(encoded)).encode()), *(headers or ())]
    if request_id is not None:
        all_headers.append((b"x-request-id", request_id.encode()))
    return JSONBytes(encoded, status_code, all_headers)


def _declares_json(content_type: str | None) -> bool:
    """No content type (a bare client) is read as JSON; a declared one must be JSON."""
    if content_type is None:
        return True
    mime_type = content_type.split(";", 1)[0].strip().lower()
    return mime_type == "application/json" or mime_type.endswith("+json")


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes (else 413); `request.body()` costs ~10 us more per call."""
    receive = request.receive
    message = await receive()
    body = message.get("body", b"")
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientException("The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
    if size > limit:
        raise RequestEntityTooLarge
    return body if len(chunks) == 1 else b"".join(chunks)


def _with_json_body(body_schema: Callable[[], dict[str, Any]]) -> type[Operation]:
    """An Operation class whose request body is the JSON schema `body_schema()` gives: built when the
    OpenAPI document is, as the records depend on the projects, read once the app serves."""

    @dataclass
    class OperationWithBody(Operation):
        def __post_init__(self) -> None:
            schema = body_schema()
            self.request_body = RequestBody(required=True, content={CONTENT_TYPE_JSON: OpenAPIMediaType(schema=schema)})  # type: ignore[arg-type]

    return OperationWithBody


def _inline_references(schema: dict[str, Any]) -> dict[str, Any]:
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)
