"""The prediction log: every prediction the app makes, as Parquet files the pipeline can read.

One log per served model, in `<MLOPS_PREDICTION_LOG_DIR>/<registered model name>/` (where its project's
drift monitoring reads it), laid out as:

    date=YYYY-MM-DD/part-<first_ms>-<last_ms>-<worker>-<seq>.parquet

`date` is the UTC day the requests were received (a Hive partition: Spark and pyarrow read it as a
column); `first_ms`/`last_ms` bound the receive times (ms since the epoch) of the requests in the file.
Each worker process writes only its own files, under a temporary dot-name first and renamed when
complete, so readers never see a partial file and workers never share one. Files are immutable.

Schema, one row per predicted record (a request of n records gives n rows):

    request_id     string               UUIDv7 of the request; its first 48 bits are the receive time in ms
    row_index      int32                position of the record in the request
    predicted_at   timestamp[ms, UTC]   when the model call that produced it returned
    route          string               "/predict", "/invocations", "/models/<project>/predict", ...
    worker         string               host-pid-nonce of the worker process that served it
    model_name     string               registered model name
    model_version  string               registry version that made the prediction
    model_run_id   string               MLflow run that trained that version
    <feature>      float64 or string    every raw feature of the project's domain, in the model's order,
                                        as received (null when missing): numbers float64, categories string
    prediction     float64 or string    the predicted value, or a classifier's predicted label
    answered_by    string               "champion" (the `production` alias) or "challenger" (a canary answer)
    answered_by_version string          the version whose prediction was answered (= model_version; named
                                        for readers comparing champion and challenger)
    shadow_version string               in shadow mode, the challenger version that scored the same row
                                        off the request path (null otherwise, or when it could not)
    shadow_prediction float64 or string what that challenger predicted (null without one)

Writes happen off the request path: the batcher appends the arrays it already built (one list append
per model call) and a background thread writes them every MLOPS_PREDICTION_LOG_FLUSH_SECONDS. The log
is bounded twice: rows waiting in memory (beyond the budget they are dropped and counted in
`serving_prediction_log_rows_dropped_total`) and bytes on disk (the oldest files are deleted first).

Files written before the champion/challenger columns existed lack them: a reader takes a missing
`answered_by` as "champion" and `answered_by_version` as `model_version`.
"""

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from serving.metrics import LOG_FILES_PRUNED, LOG_ROWS_DROPPED, LOG_ROWS_WRITTEN, Metrics
from serving.served_project import RowLayout

logger = logging.getLogger("serving.prediction_log")

_MS_PER_DAY = 86_400_000
CHAMPION = "champion"
CHALLENGER = "challenger"


# Not a secret, only unique: a PRNG seeded from the OS is ~4x cheaper per id than os.urandom, and it
# is re-seeded in forked children so that two workers never share a sequence.
_id_bits = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _id_bits.seed(os.urandom(16)))


def new_request_id() -> str:
    """A UUIDv7: unique across workers and restarts, and ordered by the time the request arrived."""
    millis = time.time_ns() // 1_000_000
    bits = _id_bits.getrandbits(74)
    value = millis << 80 | 0x7 << 76 | (bits >> 62) << 64 | 0b10 << 62 | (bits & ((1 << 62) - 1))
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _millis_of(request_id: str) -> int:
    # The first 48 bits of a UUIDv7, without parsing the whole UUID: this runs once per logged row.
    return int(request_id[:8] + request_id[9:13], 16)


def request_id_millis(request_id: str) -> int | None:
    """The receive time inside a request id this app issued, or None for anything else."""
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        return None
    return parsed.int >> 80 if parsed.version == 7 else None


@dataclass(frozen=True, slots=True)
class Answer:
    """Who answered a logged row: the side (champion or challenger) and its registry version."""

    role: str
    version: str


@dataclass(frozen=True, slots=True)
class LoggedBatch:
    """What one model call predicted, as the batcher already holds it."""

    request_ids: list[str]  # per row
    row_indexes: list[int]
    routes: list[str]
    predicted_at_ms: int
    model_name: str
    model_version: str
    model_run_id: str
    columns: Mapping[str, np.ndarray]  # every raw feature, in the model's order
    predictions: np.ndarray  # float64 values, or labels
    answered_by: str = CHAMPION
    shadow_version: str | None = None
    shadow_predictions: np.ndarray | None = None  # the challenger's, row for row, in shadow mode

    def rows(self) -> Iterator[dict[str, Any]]:
        for position, request_id in enumerate(self.request_ids):
            shadow = self.shadow_predictions
            yield {
                "request_id": request_id,
                "row_index": self.row_indexes[position],
                "predicted_at": datetime.fromtimestamp(self.predicted_at_ms / 1000, UTC),
                "route": self.routes[position],
                "model_name": self.model_name,
                "model_version": self.model_version,
                "model_run_id": self.model_run_id,
                **{name: _feature_value(values[position]) for name, values in self.columns.items()},
                "prediction": _prediction_value(self.predictions[position]),
                "answered_by": self.answered_by,
                "answered_by_version": self.model_version,
                "shadow_version": self.shadow_version if shadow is not None else None,
                "shadow_prediction": _prediction_value(shadow[position]) if shadow is not None else None,
            }


