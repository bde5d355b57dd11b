"""The HTTP routes, built around one worker's serving state.

Request bodies are decoded by msgspec straight from the raw bytes into the typed records of
`serving.schemas`, strictly (a Litestar `data:` parameter would convert leniently, accepting "1.5"
for a number, and decode twice). The OpenAPI document still describes them: each body schema is
generated from the same msgspec types and attached to its operation.
"""

import asyncio
import hmac
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.exceptions.http_exceptions import ClientException, RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from mlops_assets.projects.housing.domain import RAW_FEATURES
from serving.batching import MicroBatcher, NoModelLoaded, PredictionFailed
from serving.metrics import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from serving.metrics import PREDICTED_ROWS, Metrics
from serving.mlflow_protocol import CONTENT_TYPE_JSON, InvocationsEnvelope, ProtocolError, parse_invocation
from serving.model_holder import ModelHolder, Outcome, ReloadSignal
from serving.prediction_log import PredictionLog, new_request_id
from serving.schemas import (
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
    predict_request_type,
)
from serving.settings import ServingSettings

_RELOAD_STATUS = {
    Outcome.LOADED: 200,
    Outcome.UNCHANGED: 200,
    Outcome.REFUSED: 409,
    Outcome.PREVIOUSLY_REFUSED: 409,
    Outcome.NO_ALIAS: 503,
    Outcome.REGISTRY_ERROR: 503,
}


@dataclass
class ServingState:
    """Everything one worker process serves with."""

    settings: ServingSettings
    holder: ModelHolder
    batcher: MicroBatcher
    prediction_log: PredictionLog
    metrics: Metrics
    reload_signal: ReloadSignal


