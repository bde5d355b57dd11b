"""Prometheus metrics of the serving app, in prometheus-client's multiprocess mode.

Each app instance (one per uvicorn worker) keeps its counts in memory-mapped files of its own under
`<MLOPS_SERVING_RUNTIME_DIR>/metrics`, in the format of prometheus-client's multiprocess mode, and
`/metrics` reads the files of every worker there with prometheus-client's `MultiProcessCollector` and
prints them with `generate_latest`. So whichever worker a scrape reaches answers for all of them, and a
count is visible the moment it is made. Without a runtime folder the app keeps its files in a private
temporary folder and answers for itself.

Counters and histograms are summed over workers, including workers that have exited: a killed worker's
counts stay, so totals never go back while the server runs (`python -m serving` clears the folder when
it starts). Gauges (the version a worker serves, when it loaded it) carry a `worker` label and leave
with their worker, when it shuts down or, if it was killed, at the next scrape.

The files are written here rather than through prometheus-client's `Counter`/`Gauge`/`Histogram`,
because its multiprocess mode is one per process, chosen by an environment variable before it is
imported, whereas a process may hold several apps (tests, embedders), each with a runtime folder of
its own or none. A write is what prometheus-client's would be: a lookup and a 16-byte store in the map.
"""

import bisect
import math
import os
import secrets
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.utils import floatToGoString

# ASGI types, spelled out to keep this module free of framework imports.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
# prometheus-client's `live` gauge modes drop a gauge with its process; the `worker` label each gauge
# carries keeps one series per worker whichever aggregation the mode names.
GAUGE_MODE = "livemax"


@dataclass(frozen=True, eq=False)
class Family:
    name: str  # as exposed: counters end in _total
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    # Label values exposed at 0 from the start: a rate or increase() sees the first event only when
    # the series existed before it.
    zeroed: tuple[tuple[str, ...], ...] = ()


REQUESTS = Family("serving_requests_total", "counter", "HTTP requests answered.", ("route", "method", "status"))
REQUEST_SECONDS = Family(
    "serving_request_duration_seconds", "histogram", "Time to answer a request.", ("route", "status"), LATENCY_BUCKETS
)
BATCH_ROWS = Family(
    "serving_predict_batch_rows", "histogram", "Rows per model call after micro-batching.", (), BATCH_ROW_BUCKETS, ((),)
)
PREDICTED_ROWS = Family(
    "serving_predicted_rows_total", "counter", "Rows predicted, by the model version that predicted them.",
    ("route", "model", "alias", "version"),
)  # fmt: skip
MODEL_VERSION = Family("serving_model_version", "gauge", "Registry version a worker serves (0: none yet).", ("model", "alias"))
MODEL_LOADED_AT = Family("serving_model_loaded_timestamp_seconds", "gauge", "When the served version was loaded.", ())
RELOADS = Family("serving_model_reloads_total", "counter", "Versions loaded, smoke-tested and swapped in.", (), (), ((),))
FAILED_RELOADS = Family(
    "serving_model_reload_failures_total", "counter", "Versions refused, by the stage that failed.", ("stage",),
    zeroed=(("load",), ("smoke_test",)),
)  # fmt: skip
REGISTRY_ERRORS = Family(
    "serving_registry_errors_total", "counter", "Failed lookups of the alias in the registry.", (), (), ((),)
)
LOG_ROWS_WRITTEN = Family(
    "serving_prediction_log_rows_written_total", "counter", "Predictions written to the log.", (), (), ((),)
)
LOG_ROWS_DROPPED = Family(
    "serving_prediction_log_rows_dropped_total", "counter", "Predictions not logged: buffer full or write failed.", ("reason",),
    zeroed=(("buffer_full",), ("write_failed",)),
)  # fmt: skip
LOG_FILES_PRUNED = Family(
    "serving_prediction_log_files_pruned_total", "counter", "Oldest log files deleted to stay within the disk budget.",
    zeroed=((),),
)  # fmt: skip

FAMILIES: tuple[Family, ...] = (
    REQUESTS,
    REQUEST_SECONDS,
    BATCH_ROWS,
    PREDICTED_ROWS,
    MODEL_VERSION,
    MODEL_LOADED_AT,
    RELOADS,
    FAILED_RELOADS,
    REGISTRY_ERRORS,
    LOG_ROWS_WRITTEN,
    LOG_ROWS_DROPPED,
    LOG_FILES_PRUNED,
)
_FILE_PREFIX = {"counter": "counter", "histogram": "histogram", "gauge": f"gauge_{GAUGE_MODE}"}


class _Value:
    """One sample's value and its slot in a worker's file."""

    __slots__ = ("key", "value")

    def __init__(self, key: str) -> None:
        self.key = key
        self.value = 0.0


class _Histogram:
    __slots__ = ("bucket_values", "sum")

    def __init__(self, bucket_values: list[_Value], total: _Value) -> None:
        self.bucket_values = bucket_values  # one per bound and +Inf, not cumulative (the collector adds them up)
        self.sum = total