def _feature_value(value: Any) -> float | str | None:
    if isinstance(value, str):
        return value
    return None if value is None or np.isnan(value) else float(value)


def _prediction_value(value: Any) -> float | str:
    return value if isinstance(value, str) else float(value)


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        *,
        layout: RowLayout,
        worker: str,
        metrics: Metrics,
        flush_seconds: float,
        max_pending_rows: int,
        max_bytes: int,
    ) -> None:
        self.directory = directory
        self.layout = layout
        self.worker = worker
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._max_pending_rows = max_pending_rows
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pending: list[LoggedBatch] = []
        self._pending_rows = 0
        self._writing: list[LoggedBatch] = []  # taken from pending, not yet renamed into place
        self._sequence = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- hot path ------------------------------------------------------------------------------

    def append(self, batch: LoggedBatch) -> None:
        rows = len(batch.request_ids)
        with self._lock:
            if self._pending_rows + rows > self._max_pending_rows:
                dropped = True
            else:
                dropped = False
                self._pending.append(batch)
                self._pending_rows += rows
        if dropped:
            self._metrics.inc(LOG_ROWS_DROPPED, ("buffer_full",), rows)

    # --- background writer ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"prediction-log-{self.worker}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is pending and stop the writer (called on shutdown)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the writer must outlive any one bad flush
                logger.exception("prediction log flush failed")

    def flush(self) -> None:
        with self._lock:
            batches, self._pending, self._pending_rows = self._pending, [], 0
            self._writing = batches
        try:
            if batches:
                self._write(batches)
        finally:
            with self._lock:
                self._writing = []
        if batches:
            self._enforce_disk_budget()

    def _write(self, batches: list[LoggedBatch]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = sum(len(batch.request_ids) for batch in batches)
        try:
            request_ids = [request_id for batch in batches for request_id in batch.request_ids]
            received_ms = np.fromiter((_millis_of(rid) for rid in request_ids), dtype=np.int64, count=rows)
            columns: dict[str, Any] = {
                "request_id": pa.array(request_ids, pa.string()),
                "row_index": pa.array(np.concatenate([np.asarray(b.row_indexes, np.int32) for b in batches])),
                "predicted_at": pa.array(
                    np.repeat([b.predicted_at_ms for b in batches], [len(b.request_ids) for b in batches]),
                    pa.timestamp("ms", tz="UTC"),
                ),
                "route": pa.array([route for batch in batches for route in batch.routes], pa.string()),
                "worker": pa.array([self.worker] * rows, pa.string()),
                "model_name": _repeated(batches, lambda b: b.model_name),
                "model_version": _repeated(batches, lambda b: b.model_version),
                "model_run_id": _repeated(batches, lambda b: b.model_run_id),
            }
            for name in self.layout.features:
                if name in self.layout.categorical:
                    columns[name] = pa.array(np.concatenate([np.asarray(b.columns[name], dtype=object) for b in batches]), pa.string())
                else:
                    values = np.concatenate([np.asarray(b.columns[name], dtype=np.float64) for b in batches])
                    columns[name] = pa.array(values, pa.float64(), mask=np.isnan(values))
            predictions = np.concatenate([b.predictions for b in batches])
            labels = predictions.dtype == object
            columns["prediction"] = pa.array(predictions, pa.string() if labels else pa.float64())
            columns["answered_by"] = _repeated(batches, lambda b: b.answered_by)
            columns["answered_by_version"] = columns["model_version"]
            columns["shadow_version"] = _repeated(batches, lambda b: b.shadow_version if b.shadow_predictions is not None else None)
            columns["shadow_prediction"] = _shadow_column(batches, labels)
            table = pa.table(columns)

            days = received_ms // _MS_PER_DAY
            for day in np.unique(days):
                in_day = np.flatnonzero(days == day)
                part = table.take(pa.array(in_day)) if len(in_day) < rows else table
                day_ms = received_ms[in_day]
                folder = self.directory / f"date={datetime.fromtimestamp(int(day) * 86_400, UTC):%Y-%m-%d}"
                folder.mkdir(parents=True, exist_ok=True)
                self._sequence += 1
                name = f"part-{int(day_ms.min()):013d}-{int(day_ms.max()):013d}-{self.worker}-{self._sequence:06d}.parquet"
                temporary = folder / f".{name}.tmp"
                pq.write_table(part, temporary, compression="zstd")
                os.replace(temporary, folder / name)
        except Exception:
            self._metrics.inc(LOG_ROWS_DROPPED, ("write_failed",), rows)
            raise
        self._metrics.inc(LOG_ROWS_WRITTEN, (), rows)

    def _log_files(self) -> list[tuple[int, Path, int]]:
        """(first receive ms, path, bytes) of every finished log file, from every worker."""
        files = []
        if not self.directory.is_dir():
            return files
        for day in os.scandir(self.directory):
            if not day.is_dir() or not day.name.startswith("date="):
                continue
            for entry in os.scandir(day.path):
                if entry.name.startswith("part-") and entry.name.endswith(".parquet"):
                    try:
                        files.append((int(entry.name.split("-")[1]), Path(entry.path), entry.stat().st_size))
                    except (ValueError, IndexError, FileNotFoundError):
                        continue
        return files

    def _enforce_disk_budget(self) -> None:
        files = sorted(self._log_files())
        total = sum(size for _, _, size in files)
        for _, path, size in files:
            if total <= self._max_bytes:
                break
            try:
                path.unlink()
                self._metrics.inc(LOG_FILES_PRUNED)
            except FileNotFoundError:
                pass  # another worker pruned it first
            total -= size

    # --- lineage lookups -----------------------------------------------------------------------

    def find(self, request_id: str) -> list[dict[str, Any]]:
        """The logged rows of one request: from memory if not written yet, else from its files.

        Blocking (reads Parquet): call it from a thread."""
        received_ms = request_id_millis(request_id)
        if received_ms is None:
            return []
        with self._lock:
            in_memory = [*self._pending, *self._writing]
        rows = [
            row
            for batch in in_memory
            if request_id in batch.request_ids
            for row in batch.rows()
            if row["request_id"] == request_id
        ]
        if rows:
            return [{**row, "worker": self.worker} for row in rows]
        return self._read_from_files(request_id, received_ms)

    def _read_from_files(self, request_id: str, received_ms: int) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        folder = self.directory / f"date={datetime.fromtimestamp(received_ms // _MS_PER_DAY * 86_400, UTC):%Y-%m-%d}"
        if not folder.is_dir():
            return []
        rows: list[dict[str, Any]] = []
        for entry in os.scandir(folder):
            parts = entry.name.split("-")
            if not entry.name.startswith("part-") or not entry.name.endswith(".parquet") or len(parts) < 3:
                continue
            try:
                if not int(parts[1]) <= received_ms <= int(parts[2]):
                    continue
                table = pq.read_table(entry.path, filters=[("request_id", "==", request_id)])
            except (ValueError, OSError):
                continue  # pruned meanwhile
            rows.extend(table.to_pylist())
        return sorted(rows, key=lambda row: row["row_index"])

    def answers_of(self, request_ids: Iterable[str]) -> dict[tuple[str, int], Answer]:
        """Which side and version answered each logged row of these requests, by (request id, row index).

        Blocking (reads Parquet): call it from a thread. Ids this app did not issue are simply absent."""
        import pyarrow.parquet as pq

        wanted = {request_id for request_id in request_ids if request_id_millis(request_id) is not None}
        answers: dict[tuple[str, int], Answer] = {}
        with self._lock:
            in_memory = [*self._pending, *self._writing]
        for batch in in_memory:
            for request_id, row_index in zip(batch.request_ids, batch.row_indexes, strict=True):
                if request_id in wanted:
                    answers[(request_id, row_index)] = Answer(batch.answered_by, batch.model_version)
        by_folder: dict[Path, list[int]] = {}
        for request_id in wanted:
            received_ms = request_id_millis(request_id)
            assert received_ms is not None
            folder = self.directory / f"date={datetime.fromtimestamp(received_ms // _MS_PER_DAY * 86_400, UTC):%Y-%m-%d}"
            by_folder.setdefault(folder, []).append(received_ms)
        for folder, millis in by_folder.items():
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                parts = entry.name.split("-")
                if not entry.name.startswith("part-") or not entry.name.endswith(".parquet") or len(parts) < 3:
                    continue
                try:
                    first, last = int(parts[1]), int(parts[2])
                    if not any(first <= received_ms <= last for received_ms in millis):
                        continue
                    table = pq.read_table(entry.path, filters=[("request_id", "in", sorted(wanted))])
                except (ValueError, OSError):
                    continue  # pruned meanwhile
                for row in table.to_pylist():
                    version = row.get("answered_by_version") or row["model_version"]
                    answers[(row["request_id"], row["row_index"])] = Answer(row.get("answered_by") or CHAMPION, version)
        return answers


def _shadow_column(batches: list[LoggedBatch], labels: bool) -> Any:
    import pyarrow as pa

    kind = object if labels else np.float64
    missing = None if labels else np.nan
    values = np.concatenate(
        [
            np.full(len(b.request_ids), missing, dtype=kind) if b.shadow_predictions is None else np.asarray(b.shadow_predictions, dtype=kind)
            for b in batches
        ]
    )
    if labels:
        return pa.array(values, pa.string())
    return pa.array(values, pa.float64(), mask=np.isnan(values))


def _repeated(batches: list[LoggedBatch], value_of: Any) -> Any:
    import pyarrow as pa

    values = np.array([value_of(batch) for batch in batches], dtype=object)
    return pa.array(np.repeat(values, [len(batch.request_ids) for batch in batches]), pa.string())
