"""A project's served model: follow the registry alias, load and smoke-test a new version, swap it in atomically.

The app holds one ModelHolder per project. A project whose alias does not exist yet is held with no
model and polled like the others: the moment the alias appears, its model is loaded, no restart.

A worker resolves `models:/<name>@<alias>` to a version number every MLOPS_SERVING_POLL_SECONDS (and
on POST /admin/reload). A version it does not serve yet is downloaded and loaded in a thread, so the
event loop keeps answering requests, then smoke-tested: pyfunc's own predictions on the version's
logged input example must equal, to the bit, every path of the predictor (a classifier's labels). Only then is the
reference swapped, which in CPython is atomic; requests in flight finish on the version they started
with. A version that fails to load or to predict is refused: the previous one keeps serving, and the
refusal is logged, counted in /metrics and listed in /model. A refused version is not retried by the
poll (it would fail the same way), only by an explicit reload. Registry errors are logged and counted,
and the worker keeps serving what it has.

The version is loaded by number (`models:/<name>/<version>` through its download URI), never by the
alias again, so an alias moving during a load cannot mix two versions.
"""

import asyncio
import gc
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from mlops_assets.settings import redacted
from serving.metrics import FAILED_RELOADS, MODEL_LOADED_AT, MODEL_VERSION, REGISTRY_ERRORS, RELOADS, Metrics
from serving.predictors import ServedPredictor
from serving.schemas import ModelLineage, ModelState, RefusedVersion
from serving.served_project import ServedProject
from serving.settings import ServingSettings

logger = logging.getLogger("serving.model_holder")

# An unreachable tracking server must fail a poll in seconds, not after MLflow's default minutes of
# retries: the next poll is the retry.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

LINEAGE_TAGS = ("dagster_run_id", "features_version", "features_path", "features_digest", "code_version", "evaluated_on")
HOLDOUT_PREFIX = "holdout_"
REMEMBERED_REFUSALS = 20
# Error codes with which the registry says "no such model or alias" rather than "I am broken".
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


@dataclass(frozen=True)
class ServingModel:
    name: str
    alias: str
    version: str
    predictor: ServedPredictor
    lineage: ModelLineage
    loaded_at: datetime
    load_seconds: float


class Outcome(StrEnum):
    LOADED = "loaded"
    UNCHANGED = "unchanged"
    REFUSED = "refused"
    PREVIOUSLY_REFUSED = "previously_refused"
    NO_ALIAS = "no_alias"
    REGISTRY_ERROR = "registry_error"


@dataclass(frozen=True)
class RefreshResult:
    outcome: Outcome
    version: str | None
    detail: str


