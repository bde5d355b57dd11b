"""One worker's models: for every hosted project, its holder, batcher, prediction log and request decoders.

The projects are read from the platform's declarations in a thread when the app starts serving
(seconds of imports the event loop must not wait for); until then every model route answers 503.
Each project's alias is then followed on its own: a project without a `production` version yet is
held with no model, and served the moment its alias appears.

Beside its champion (the `production` alias) a project may have a challenger (MLOPS_CHALLENGER_ALIAS,
default `challenger`), held by a second holder and batcher, and a traffic policy (`serving.traffic`)
deciding which of the two answers: the champion alone, a canary share for the challenger, or the
champion with the challenger scoring in its shadow (`serving.shadow`).
"""

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import msgspec

from serving.batching import BatchResult, MicroBatcher, NoModelLoaded, PredictionFailed
from serving.feedback import FILE_NAME as FEEDBACK_FILE_NAME
from serving.feedback import FeedbackStore
from serving.metrics import MODEL_PREDICTED_ROWS, MODEL_REQUEST_SECONDS, MODEL_REQUESTS, TRAFFIC_SHARE, Metrics
from serving.mlflow_protocol import InvocationParser
from serving.model_holder import ModelHolder
from serving.prediction_log import CHALLENGER, CHAMPION, PredictionLog
from serving.request_schema import batch_type
from serving.served_project import ServedProject, load_served_projects
from serving.settings import ServingSettings
from serving.shadow import ChallengerSink, ChampionSink, ShadowScorer
from serving.traffic import FollowedPolicy, TrafficMode, challenger_answers

if TYPE_CHECKING:
    from serving.model_holder import ServingModel

logger = logging.getLogger("serving.served_models")
TRAFFIC_POLL_SECONDS = 0.25


