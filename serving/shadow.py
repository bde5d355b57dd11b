"""Where a project's predictions go once answered: straight to the prediction log, or, in shadow mode,
first past the challenger, which scores the same rows off the request path.

Shadow scoring runs on the event loop, after the answers: the champion's batcher hands over the
columns it already built, and a callback scheduled SHADOW_DELAY_SECONDS later scores the batches
waiting by then, in challenger calls of at most MAX_ROWS_PER_SHADOW_CALL rows, SHADOW_DELAY_SECONDS
apart. Not in a thread: a CPU-bound thread holds the GIL for up to the interpreter's switch interval
(5 ms) whenever the loop wants it back, a delay that would land on the champion's requests; on the
loop a shadow call costs them only its own length. Coalescing the batches of several requests pays
the model's fixed cost once for all of them; keeping each call short leaves the loop to the champion's
requests between calls.

The backlog is bounded: rows beyond MAX_PENDING_ROWS are logged without a shadow prediction (and
counted), so a slow challenger can never cost the champion memory or answers.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from serving.metrics import SHADOW_ROWS, SHADOW_ROWS_SKIPPED, Metrics
from serving.prediction_log import CHALLENGER, LoggedBatch, PredictionLog
from serving.served_project import RowLayout

if TYPE_CHECKING:
    from serving.model_holder import ServingModel

logger = logging.getLogger("serving.shadow")

SHADOW_DELAY_SECONDS = 0.005
# Small calls, each SHADOW_DELAY_SECONDS apart: the champion's requests that arrive meanwhile are
# answered between them. With one call of everything waiting, the champion's p99 at 8 connections rose
# by half (4.6 -> 6.8 ms); with calls of 64 rows it rose 6% (3.6 -> 3.8 ms, alternated wrk rounds,
# one worker). The challenger then keeps up with 64 rows per 5 ms, ~12,800 rows/s per worker; beyond
# that the backlog fills and rows are logged without a shadow prediction (counted).
MAX_ROWS_PER_SHADOW_CALL = 64
MAX_PENDING_ROWS = 20_000


class ShadowScorer:
    """Scores the champion's logged batches with the challenger, then logs them with both answers."""

    def __init__(
        self,
        project: str,
        layout: RowLayout,
        challenger: Callable[[], "ServingModel | None"],
        prediction_log: PredictionLog,
        metrics: Metrics,
    ) -> None:
        self._project = project
        self._layout = layout
        self._challenger = challenger
        self._prediction_log = prediction_log
        self._metrics = metrics
        self._pending: list[LoggedBatch] = []
        self._pending_rows = 0
        self._scheduled = False

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def append(self, batch: LoggedBatch) -> None:
        rows = len(batch.request_ids)
        if self._pending_rows + rows > MAX_PENDING_ROWS:
            self._metrics.inc(SHADOW_ROWS_SKIPPED, (self._project, "backlog"), rows)
            self._prediction_log.append(batch)
            return
        self._pending.append(batch)
        self._pending_rows += rows
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(SHADOW_DELAY_SECONDS, self._score_some)

    def _score_some(self) -> None:
        taken: list[LoggedBatch] = []
        rows = 0
        while self._pending and (not taken or rows + len(self._pending[0].request_ids) <= MAX_ROWS_PER_SHADOW_CALL):
            batch = self._pending.pop(0)
            taken.append(batch)
            rows += len(batch.request_ids)
        self._pending_rows -= rows
        self._score(taken)
        if self._pending:  # the rest after the champion's requests that arrive meanwhile
            asyncio.get_running_loop().call_later(SHADOW_DELAY_SECONDS, self._score_some)
        else:
            self._scheduled = False

    def flush(self) -> None:
        """Score and log everything waiting (on shutdown)."""
        batches, self._pending, self._pending_rows = self._pending, [], 0
        if batches:
            self._score(batches)

    def _score(self, batches: list[LoggedBatch]) -> None:
        rows = sum(len(batch.request_ids) for batch in batches)
        challenger = self._challenger()
        if challenger is None:
            self._skip(batches, rows, "no_challenger")
            return
        try:
            columns = {
                name: np.concatenate([batch.columns[name] for batch in batches]) if len(batches) > 1 else batches[0].columns[name]
                for name in self._layout.features
            }
            predictions = challenger.predictor.predict(columns).values
        except Exception:  # the challenger's failure must cost the champion nothing but this log line
            logger.exception("challenger version %s failed in the shadow of %s", challenger.version, self._project)
            self._skip(batches, rows, "challenger_failed")
            return
        start = 0
        for batch in batches:
            end = start + len(batch.request_ids)
            self._prediction_log.append(
                dataclasses.replace(batch, shadow_version=challenger.version, shadow_predictions=predictions[start:end])
            )
            start = end
        self._metrics.inc(SHADOW_ROWS, (self._project, challenger.name, challenger.version), rows)

    def _skip(self, batches: list[LoggedBatch], rows: int, reason: str) -> None:
        self._metrics.inc(SHADOW_ROWS_SKIPPED, (self._project, reason), rows)
        for batch in batches:
            self._prediction_log.append(batch)


class ChampionSink:
    """What the champion's batcher logs to: the shadow scorer while shadowing, else the log itself."""

    def __init__(self, prediction_log: PredictionLog, shadow: ShadowScorer, shadowing: Callable[[], bool]) -> None:
        self._prediction_log = prediction_log
        self._shadow = shadow
        self._shadowing = shadowing

    def append(self, batch: LoggedBatch) -> None:
        if self._shadowing():
            self._shadow.append(batch)
        else:
            self._prediction_log.append(batch)


class ChallengerSink:
    """What the challenger's batcher logs to: the same log, its rows marked as answered by the challenger."""

    def __init__(self, prediction_log: PredictionLog) -> None:
        self._prediction_log = prediction_log

    def append(self, batch: LoggedBatch) -> None:
        self._prediction_log.append(dataclasses.replace(batch, answered_by=CHALLENGER))
