"""What the app serves and whether it is ready: liveness, readiness (also as `mlflow models serve`
answers it), and the state of each project's model: version, lineage, holdout metrics, refusals."""

from importlib.metadata import version as package_version
from typing import Any

import msgspec
from litestar import Controller, MediaType, Response, get
from litestar.openapi.datastructures import ResponseSpec

from serving.schemas import ErrorResponse, ModelState
from serving.served_models import ModelServing, ServedModels
from serving.settings import ServingSettings


def _state_of(serving: ModelServing | None, settings: ServingSettings, models: ServedModels) -> Response[ModelState]:
    if serving is None:  # the projects are not read yet
        current = ModelState(
            project=settings.default_project, task="", name=settings.model_name or "", alias=settings.model_alias,
            version=None, loaded_at=None, load_seconds=None, predictor=None, lineage=None, last_checked_at=None,
            last_registry_error=models.loading_error, refused_versions=[], worker="",
        )  # fmt: skip
    else:
        challenger = serving.challenger_model()
        current = msgspec.structs.replace(
            serving.holder.state(),
            challenger_version=challenger.version if challenger else None,
            traffic_mode=serving.traffic.policy.mode.value if challenger else "off",
        )
    return Response(current, status_code=200 if current.version is not None else 503)


class ModelController(Controller):
    tags = ["models"]

    @get("/health", summary="Liveness: the process answers")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get(
        "/ready",
        summary="Readiness: the default project's model is loaded",
        responses={503: ResponseSpec(dict, description="No model yet.")},
    )
    async def ready(self, models: ServedModels, settings: ServingSettings) -> Response[dict[str, Any]]:
        serving = models.default
        model = serving.holder.current if serving else None
        if serving is None or model is None:
            detail = serving.no_model_detail if serving else f"reading the projects, then waiting for {settings.model_uri}"
            return Response({"ready": False, "detail": detail}, status_code=503)
        body: dict[str, Any] = {"ready": True, "status": "ok", "model_name": model.name, "model_version": model.version}
        if (error := serving.holder.state().last_registry_error) is not None:
            # Still ready: the loaded model answers. Only following the alias waits for the registry.
            body |= {"status": "degraded", "detail": f"the registry does not answer; serving the loaded version: {error}"}
        return Response(body)

    @get("/ping", summary="Readiness, as `mlflow models serve` answers it", include_in_schema=False)
    async def ping(self, models: ServedModels) -> Response[str]:
        loaded = models.default is not None and models.default.holder.current is not None
        return Response("\n", status_code=200 if loaded else 503, media_type=MediaType.JSON)

    @get("/version", summary="The MLflow version, as `mlflow models serve` answers it", include_in_schema=False)
    async def mlflow_version(self) -> Response[str]:
        return Response(package_version("mlflow"), media_type=MediaType.JSON)

    @get(
        "/model",
        summary="The default project's served version, its lineage and holdout metrics, and refused versions",
        responses={503: ResponseSpec(ModelState, description="No model loaded yet (refusals still listed).")},
    )
    async def model_state(self, models: ServedModels, settings: ServingSettings) -> Response[ModelState]:
        return _state_of(models.default, settings, models)

    @get("/models", summary="Every project served here, with its model's state as GET /model tells it")
    async def every_model_state(self, models: ServedModels) -> dict[str, ModelState]:
        return {name: serving.holder.state() for name, serving in models.by_project.items()}

    @get(
        "/models/{project:str}",
        summary="A project's served version, its lineage and holdout metrics, and refused versions",
        responses={
            404: ResponseSpec(ErrorResponse, description="No such project."),
            503: ResponseSpec(ModelState, description="No model loaded yet."),
        },
    )
    async def project_model_state(self, models: ServedModels, settings: ServingSettings, project: str) -> Response[ModelState]:
        serving = models[project]
        if serving is None and models.loaded:
            detail = f"No project {project!r} is served here; the projects are {', '.join(sorted(models.by_project))}."
            return Response(ErrorResponse(404, detail), status_code=404)  # type: ignore[return-value]
        return _state_of(serving, settings, models)