@dataclass
class ModelServing:
    """Everything one worker serves one project's model with."""

    project: ServedProject
    holder: ModelHolder
    batcher: MicroBatcher
    prediction_log: PredictionLog
    decode_predict: Callable[[bytes], Any]  # strict msgspec decoding of POST .../predict bodies
    invocations: InvocationParser
    challenger: ModelHolder
    challenger_batcher: MicroBatcher
    traffic: FollowedPolicy
    shadow: ShadowScorer
    feedback: FeedbackStore
    metrics: Metrics

    def challenger_model(self) -> "ServingModel | None":
        """The challenger, when one is loaded and differs from the champion (after a promotion both
        aliases may name one version: then there is nothing to compare)."""
        challenger, champion = self.challenger.current, self.holder.current
        if challenger is None or (champion is not None and champion.version == challenger.version):
            return None
        return challenger

    def shadowing(self) -> bool:
        return self.traffic.policy.mode is TrafficMode.SHADOW and self.challenger_model() is not None

    async def answer(self, rows: list[tuple], request_id: str, route: str, caller_key: str | None) -> BatchResult:
        """The answer of whichever version the traffic policy picks, counted under that version."""
        started = perf_counter()
        policy = self.traffic.policy
        result: BatchResult | None = None
        role = CHAMPION
        if (
            policy.mode is TrafficMode.CANARY
            and self.challenger_model() is not None
            and challenger_answers(policy, self.project.name, caller_key)
        ):
            try:
                result = await self.challenger_batcher.predict(rows, request_id, route)
                role = CHALLENGER
            except (NoModelLoaded, PredictionFailed) as error:  # the challenger left or failed: the champion answers
                logger.warning("challenger of %s could not answer, the champion does: %r", self.project.name, error)
        if result is None:
            result = await self.batcher.predict(rows, request_id, route)
        model = result.model
        labels = (self.project.name, model.name, model.version, role)
        self.metrics.inc(MODEL_REQUESTS, labels)
        self.metrics.inc(MODEL_PREDICTED_ROWS, labels, len(rows))
        self.metrics.observe(MODEL_REQUEST_SECONDS, labels, perf_counter() - started)
        return result

    def traffic_shares(self) -> dict[tuple[str, str, str, str], float]:
        """The share of requests the policy gives each loaded version, by its metric labels."""
        champion, challenger = self.holder.current, self.challenger_model()
        policy = self.traffic.policy
        to_challenger = policy.canary_share if challenger is not None and policy.mode is TrafficMode.CANARY else 0.0
        shares = {}
        if champion is not None:
            shares[(self.project.name, champion.name, champion.version, CHAMPION)] = 1.0 - to_challenger
        if challenger is not None:
            shares[(self.project.name, challenger.name, challenger.version, CHALLENGER)] = to_challenger
        return shares

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
        challenger = ModelHolder(
            dataclasses.replace(project, alias=settings.challenger_alias),
            settings,
            self._metrics,
            self._worker,
            is_default=False,
            serve_only_while_aliased=True,
        )
        prediction_log = PredictionLog(
            project.prediction_log_dir,
            layout=project.layout,
            worker=self._worker,
            metrics=self._metrics,
            flush_seconds=settings.prediction_log_flush_seconds,
            max_pending_rows=settings.prediction_log_max_pending_rows,
            max_bytes=settings.prediction_log_max_bytes,
        )
        shadow = ShadowScorer(project.name, project.layout, lambda: serving.challenger_model(), prediction_log, self._metrics)
        champion_log: Any = ChampionSink(prediction_log, shadow, lambda: serving.shadowing())
        serving = ModelServing(
            project=project,
            holder=holder,
            batcher=MicroBatcher(lambda: holder.current, project.layout, champion_log, self._metrics),
            prediction_log=prediction_log,
            decode_predict=msgspec.json.Decoder(batch_type(project.predict_record, settings.max_batch_rows)).decode,
            invocations=InvocationParser(project, settings.max_batch_rows),
            challenger=challenger,
            challenger_batcher=MicroBatcher(
                lambda: challenger.current, project.layout, ChallengerSink(prediction_log), self._metrics  # type: ignore[arg-type]
            ),
            traffic=FollowedPolicy(settings.serving_state_dir(), project.name),
            shadow=shadow,
            feedback=FeedbackStore(project.prediction_log_dir / FEEDBACK_FILE_NAME),
            metrics=self._metrics,
        )
        return serving

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
            self._tasks.append(
                asyncio.create_task(
                    serving.challenger.follow_alias(lambda name=serving.project.name: self._reload_requested_of(name, challenger=True)),
                    name=f"follow-challenger-{serving.project.name}",
                )
            )
        self._tasks.append(asyncio.create_task(self._follow_traffic(), name="follow-traffic"))
        self._tasks.append(asyncio.create_task(self._fan_out_reloads(reload_requested), name="fan-out-reloads"))
        logger.info("serving projects %s (default %s)", ", ".join(self.by_project), self.settings.default_project)

    async def _fan_out_reloads(self, reload_requested: Callable[[], bool]) -> None:
        # The signal is read once per tick, and each holder takes its own copy of it.
        while True:
            if reload_requested():
                self._reloads_requested |= {(name, challenger) for name in self.by_project for challenger in (False, True)}
            await asyncio.sleep(min(self.settings.poll_seconds, 0.5) / 2)

    def _reload_requested_of(self, project: str, *, challenger: bool = False) -> bool:
        if (project, challenger) in self._reloads_requested:
            self._reloads_requested.discard((project, challenger))
            return True
        return False

    async def _follow_traffic(self) -> None:
        """Every project's traffic policy re-read when its file changes (another worker, or the Dagster
        job, may have set it), and the share gauges kept to what is served."""
        shown: dict[tuple[str, str, str, str], float] = {}
        while True:
            try:
                shares: dict[tuple[str, str, str, str], float] = {}
                for serving in self.by_project.values():
                    serving.traffic.refresh()
                    shares |= serving.traffic_shares()
                if shares != shown:
                    self._metrics.clear(TRAFFIC_SHARE)
                    for labels, share in shares.items():
                        self._metrics.set(TRAFFIC_SHARE, labels, share)
                    shown = shares
            except Exception:  # following must survive anything, or a policy change would silently not arrive
                logger.exception("following the traffic policies failed")
            await asyncio.sleep(TRAFFIC_POLL_SECONDS)

    async def reload_all(self) -> dict[str, Any]:
        """Every project's aliases read now, a refused version retried (POST /admin/reload)."""
        results = {}
        for name, serving in self.by_project.items():
            results[name] = await serving.holder.refresh(force=True)
            await serving.challenger.refresh(force=True)
        return results

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for serving in self.by_project.values():
            serving.shadow.flush()
            await asyncio.to_thread(serving.prediction_log.stop)