class Metrics:
    """One app instance's metrics: written to its own files, read with every other worker's."""

    def __init__(self, worker: str, runtime_dir: Path | None = None) -> None:
        self.worker = worker
        if runtime_dir is None:
            self.directory = Path(tempfile.mkdtemp(prefix="mlops-serving-metrics-"))
            # Also when the app is only imported and never started (its lifespan never ends).
            self._cleanup = weakref.finalize(self, shutil.rmtree, self.directory, True)
        else:
            self.directory = runtime_dir / "metrics"
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cleanup = None
        # The pid comes first: a scrape tells a killed worker's files by it.
        self._file_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._files = {kind: self._open(kind) for kind in _FILE_PREFIX}
        self._series: dict[Family, dict[tuple[str, ...], Any]] = {family: {} for family in FAMILIES}
        self._registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(self._registry, path=str(self.directory))
        with self._lock:
            for family in FAMILIES:
                for labels in family.zeroed:
                    self._series_of(family, labels)

    # --- writing (the hot path) ----------------------------------------------------------------

    def inc(self, family: Family, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        with self._lock:
            series = self._series[family].get(labels) or self._series_of(family, labels)
            series.value += amount
            self._files[family.kind].write_value(series.key, series.value, 0.0)

    def set(self, family: Family, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            series = self._series[family].get(labels) or self._series_of(family, labels)
            series.value = value
            self._files[family.kind].write_value(series.key, value, 0.0)

    def observe(self, family: Family, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            self._observe(family, labels, value)

    def _observe(self, family: Family, labels: tuple[str, ...], value: float) -> None:
        histogram = self._series[family].get(labels) or self._series_of(family, labels)
        bucket = histogram.bucket_values[bisect.bisect_left(family.buckets, value)]
        bucket.value += 1
        histogram.sum.value += value
        file = self._files["histogram"]
        file.write_value(bucket.key, bucket.value, 0.0)
        file.write_value(histogram.sum.key, histogram.sum.value, 0.0)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method, str(status))
        with self._lock:  # once for both: this runs for every request
            requests = self._series[REQUESTS].get(labels) or self._series_of(REQUESTS, labels)
            requests.value += 1
            self._files["counter"].write_value(requests.key, requests.value, 0.0)
            self._observe(REQUEST_SECONDS, (route, labels[2]), seconds)

    def clear(self, family: Family) -> None:
        """Remove every series of a gauge family (a file slot cannot be freed: the gauge file is rewritten)."""
        if family.kind != "gauge":
            raise ValueError(f"only gauges can be cleared, not the {family.kind} {family.name}")
        with self._lock:
            self._series[family].clear()
            if self._files["gauge"] is _DISCARDED:
                return
            self._files["gauge"].close()
            self._file_path("gauge").unlink(missing_ok=True)
            self._files["gauge"] = self._open("gauge")
            for gauge in (f for f in FAMILIES if f.kind == "gauge"):
                for series in self._series[gauge].values():
                    self._files["gauge"].write_value(series.key, series.value, 0.0)

    def _series_of(self, family: Family, labels: tuple[str, ...]) -> Any:
        """Create a series (the lock is held): its slots in the file, at 0."""
        if len(labels) != len(family.labels):
            raise ValueError(f"{family.name} takes the labels {family.labels}, not {labels}")
        names, values = list(family.labels), [str(value) for value in labels]
        if family.kind == "gauge":
            names.append("worker")
            values.append(self.worker)
        file = self._files[family.kind]
        if family.kind == "histogram":
            bucket_values = []
            for bound in (*family.buckets, math.inf):
                key = mmap_key(family.name, f"{family.name}_bucket", [*names, "le"], [*values, floatToGoString(bound)], family.help)
                bucket_values.append(_Value(key))
            series: Any = _Histogram(bucket_values, _Value(mmap_key(family.name, f"{family.name}_sum", names, values, family.help)))
            for value in (*bucket_values, series.sum):
                file.write_value(value.key, 0.0, 0.0)
        else:
            # prometheus-client names a counter without its _total and adds it back when exposing it.
            metric = family.name.removesuffix("_total") if family.kind == "counter" else family.name
            series = _Value(mmap_key(metric, family.name, names, values, family.help))
            file.write_value(series.key, 0.0, 0.0)
        self._series[family][labels] = series
        return series

    def _file_path(self, kind: str) -> Path:
        return self.directory / f"{_FILE_PREFIX[kind]}_{self._file_id}.db"

    def _open(self, kind: str) -> MmapedDict:
        return MmapedDict(str(self._file_path(kind)))

    # --- reading -------------------------------------------------------------------------------

    def render(self) -> bytes:
        """Every worker's metrics in the Prometheus text format (version 0.0.4)."""
        self._forget_dead_workers()
        return generate_latest(self._registry)

    def _forget_dead_workers(self) -> None:
        # A worker that shut down removed its gauges itself; one that was killed could not.
        for path in self.directory.glob(f"gauge_{GAUGE_MODE}_*.db"):
            file_id = path.stem.removeprefix(f"gauge_{GAUGE_MODE}_")
            pid = file_id.split("-", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                mark_process_dead(file_id, str(self.directory))

    def withdraw(self) -> None:
        """Take this worker's gauges out of the scrapes (on shutdown); its counts stay in the totals."""
        with self._lock:
            for kind, file in self._files.items():
                file.close()
                self._files[kind] = _DISCARDED  # a late count (a request still finishing) has nowhere to go
            mark_process_dead(self._file_id, str(self.directory))
        if self._cleanup is not None:
            self._cleanup()


class _Discarded:
    def write_value(self, key: str, value: float, timestamp: float) -> None:
        pass

    def close(self) -> None:
        pass


_DISCARDED: Any = _Discarded()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def request_metrics_middleware(metrics: Metrics) -> Callable[[ASGIApp], ASGIApp]:
    """Counts and times every HTTP request by route template (not raw path: ids would explode the labels)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = perf_counter()
            status = 500  # what the client gets if the app dies before answering

            async def send_recording_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_recording_status)
            finally:
                route = scope.get("path_template") or "unmatched"
                metrics.observe_request(route, scope["method"], status, perf_counter() - started)

        return middleware

    return wrap