class VersionRefused(Exception):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class ModelHolder:
    def __init__(
        self,
        project: ServedProject,
        settings: ServingSettings,
        metrics: Metrics,
        worker: str,
        *,
        is_default: bool = True,
        serve_only_while_aliased: bool = False,
    ) -> None:
        self.project = project
        # A challenger is served only while its alias names it; `production` is kept serving when its
        # alias goes (a deleted alias must not take the service down).
        self._serve_only_while_aliased = serve_only_while_aliased
        self.settings = settings
        self.worker = worker
        # The default project's gauges are shown before it loads (0: none yet) and carry its load time;
        # the others' appear once they serve, so a worker shows one version per model it serves.
        self._is_default = is_default
        self.current: ServingModel | None = None
        self._metrics = metrics
        self._refused: OrderedDict[str, RefusedVersion] = OrderedDict()
        self._last_checked_at: datetime | None = None
        self._last_registry_error: str | None = None
        self._lineage_cache: dict[str, ModelLineage] = {}
        self._client: Any = None
        self._refresh_lock: asyncio.Lock | None = None
        self._alias_missing = False
        if is_default:
            metrics.set(MODEL_VERSION, (project.model_name, project.alias), 0)

    # --- following the alias -------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> RefreshResult:
        """Serve the version the alias points to, if it is new and passes the smoke test.

        `force` retries a version refused before (an operator asked for it)."""
        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:
            return await self._refresh(force)

    async def _refresh(self, force: bool) -> RefreshResult:
        try:
            version = await asyncio.to_thread(self._aliased_version)
        except Exception as error:
            self._metrics.inc(REGISTRY_ERRORS)
            self._last_registry_error = f"{datetime.now(UTC).isoformat()}: {type(error).__name__}: {_first_line(error)}"
            logger.warning(
                "registry lookup of %s failed, serving %s: %s",
                self.project.model_uri,
                self._serving(),
                self._last_registry_error,
            )
            return RefreshResult(Outcome.REGISTRY_ERROR, None, self._last_registry_error)
        self._last_checked_at = datetime.now(UTC)
        if self._last_registry_error is not None:
            logger.info("registry reachable again: %s", self.project.model_uri)
            self._last_registry_error = None

        if version is None:
            if self.current is not None and self._serve_only_while_aliased:
                logger.info("%s no longer exists: no longer serving version %s", self.project.model_uri, self.current.version)
                self.current = None
                self._metrics.set(MODEL_VERSION, (self.project.model_name, self.project.alias), 0)
            elif self.current is not None and not self._alias_missing:
                logger.warning("%s no longer exists, still serving %s", self.project.model_uri, self._serving())
            self._alias_missing = True
            return RefreshResult(Outcome.NO_ALIAS, None, f"{self.project.model_uri} does not exist in the registry")
        self._alias_missing = False
        number = str(version.version)
        if self.current is not None and self.current.version == number:
            return RefreshResult(Outcome.UNCHANGED, number, f"already serving version {number}")
        if number in self._refused and not force:
            refusal = self._refused[number]
            return RefreshResult(Outcome.PREVIOUSLY_REFUSED, number, f"version {number} was refused: {refusal.reason}")

        try:
            model = await asyncio.to_thread(self._load, version)
        except VersionRefused as refusal:
            self._refuse(number, refusal)
            return RefreshResult(Outcome.REFUSED, number, f"version {number} refused at {refusal.stage}: {refusal.reason}")

        previous = self.current
        self.current = model  # the swap: one reference assignment, atomic for every reader
        self._refused.pop(number, None)
        self._metrics.inc(RELOADS)
        self._metrics.set(MODEL_VERSION, (model.name, model.alias), _version_number(number))
        if self._is_default:
            self._metrics.set(MODEL_LOADED_AT, (), model.loaded_at.timestamp())
        logger.info(
            "now serving %s version %s (was %s; loaded and smoke-tested in %.2fs, predictor %s)",
            model.name,
            number,
            previous.version if previous else "none",
            model.load_seconds,
            model.predictor.name,
        )
        return RefreshResult(Outcome.LOADED, number, f"now serving version {number}")

    def _refuse(self, version: str, refusal: VersionRefused) -> None:
        self._refused.pop(version, None)
        self._refused[version] = RefusedVersion(
            version=version, stage=refusal.stage, reason=refusal.reason, refused_at=datetime.now(UTC).isoformat()
        )
        while len(self._refused) > REMEMBERED_REFUSALS:
            self._refused.popitem(last=False)
        self._metrics.inc(FAILED_RELOADS, (refusal.stage,))
        logger.error(
            "refused %s version %s at %s, still serving %s: %s",
            self.project.model_name,
            version,
            refusal.stage,
            self._serving(),
            refusal.reason,
        )

    async def follow_alias(self, reload_requested: Callable[[], bool] | None = None) -> None:
        """Poll the alias forever (a background task per worker); `reload_requested()` -> True forces a reload."""
        tick = min(self.settings.poll_seconds, 0.5)
        next_poll = 0.0
        while True:
            try:
                forced = bool(reload_requested and reload_requested())
                if forced or time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.settings.poll_seconds
                    await self.refresh(force=forced)
            except asyncio.CancelledError:
                raise
            except Exception:  # the poller must survive anything, or the worker silently stops following
                logger.exception("polling %s failed", self.project.model_uri)
            await asyncio.sleep(tick)

    # --- registry access (blocking: called in threads) -----------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            import mlflow
            from mlflow import MlflowClient

            # Artifact URIs such as mlflow-artifacts:/ resolve through the process-wide tracking URI.
            mlflow.set_tracking_uri(self.settings.tracking_uri)
            mlflow.set_registry_uri(self.settings.tracking_uri)
            self._client = MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.tracking_uri)
        return self._client

    def _aliased_version(self) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.project.model_name, self.project.alias)
        except MlflowException as error:
            if error.error_code in _NOT_FOUND_CODES:
                return None
            raise

    def _load(self, version: Any) -> ServingModel:
        import mlflow.pyfunc
        import numpy as np

        number = str(version.version)
        started = time.perf_counter()
        try:
            location = self.client.get_model_version_download_uri(self.project.model_name, number)
            pyfunc_model = mlflow.pyfunc.load_model(location)
            predictor = ServedPredictor(pyfunc_model.get_raw_model(), self.project.layout, classifier=self.project.is_classifier)
        except Exception as error:
            raise VersionRefused("load", f"{type(error).__name__}: {_first_line(error)}") from error

        example = pyfunc_model.input_example
        if example is None:
            raise VersionRefused("smoke_test", "the version has no logged input example to test it on")
        layout = self.project.layout
        try:
            answered = np.asarray(pyfunc_model.predict(example)).ravel()
            expected = answered.astype(str).astype(object) if predictor.is_classifier else answered.astype(np.float64)
            columns = {name: layout.column_of(example, name) for name in layout.features}
            paths = predictor.predict_every_path(columns)
        except Exception as error:
            raise VersionRefused(
                "smoke_test", f"predicting the input example failed: {type(error).__name__}: {_first_line(error)}"
            ) from error
        if not predictor.is_classifier and not np.isfinite(expected).all():
            raise VersionRefused("smoke_test", f"non-finite predictions on the input example: {expected.tolist()}")
        for path, predictions in paths.items():
            if not np.array_equal(predictions.values, expected):
                raise VersionRefused("smoke_test", f"the {path} path disagrees with pyfunc on the input example")
            if predictions.probabilities is not None and not np.isfinite(predictions.probabilities).all():
                raise VersionRefused("smoke_test", f"the {path} path gives non-finite class probabilities")

        lineage = self._lineage(version)
        # Long-lived objects (MLflow, the model) would otherwise be re-scanned by every full collection:
        # pauses of ~200 ms under load. Freezing is O(1); a full collection here would pause requests.
        gc.freeze()
        return ServingModel(
            name=self.project.model_name,
            alias=self.project.alias,
            version=number,
            predictor=predictor,
            lineage=lineage,
            loaded_at=datetime.now(UTC),
            load_seconds=round(time.perf_counter() - started, 3),
        )

    def _lineage(self, version: Any) -> ModelLineage:
        number = str(version.version)
        if number in self._lineage_cache:
            return self._lineage_cache[number]
        metrics: dict[str, float] = {}
        if version.run_id:
            try:
                run_metrics = self.client.get_run(version.run_id).data.metrics
                # The overall holdout metrics of the project's task; per-slice ones carry a "/".
                metrics = {
                    name.removeprefix(HOLDOUT_PREFIX): value
                    for name, value in run_metrics.items()
                    if name.startswith(HOLDOUT_PREFIX) and "/" not in name
                }
            except Exception as error:  # a deleted run must not hide the rest of the lineage
                logger.warning("run %s of version %s unreadable: %s", version.run_id, number, _first_line(error))
        tags = version.tags or {}
        lineage = ModelLineage(
            model_name=self.project.model_name,
            model_version=number,
            mlflow_run_id=version.run_id or None,
            source=version.source,
            holdout_metrics=metrics,
            **{tag: tags.get(tag) for tag in LINEAGE_TAGS},
        )
        self._lineage_cache[number] = lineage
        return lineage

    def lineage_of(self, version: str) -> ModelLineage:
        """Lineage of any version, loaded here or not (blocking)."""
        if version in self._lineage_cache:
            return self._lineage_cache[version]
        return self._lineage(self.client.get_model_version(self.project.model_name, version))

    # --- reporting -----------------------------------------------------------------------------

    def state(self) -> ModelState:
        model = self.current
        return ModelState(
            project=self.project.name,
            task=self.project.task,
            name=self.project.model_name,
            alias=self.project.alias,
            version=model.version if model else None,
            loaded_at=model.loaded_at.isoformat() if model else None,
            load_seconds=model.load_seconds if model else None,
            predictor=model.predictor.name if model else None,
            lineage=model.lineage if model else None,
            last_checked_at=self._last_checked_at.isoformat() if self._last_checked_at else None,
            last_registry_error=self._last_registry_error,
            refused_versions=list(reversed(self._refused.values())),
            worker=self.worker,
        )

    def _serving(self) -> str:
        return f"version {self.current.version}" if self.current else "no model"


def _version_number(version: str) -> float:
    try:
        return float(int(version))
    except ValueError:
        return float("nan")


def _first_line(error: BaseException) -> str:
    text = redacted(str(error).strip())
    return text.splitlines()[0][:500] if text else type(error).__name__


class ReloadSignal:
    """A reload asked of one worker, passed on to the others through a file in the shared runtime folder.

    POST /admin/reload reaches one worker only; the others see the file change on their next poll tick."""

    def __init__(self, runtime_dir: Path | None) -> None:
        self._path = runtime_dir / "reload-requested" if runtime_dir is not None else None
        self._seen = self._read()

    def _read(self) -> str | None:
        if self._path is None:
            return None
        try:
            return self._path.read_text()
        except OSError:
            return None

    def request(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        token = f"{time.time_ns()}-{os.getpid()}"
        temporary = self._path.with_name(f".reload-requested.{os.getpid()}.tmp")
        temporary.write_text(token)
        os.replace(temporary, self._path)
        self._seen = token  # this worker reloads itself right away

    def requested(self) -> bool:
        current = self._read()
        if current is None or current == self._seen:
            return False
        self._seen = current
        return True
