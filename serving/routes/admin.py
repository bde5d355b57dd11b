"""POST /admin/reload and GET/PUT /admin/models/{project}/traffic, behind the bearer token
MLOPS_ADMIN_TOKEN (the routes exist only when one is set)."""

import asyncio
import hmac

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from serving.model_holder import Outcome
from serving.routes.state import ServingState
from serving.schemas import ErrorResponse, ReloadResponse
from serving.served_models import ModelServing, ServedModels
from serving.settings import ServingSettings
from serving.traffic import TrafficMode

_RELOAD_STATUS = {
    Outcome.LOADED: 200,
    Outcome.UNCHANGED: 200,
    Outcome.REFUSED: 409,
    Outcome.PREVIOUSLY_REFUSED: 409,
    Outcome.NO_ALIAS: 503,
    Outcome.REGISTRY_ERROR: 503,
}


class TrafficUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """PUT /admin/models/{project}/traffic: the mode, and in canary mode the challenger's share."""

    mode: TrafficMode
    canary_share: float = 0.0


class TrafficState(msgspec.Struct):
    """A project's traffic policy, and what this worker serves under it."""

    project: str
    mode: str  # as stored: off | canary | shadow
    canary_share: float
    updated_at: str | None
    champion_version: str | None
    challenger_alias: str
    challenger_version: str | None  # loaded, and not the champion's version
    effective_mode: str  # `off` while there is no challenger to send traffic to
    detail: str


def _traffic_state(serving: ModelServing) -> TrafficState:
    policy = serving.traffic.policy
    champion, challenger = serving.holder.current, serving.challenger_model()
    effective = policy.mode if challenger is not None else TrafficMode.OFF
    if policy.mode is TrafficMode.OFF:
        detail = "the champion answers every request"
    elif challenger is None:
        detail = f"no {serving.challenger.project.model_uri} loaded (or it is the champion's version): the champion answers every request"
    elif policy.mode is TrafficMode.CANARY:
        detail = f"version {challenger.version} answers {policy.canary_share:.1%} of the requests, each caller key always on one side"
    else:
        detail = f"the champion answers every request; version {challenger.version} scores the same rows off the request path"
    return TrafficState(
        project=serving.project.name,
        mode=policy.mode.value,
        canary_share=policy.canary_share,
        updated_at=policy.updated_at,
        champion_version=champion.version if champion else None,
        challenger_alias=serving.challenger.project.alias,
        challenger_version=challenger.version if challenger else None,
        effective_mode=effective.value,
        detail=detail,
    )


def _unknown_project(models: ServedModels, project: str) -> Response[ErrorResponse]:
    if not models.loaded:
        return Response(ErrorResponse(503, "the projects are still being read"), status_code=503)
    detail = f"No project {project!r} is served here; the projects are {', '.join(sorted(models.by_project))}."
    return Response(ErrorResponse(404, detail), status_code=404)


_TRAFFIC_RESPONSES = {
    401: ResponseSpec(ErrorResponse, description="No bearer token."),
    403: ResponseSpec(ErrorResponse, description="Wrong bearer token."),
    404: ResponseSpec(ErrorResponse, description="No such project."),
}


def bearer_token_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """401 without a bearer token, 403 with a wrong one (compared in constant time)."""
    settings: ServingSettings = connection.app.state.serving.settings
    authorization = connection.headers.get("authorization")
    if not authorization or not authorization.lower().startswith("bearer "):
        raise NotAuthorizedException("A bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(authorization.encode(), f"Bearer {settings.admin_token}".encode()):
        raise PermissionDeniedException("The bearer token is not valid.")


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [bearer_token_guard]

    @post(
        "/reload",
        summary="Load the version every alias points to now (all workers follow within a second)",
        description="Answers with the default project's outcome; every project is reloaded.",
        status_code=200,
        responses={
            401: ResponseSpec(ErrorResponse, description="No bearer token."),
            403: ResponseSpec(ErrorResponse, description="Wrong bearer token."),
            409: ResponseSpec(ReloadResponse, description="The version was refused."),
            503: ResponseSpec(ReloadResponse, description="Registry unreachable, alias missing, or the projects not read yet."),
        },
    )
    async def reload(self, models: ServedModels, settings: ServingSettings, serving_state: ServingState) -> Response[ReloadResponse]:
        if not models.loaded:
            return Response(ReloadResponse(outcome="not_ready", version=None, detail="the projects are still being read"), status_code=503)
        serving_state.reload_signal.request()
        results = await models.reload_all()
        result = results[settings.default_project]
        body = ReloadResponse(outcome=result.outcome.value, version=result.version, detail=result.detail)
        return Response(body, status_code=_RELOAD_STATUS[result.outcome])

    @get(
        "/models/{project:str}/traffic",
        summary="A project's traffic policy: off, canary (a share for the challenger) or shadow",
        responses=_TRAFFIC_RESPONSES,
    )
    async def traffic(self, models: ServedModels, project: str) -> Response[TrafficState]:
        serving = models[project]
        if serving is None:
            return _unknown_project(models, project)  # type: ignore[return-value]
        serving.traffic.refresh()
        return Response(_traffic_state(serving))

    @put(
        "/models/{project:str}/traffic",
        summary="Set a project's traffic policy (every worker follows within a second; kept across restarts)",
        description='{"mode": "canary", "canary_share": 0.1}: the challenger answers a tenth of the requests, '
        'sticky per `x-caller-key`. {"mode": "shadow"}: the champion answers, the challenger scores the same rows '
        'off the request path. {"mode": "off"}: the champion alone.',
        status_code=200,
        responses={**_TRAFFIC_RESPONSES, 422: ResponseSpec(ErrorResponse, description="Not a valid policy.")},
    )
    async def set_traffic(self, request: Request, models: ServedModels, project: str) -> Response[TrafficState]:
        serving = models[project]
        if serving is None:
            return _unknown_project(models, project)  # type: ignore[return-value]
        try:
            update = msgspec.json.decode(await request.body(), type=TrafficUpdate)
        except msgspec.DecodeError as error:
            return Response(ErrorResponse(422, f"Invalid traffic policy: {error}"), status_code=422)  # type: ignore[return-value]
        if not 0.0 <= update.canary_share <= 1.0:
            detail = f"Invalid traffic policy: canary_share must be between 0 and 1, not {update.canary_share}"
            return Response(ErrorResponse(422, detail), status_code=422)  # type: ignore[return-value]
        if update.mode is TrafficMode.CANARY and update.canary_share == 0.0:
            detail = "Invalid traffic policy: canary mode needs a canary_share above 0 (the challenger's share of the requests)"
            return Response(ErrorResponse(422, detail), status_code=422)  # type: ignore[return-value]
        await asyncio.to_thread(serving.traffic.store, update.mode, update.canary_share)
        return Response(_traffic_state(serving))
