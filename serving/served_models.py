"""One worker's models: for every hosted project, its holder, batcher, prediction log and request decoders.

The projects are read from the platform's declarations in a thread when the app starts serving
(seconds of imports the event loop must not wait for); until then every model route answers 503.
Each project's alias is then followed on its own: a project without a `production` version yet is
held with no model, and served the moment its alias appears.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from serving.batching import MicroBatcher
from serving.metrics import Metrics
from serving.mlflow_protocol import InvocationParser
from serving.model_holder import ModelHolder
from serving.prediction_log import PredictionLog
from serving.request_schema import batch_type
from serving.served_project import ServedProject, load_served_projects
from serving.settings import ServingSettings

logger = logging.getLogger("serving.served_models")


@dataclass
class ModelServing:
    """Everything one worker serves one project's model with."""

    project: ServedProject
    holder: ModelHolder
    batcher: MicroBatcher
    prediction_log: PredictionLog
    decode_predict: Callable[[bytes], Any]  # strict msgspec decoding of POST .../predict bodies
    invocations: InvocationParser

    @property
    def no_model_detail(self) -> str:
        detail = f"No model is serving yet: waiting for {self.project.model_uri} in the registry."
        if (error := self.holder.state().last_registry_error) is not None:
            detail += f" Last registry error: {error}"
        return detail


class ServedModels:
    def __init__(self, settings: ServingSettings, metrics: Metrics, worker: str) -> None:
        self.settings = settings
        self._metrics = metrics
        self._worker = worker
        self.by_project: dict[str, ModelServing] = {}
        self.default: ModelServing | None = None
        self.loading_error: str | None = None
        self._reloads_requested: set[str] = set()
        self._tasks: list[asyncio.Task] = []

    def __getitem__(self, project: str) -> ModelServing | None:
        return self.by_project.get(project)

    def find(self, name: str) -> ModelServing | None:
        """A project's serving by the project's name or by its registered model's."""
        if (serving := self.by_project.get(name)) is not None:
            return serving
        return next((serving for serving in self.by_project.values() if serving.project.model_name == name), None)

    @property
    def loaded(self) -> bool:
        return self.default is not None

    def build(self, projects: dict[str, ServedProject]) -> None:
        for name, project in projects.items():
            self.by_project[name] = self._serving(project, is_default=name == self.settings.default_project)
        self.default = self.by_project[self.settings.default_project]

    def _serving(self, project: ServedProject, *, is_default: bool) -> ModelServing:
        settings = self.settings
        holder = ModelHolder(project, settings, self._metrics, self._worker, is_default=is_default)
        prediction_log = PredictionLog(
            project.prediction_log_dir,
            layout=project.layout,
            worker=self._worker,
            metrics=self._metrics,
            flush_seconds=settings.prediction_log_flush_seconds,
            max_pending_rows=settings.prediction_log_max_pending_rows,
            max_bytes=settings.prediction_log_max_bytes,
        )
        return ModelServing(
            project=project,
            holder=holder,
            batcher=MicroBatcher(lambda: holder.current, project.layout, prediction_log, self._metrics),
            prediction_log=prediction_log,
            decode_predict=msgspec.json.Decoder(batch_type(project.predict_record, settings.max_batch_rows)).decode,
            invocations=InvocationParser(project, settings.max_batch_rows),
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, reload_requested: Callable[[], bool]) -> None:
        """Read the projects (in a thread), then follow every project's alias; returns at once."""
        self._tasks.append(asyncio.create_task(self._start(reload_requested), name="serve-projects"))

    async def _start(self, reload_requested: Callable[[], bool]) -> None:
        try:
            projects = await asyncio.to_thread(load_served_projects, self.settings)
        except Exception as error:
            self.loading_error = f"{type(error).__name__}: {error}"
            logger.exception("could not read the projects to serve")
            return
        self.build(projects)
        for serving in self.by_project.values():
            serving.prediction_log.start()
            self._tasks.append(
                asyncio.create_task(
                    serving.holder.follow_alias(lambda name=serving.project.name: self._reload_requested_of(name)),
                    name=f"follow-alias-{serving.project.name}",
                )
            )
        self._tasks.append(asyncio.create_task(self._fan_out_reloads(reload_requested), name="fan-out-reloads"))
        logger.info("serving projects %s (default %s)", ", ".join(self.by_project), self.settings.default_project)

    async def _fan_out_reloads(self, reload_requested: Callable[[], bool]) -> None:
        # The signal is read once per tick, and each holder takes its own copy of it.
        while True:
            if reload_requested():
                self._reloads_requested |= set(self.by_project)
            await asyncio.sleep(min(self.settings.poll_seconds, 0.5) / 2)

    def _reload_requested_of(self, project: str) -> bool:
        if project in self._reloads_requested:
            self._reloads_requested.discard(project)
            return True
        return False

    async def reload_all(self) -> dict[str, Any]:
        """Every project's alias read now, a refused version retried (POST /admin/reload)."""
        return {name: await serving.holder.refresh(force=True) for name, serving in self.by_project.items()}

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for serving in self.by_project.values():
            await asyncio.to_thread(serving.prediction_log.stop)