def build_routes(state: ServingState) -> list[HTTPRouteHandler]:
    settings, holder, batcher, metrics = state.settings, state.holder, state.batcher, state.metrics
    predict_type = predict_request_type(settings.max_batch_rows)
    decode_predict_body = msgspec.json.Decoder(predict_type).decode
    no_model_detail = f"No model is serving yet: waiting for {settings.model_uri} in the registry."

    def unavailable() -> JSONBytes:
        detail = no_model_detail
        if (error := holder.state().last_registry_error) is not None:
            detail += f" Last registry error: {error}"
        return _json(ErrorResponse(503, detail), 503, headers=[(b"retry-after", b"5")])

    @post(
        "/predict",
        summary="Predict median house values",
        description="One record, or a list of up to MLOPS_SERVING_MAX_BATCH_ROWS records.",
        operation_class=_with_json_body(predict_type),
        status_code=200,
        responses={
            200: ResponseSpec(PredictionResponse, description="Predictions, in the order of the records."),
            400: ResponseSpec(ErrorResponse, description="The body is not JSON."),
            413: ResponseSpec(ErrorResponse, description="The body is larger than MLOPS_SERVING_MAX_BODY_BYTES."),
            415: ResponseSpec(ErrorResponse, description="The body is declared as something other than JSON."),
            422: ResponseSpec(ErrorResponse, description="A field is missing, of the wrong type or implausible."),
            503: ResponseSpec(ErrorResponse, description="No model is in production yet."),
        },
    )
    async def predict(request: Request) -> JSONBytes:
        if holder.current is None:
            return unavailable()
        if not _declares_json(request.headers.get("content-type")):
            detail = f"`content-type` must be application/json, not {request.headers.get('content-type')!r}"
            return _json(ErrorResponse(415, detail), 415)
        try:
            parsed = decode_predict_body(await _read_body(request, settings.max_body_bytes))
        except msgspec.ValidationError as error:
            problem = field_error(error)
            subject = f"`{problem.field}`" if problem.field else "request body" if problem.location == "$" else problem.location
            return _json(ErrorResponse(422, f"Invalid {subject}: {problem.reason}", [problem]), 422)
        except msgspec.DecodeError as error:
            return _json(ErrorResponse(400, f"The body is not valid JSON: {error}"), 400)
        rows = feature_rows(parsed if isinstance(parsed, list) else [parsed])
        request_id = new_request_id()
        try:
            result = await batcher.predict(rows, request_id, "/predict")
        except NoModelLoaded:
            return unavailable()
        except PredictionFailed as error:
            return _json(ErrorResponse(500, str(error)), 500)
        metrics.inc(PREDICTED_ROWS, ("/predict", result.model.name, result.model.alias, result.model.version), len(rows))
        body = PredictionResponse(request_id, result.model.name, result.model.version, result.predictions)
        return _json(body, 200, request_id)

    @post(
        "/invocations",
        summary="Score with the protocol of `mlflow models serve`",
        description="JSON (dataframe_split, dataframe_records, instances, inputs), text/csv or Parquet; "
        'answers {"predictions": [...]}, the same numbers as /predict.',
        operation_class=_with_json_body(InvocationsEnvelope),
        status_code=200,
        responses={
            200: ResponseSpec(InvocationsResponse, description="Predictions, in the order of the records."),
            400: ResponseSpec(MlflowErrorResponse, description="Malformed or invalid input."),
            415: ResponseSpec(MlflowErrorResponse, description="Unsupported content type or charset."),
            503: ResponseSpec(MlflowErrorResponse, description="No model is in production yet."),
        },
    )
    async def invocations(request: Request) -> JSONBytes:
        if holder.current is None:
            return _json(MlflowErrorResponse("TEMPORARILY_UNAVAILABLE", no_model_detail), 503)
        try:
            rows = parse_invocation(
                await _read_body(request, settings.max_body_bytes), request.headers.get("content-type"), settings.max_batch_rows
            )
        except ProtocolError as error:
            return _json(MlflowErrorResponse(error.error_code, error.message), error.status_code)
        request_id = new_request_id()
        try:
            result = await batcher.predict(rows, request_id, "/invocations")
        except NoModelLoaded:
            return _json(MlflowErrorResponse("TEMPORARILY_UNAVAILABLE", no_model_detail), 503)
        except PredictionFailed as error:
            return _json(MlflowErrorResponse("INTERNAL_ERROR", str(error)), 500)
        metrics.inc(PREDICTED_ROWS, ("/invocations", result.model.name, result.model.alias, result.model.version), len(rows))
        return _json(InvocationsResponse(result.predictions), 200, request_id)

    @get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Readiness: a model is loaded", responses={503: ResponseSpec(dict, description="No model yet.")})
    async def ready() -> Response[dict[str, Any]]:
        model = holder.current
        if model is None:
            return Response({"ready": False, "detail": no_model_detail}, status_code=503)
        body: dict[str, Any] = {"ready": True, "status": "ok", "model_name": model.name, "model_version": model.version}
        if (error := holder.state().last_registry_error) is not None:
            # Still ready: the loaded model answers. Only following the alias waits for the registry.
            body |= {"status": "degraded", "detail": f"the registry does not answer; serving the loaded version: {error}"}
        return Response(body)

    @get("/ping", summary="Readiness, as `mlflow models serve` answers it", include_in_schema=False)
    async def ping() -> Response[str]:
        return Response("\n", status_code=200 if holder.current is not None else 503, media_type=MediaType.JSON)

    @get("/version", summary="The MLflow version, as `mlflow models serve` answers it", include_in_schema=False)
    async def mlflow_version() -> Response[str]:
        return Response(package_version("mlflow"), media_type=MediaType.JSON)

    @get(
        "/model",
        summary="The served version, its lineage and holdout metrics, and refused versions",
        responses={503: ResponseSpec(ModelState, description="No model loaded yet (refusals still listed).")},
    )
    async def model_state() -> Response[ModelState]:
        current = holder.state()
        return Response(current, status_code=200 if current.version is not None else 503)

    @get("/metrics", summary="Prometheus metrics", media_type=PROMETHEUS_CONTENT_TYPE)
    async def prometheus_metrics() -> Response[str]:
        return Response(metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    @get(
        "/predictions/{request_id:str}",
        summary="The lineage of one prediction",
        description="Inputs, outputs, the model version, its MLflow run, the Dagster run and the data version "
        "behind it. Predictions reach the log within MLOPS_PREDICTION_LOG_FLUSH_SECONDS.",
        responses={404: ResponseSpec(ErrorResponse, description="No prediction logged under this id.")},
    )
    async def prediction_lineage(request_id: str) -> Response[PredictionLineage]:
        rows = await asyncio.to_thread(state.prediction_log.find, request_id)
        if not rows:
            detail = (
                f"No prediction logged under request id {request_id!r}. Predictions reach the log within "
                f"{settings.prediction_log_flush_seconds:g} s of being made."
            )
            return Response(ErrorResponse(404, detail), status_code=404)  # type: ignore[return-value]
        first = rows[0]
        try:
            lineage = await asyncio.to_thread(holder.lineage_of, first["model_version"])
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
                    features={name: row[name] for name in RAW_FEATURES},
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
        health,
        ready,
        ping,
        mlflow_version,
        model_state,
        prometheus_metrics,
        prediction_lineage,
    ]

    if settings.admin_token is not None:  # no token configured: the route does not exist (404)
        expected = f"Bearer {settings.admin_token}".encode()

        @post(
            "/admin/reload",
            summary="Load the version the alias points to now (all workers follow within a second)",
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
            state.reload_signal.request()
            result = await holder.refresh(force=True)
            body = ReloadResponse(outcome=result.outcome.value, version=result.version, detail=result.detail)
            return Response(body, status_code=_RELOAD_STATUS[result.outcome])

        handlers.append(admin_reload)
    return handlers


_encode_json = msgspec.json.Encoder().encode
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class JSONBytes:
    """A response already encoded, sent as is: Litestar's Response and ASGIResponse cost ~20-30 us each
    in header handling, a tenth of a whole prediction; these hot routes set no cookies nor varied headers."""

    __slots__ = ("_body", "_headers", "_status_code")

    def __init__(self, body: bytes, status_code: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._body = body
        self._status_code = status_code
        self._headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self._status_code, "headers": self._headers})
        await send({"type": "http.response.body", "body": self._body})


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


def _with_json_body(body_type: Any) -> type[Operation]:
    """An Operation class whose request body is the JSON schema msgspec generates for `body_type`."""
    schema = _inline_references(msgspec.json.schema(body_type))

    @dataclass
    class OperationWithBody(Operation):
        def __post_init__(self) -> None:
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
