"""The HTTP routes: Litestar controllers, given one worker's serving state by dependency injection.

    predictions.py   POST /models/{project}/predict and /invocations; /predict and /invocations (default project)
    models.py        GET /health, /ready, /ping, /version, /model, /models, /models/{project}
    lineage.py       GET /predictions/{request_id}
    feedback.py      POST /models/{project}/feedback
    monitoring.py    GET /metrics
    open_inference.py  the Open Inference Protocol (V2): /v2/health/..., /v2/models/{name}[/ready|/infer]
    admin.py         POST /admin/reload, GET/PUT /admin/models/{project}/traffic (only with MLOPS_ADMIN_TOKEN)
"""

from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from serving.routes.admin import AdminController
from serving.routes.feedback import FeedbackController
from serving.routes.lineage import LineageController
from serving.routes.models import ModelController
from serving.routes.monitoring import prometheus_metrics
from serving.routes.open_inference import OpenInferenceController
from serving.routes.predictions import PredictionController, Predictions
from serving.routes.state import ServingState, dependencies


def route_handlers(state: ServingState) -> list[ControllerRouterHandler]:
    handlers: list[ControllerRouterHandler] = [
        PredictionController,
        OpenInferenceController,
        ModelController,
        LineageController,
        FeedbackController,
        prometheus_metrics,
    ]
    if state.settings.admin_token is not None:  # no token configured: the route does not exist (404)
        handlers.append(AdminController)
    return handlers


def route_dependencies(state: ServingState) -> dict[str, Provide]:
    return dependencies(state, predictions=Predictions(state.settings, state.models, state.metrics))


__all__ = ["ServingState", "route_dependencies", "route_handlers"]
