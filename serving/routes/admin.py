"""POST /admin/reload, behind the bearer token MLOPS_ADMIN_TOKEN (the route exists only when one is set)."""

import hmac

from litestar import Controller, Response, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from serving.model_holder import Outcome
from serving.routes.state import ServingState
from serving.schemas import ErrorResponse, ReloadResponse
from serving.served_models import ServedModels
from serving.settings import ServingSettings

_RELOAD_STATUS = {
    Outcome.LOADED: 200,
    Outcome.UNCHANGED: 200,
    Outcome.REFUSED: 409,
    Outcome.PREVIOUSLY_REFUSED: 409,
    Outcome.NO_ALIAS: 503,
    Outcome.REGISTRY_ERROR: 503,
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
