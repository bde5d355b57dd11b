"""The model-serving app: every hosted project's `models:/<name>@<alias>` from the MLflow registry
behind one Litestar API.

    python -m serving --workers 2 --port 8000        # or: uvicorn serving.app:app --workers 2 ...

`app` is built from the environment (see serving.settings) when this module is imported; tests and
embedders call `create_app(settings)`. Importing builds nothing heavy: the projects' declarations,
MLflow, scikit-learn and pandas load in background threads when the app starts serving, so the server
answers /health at once and /ready once the default project's model is in.

Routes: POST /models/{project}/predict and /models/{project}/invocations (MLflow's scoring protocol)
for every project, POST /predict and /invocations for the default one, GET /health, /ready, /model,
/models, /models/{project}, /metrics, /predictions/{request_id}, POST /models/{project}/feedback, and with
MLOPS_ADMIN_TOKEN POST /admin/reload and GET/PUT /admin/models/{project}/traffic; OpenAPI under /schema.
"""

import os

# Before numpy or scikit-learn load: with one worker process per core, an OpenMP pool in each worker
# only spins threads that steal the other workers' core.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import secrets  # noqa: E402
import socket  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402

from litestar import Litestar  # noqa: E402
from litestar.logging import LoggingConfig  # noqa: E402
from litestar.openapi import OpenAPIConfig  # noqa: E402

from mlops_assets.settings import redacted  # noqa: E402
from serving.metrics import Metrics, request_metrics_middleware  # noqa: E402
from serving.model_holder import ReloadSignal  # noqa: E402
from serving.routes import ServingState, route_dependencies, route_handlers  # noqa: E402
from serving.served_models import ServedModels  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402

logger = logging.getLogger("serving")
METRICS_PUBLISH_SECONDS = 1.0


def create_app(settings: ServingSettings | None = None) -> Litestar:
    settings = settings or ServingSettings.from_env()
    _configure_logging()
    # Unique per app instance: names this worker's log files and metrics, also with several apps per process.
    worker = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
    metrics = Metrics(worker=worker, runtime_dir=settings.runtime_dir)
    models = ServedModels(settings, metrics, worker)
    state = ServingState(settings=settings, models=models, metrics=metrics, reload_signal=ReloadSignal(settings.runtime_dir))

    @contextlib.asynccontextmanager
    async def serve(app: Litestar) -> AsyncIterator[None]:
        await models.start(state.reload_signal.requested)
        background = [asyncio.create_task(_publish_metrics(metrics), name="publish-metrics")]
        logger.info("worker %s serving from %s", worker, redacted(settings.tracking_uri))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await models.stop()
            metrics.withdraw()

    app = Litestar(
        route_handlers=route_handlers(state),
        dependencies=route_dependencies(state),
        lifespan=[serve],
        middleware=[request_metrics_middleware(metrics)],
        openapi_config=OpenAPIConfig(
            title="Model server",
            version="1.0.0",
            description=f"Serves every hosted project's `{settings.model_alias}` model from the MLflow registry; "
            f"POST /predict and /invocations serve the project {settings.default_project}.",
            path="/schema",
        ),
        # Litestar leaves the root logger to the host (uvicorn, pytest) and logs unexpected errors itself.
        logging_config=LoggingConfig(configure_root_logger=False, log_exceptions="always"),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    app.state.serving = state  # for tests and operators poking at a live app
    return app


async def _publish_metrics(metrics: Metrics) -> None:
    while True:
        try:
            metrics.publish()
        except OSError:
            logger.warning("could not publish metrics to the runtime folder", exc_info=True)
        await asyncio.sleep(METRICS_PUBLISH_SECONDS)


def _configure_logging() -> None:
    # uvicorn configures only its own loggers; without a handler our INFO lines would vanish. When the
    # host (pytest, an embedding app) configured the root logger, ours propagate to it instead.
    serving_logger = logging.getLogger("serving")
    if serving_logger.handlers or logging.getLogger().handlers:
        serving_logger.setLevel(logging.INFO)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    serving_logger.addHandler(handler)
    serving_logger.setLevel(logging.INFO)


app = create_app()
