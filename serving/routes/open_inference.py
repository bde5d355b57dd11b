"""The Open Inference Protocol's REST routes under /v2 (KServe, Triton, MLServer): health, model
metadata and readiness, and inference, for every project's model (named by its project, or by its
registered model). See `serving.open_inference` for the tensors."""

from importlib.metadata import version as package_version
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec

from serving import open_inference
from serving.batching import NoModelLoaded, PredictionFailed
from serving.metrics import PREDICTED_ROWS, Metrics
from serving.open_inference import ErrorBody, InferenceError, ModelMetadata
from serving.prediction_log import new_request_id
from serving.routes.predictions import caller_key
from serving.routes.responses import JSONBytes, json_bytes, read_body
from serving.served_models import ModelServing, ServedModels
from serving.settings import ServingSettings

INFER_ROUTE = "/v2/models/{name}/infer"


def _missing(models: ServedModels, name: str) -> Response[ErrorBody]:
    if not models.loaded:
        return Response(ErrorBody("the projects are still being read"), status_code=503)
    return Response(ErrorBody(f"unknown model {name!r}: the models are {', '.join(sorted(models.by_project))}"), status_code=404)


class OpenInferenceController(Controller):
    path = "/v2"
    tags = ["open inference protocol"]

    @get("/", summary="Server metadata")
    async def server_metadata(self) -> dict[str, Any]:
        return {"name": "mlops-assets-serving", "version": package_version("mlops-assets"), "extensions": ["binary_tensor_data"]}

    @get("/health/live", summary="Liveness")
    async def live(self) -> dict[str, bool]:
        return {"live": True}

    @get("/health/ready", summary="Readiness: the default project's model is loaded", responses={503: ResponseSpec(dict)})
    async def ready(self, models: ServedModels) -> Response[dict[str, bool]]:
        ready = models.default is not None and models.default.holder.current is not None
        return Response({"ready": ready}, status_code=200 if ready else 503)

    @get(
        "/models/{name:str}",
        summary="A model's metadata: its typed input tensors (one per column) and output tensors",
        responses={404: ResponseSpec(ErrorBody, description="No such model.")},
    )
    async def model_metadata(self, models: ServedModels, name: str) -> Response[ModelMetadata]:
        serving = models.find(name)
        if serving is None:
            return _missing(models, name)  # type: ignore[return-value]
        model = serving.holder.current
        classes = model.predictor.classes if model is not None else serving.project.classes
        return Response(open_inference.metadata(serving.project, model.version if model else None, classes))

    @get(
        "/models/{name:str}/ready",
        summary="Whether a model is loaded (200) or not (503)",
        responses={404: ResponseSpec(ErrorBody, description="No such model."), 503: ResponseSpec(dict)},
    )
    async def model_ready(self, models: ServedModels, name: str) -> Response[dict[str, Any]]:
        serving = models.find(name)
        if serving is None:
            return _missing(models, name)  # type: ignore[return-value]
        ready = serving.holder.current is not None
        return Response({"name": serving.project.name, "ready": ready}, status_code=200 if ready else 503)

    @post(
        "/models/{name:str}/infer",
        summary="Inference: one input tensor per column (JSON or binary tensor data), outputs `predictions` and, "
        "for a classifier, `probabilities`",
        status_code=200,
        responses={
            400: ResponseSpec(ErrorBody, description="An input is unknown, mistyped, missing or implausible."),
            404: ResponseSpec(ErrorBody, description="No such model."),
            503: ResponseSpec(ErrorBody, description="The model is not loaded yet."),
        },
    )
    async def infer(self, request: Request, models: ServedModels, settings: ServingSettings, metrics: Metrics, name: str) -> JSONBytes:
        serving: ModelServing | None = models.find(name)
        if serving is None or serving.holder.current is None:
            if serving is None:
                missing = _missing(models, name)
                return json_bytes(missing.content, missing.status_code)
            return json_bytes(ErrorBody(serving.no_model_detail), 503)
        body = await read_body(request, settings.max_body_bytes)
        try:
            parsed = open_inference.parse(body, request.headers.get(open_inference.HEADER_LENGTH), serving.project, settings.max_batch_rows)
        except InferenceError as error:
            return json_bytes(ErrorBody(str(error)), 400)
        request_id = new_request_id()
        try:
            result = await serving.answer(parsed.rows, request_id, request.scope["path"], caller_key(request))
        except NoModelLoaded:
            return json_bytes(ErrorBody(serving.no_model_detail), 503)
        except PredictionFailed as error:
            return json_bytes(ErrorBody(str(error)), 500)
        metrics.inc(PREDICTED_ROWS, (INFER_ROUTE, result.model.name, result.model.alias, result.model.version), len(parsed.rows))
        try:
            payload, header_length = open_inference.response(
                parsed, serving.project, result.model.version, request_id, result.predictions, result.probabilities
            )
        except InferenceError as error:
            return json_bytes(ErrorBody(str(error)), 400)
        headers = [
            (b"content-type", b"application/json" if header_length is None else b"application/octet-stream"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        if header_length is not None:
            headers.append((b"inference-header-content-length", str(header_length).encode()))
        return JSONBytes(payload, 200, headers)
