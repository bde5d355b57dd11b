"""Prometheus metrics of the serving app, in prometheus-client's multiprocess mode.

Each app instance (one per uvicorn worker) counts in memory (a dict update per request) and publishes
its counts every second to memory-mapped files of its own under `<MLOPS_SERVING_RUNTIME_DIR>/metrics`,
in the format of prometheus-client's multiprocess mode. `/metrics` reads the files of every worker
there with prometheus-client's `MultiProcessCollector` and prints them with `generate_latest`: whichever
worker a scrape reaches answers for all of them, its own counts as of now and the others' as of their
last publication. Without a runtime folder the app keeps its files in a private temporary folder and
answers for itself.

Counters and histograms are summed over workers, including workers that have exited: a killed worker's
published counts stay, so totals do not go back while the server runs (`python -m serving` clears the
folder when it starts). Gauges (the version a worker serves, when it loaded it) carry a `worker` label
and leave with their worker, when it shuts down or, if it was killed, at the next scrape.

The files are written here rather than through prometheus-client's `Counter`/`Gauge`/`Histogram` for
two reasons. Its multiprocess mode is one per process, chosen by an environment variable before it is
imported, whereas a process may hold several apps (tests, embedders), each with a runtime folder of its
own or none. And it stores every increment in the memory map at once, which measured ~3 us more per
request inside the server than a dict update (6.1 against 3.0 us per request's metrics, 3-7% of the
throughput of /health); publishing once a second costs the hot path nothing.
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
# Per model version, and its role: the champion follows `production`, the challenger its own alias.
VERSION_LABELS = ("project", "model", "version", "role")
MODEL_REQUESTS = Family(
    "serving_model_requests_total", "counter", "Prediction requests answered, by the version that answered them.", VERSION_LABELS
)
MODEL_REQUEST_SECONDS = Family(
    "serving_model_request_duration_seconds", "histogram",
    "Time from a prediction request's decoded body to its answer, by the version that answered.", VERSION_LABELS, LATENCY_BUCKETS,
)  # fmt: skip
MODEL_PREDICTED_ROWS = Family(
    "serving_model_predicted_rows_total", "counter", "Rows answered, by the version that answered them.", VERSION_LABELS
)
SHADOW_ROWS = Family(
    "serving_shadow_predicted_rows_total", "counter", "Rows a challenger scored in the shadow of the champion (not answered).",
    ("project", "model", "version"),
)  # fmt: skip
SHADOW_ROWS_SKIPPED = Family(
    "serving_shadow_rows_skipped_total", "counter",
    "Rows logged without a shadow prediction: the backlog was full, the challenger failed or left.", ("project", "reason"),
)  # fmt: skip
FEEDBACK = Family(
    "serving_model_feedback_total", "counter", "Outcomes received for logged predictions, by the version that answered them.",
    VERSION_LABELS,
)  # fmt: skip
TRAFFIC_SHARE = Family(
    "serving_model_traffic_share", "gauge",
    "Share of a project's requests the traffic policy gives a version (observed: ratio of serving_model_requests_total).",
    VERSION_LABELS,
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
    MODEL_REQUESTS,
    MODEL_REQUEST_SECONDS,
    MODEL_PREDICTED_ROWS,
    SHADOW_ROWS,
    SHADOW_ROWS_SKIPPED,
    FEEDBACK,
    TRAFFIC_SHARE,
)
_FILE_PREFIX = {"counter": "counter", "histogram": "histogram", "gauge": f"gauge_{GAUGE_MODE}"}

# label values -> value (counter, gauge) or [count per bucket..., +Inf count, sum] (histogram)
Samples = dict[tuple[str, ...], Any]


class Metrics:
    """One app instance's metrics: counted in memory, published to its own files, read with every
    other worker's."""

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
        self._values: dict[Family, Samples] = {family: {} for family in FAMILIES}
        self._keys: dict[tuple[Family, tuple[str, ...]], list[str]] = {}  # a sample's slots in the file
        self._files = {kind: self._open(kind) for kind in _FILE_PREFIX}
        self._gauges_cleared = False
        self._publishing = threading.Lock()
        self._registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(self._registry, path=str(self.directory))
        for family in FAMILIES:
            for labels in family.zeroed:
                if family.kind == "histogram":
                    self._values[family][labels] = [0.0] * (len(family.buckets) + 2)
                else:
                    self._values[family][labels] = 0.0
        self.publish()

    # --- counting (the hot path: a dict update, as cheap as it gets) -----------------------------

    def inc(self, family: Family, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        samples = self._values[family]
        samples[labels] = samples.get(labels, 0.0) + amount

    def set(self, family: Family, labels: tuple[str, ...], value: float) -> None:
        self._values[family][labels] = value

    def clear(self, family: Family) -> None:
        """Remove every series of a gauge family (the gauge file is rewritten at the next publication)."""
        if family.kind != "gauge":
            raise ValueError(f"only gauges can be cleared, not the {family.kind} {family.name}")
        self._values[family].clear()
        self._gauges_cleared = True

    def observe(self, family: Family, labels: tuple[str, ...], value: float) -> None:
        samples = self._values[family]
        counts = samples.get(labels)
        if counts is None:
            counts = samples[labels] = [0.0] * (len(family.buckets) + 2)
        counts[bisect.bisect_left(family.buckets, value)] += 1
        counts[-1] += value

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        status_text = str(status)
        self.inc(REQUESTS, (route, method, status_text))
        self.observe(REQUEST_SECONDS, (route, status_text), seconds)

    # --- publishing to the files -----------------------------------------------------------------

    def publish(self) -> None:
        """Write this worker's counts to its files, where every worker's /metrics reads them. The app
        calls it every second: a store in the memory map per request would cost the hot path ~3 us."""
        with self._publishing:
            if self._gauges_cleared:
                self._gauges_cleared = False
                self._files["gauge"].close()
                self._file_path("gauge").unlink(missing_ok=True)
                self._files["gauge"] = self._open("gauge")
            for family, samples in self._values.items():
                file = self._files[family.kind]
                # list(): atomic under the GIL, while the prediction log's thread may count meanwhile.
                for labels, value in list(samples.items()):
                    keys = self._keys.get((family, labels)) or self._keys_of(family, labels)
                    if family.kind == "histogram":
                        for key, count in zip(keys, value, strict=True):
                            file.write_value(key, count, 0.0)
                    else:
                        file.write_value(keys[0], value, 0.0)

    def _keys_of(self, family: Family, labels: tuple[str, ...]) -> list[str]:
        """The keys of a sample in prometheus-client's files: one, or one per bucket and the sum."""
        if len(labels) != len(family.labels):
            raise ValueError(f"{family.name} takes the labels {family.labels}, not {labels}")
        names, values = list(family.labels), [str(value) for value in labels]
        if family.kind == "gauge":
            names.append("worker")
            values.append(self.worker)
        if family.kind == "histogram":
            keys = [
                mmap_key(family.name, f"{family.name}_bucket", [*names, "le"], [*values, floatToGoString(bound)], family.help)
                for bound in (*family.buckets, math.inf)
            ]
            keys.append(mmap_key(family.name, f"{family.name}_sum", names, values, family.help))
        else:
            # prometheus-client names a counter without its _total and adds it back when exposing it.
            metric = family.name.removesuffix("_total") if family.kind == "counter" else family.name
            keys = [mmap_key(metric, family.name, names, values, family.help)]
        self._keys[(family, labels)] = keys
        return keys

    def _file_path(self, kind: str) -> Path:
        return self.directory / f"{_FILE_PREFIX[kind]}_{self._file_id}.db"

    def _open(self, kind: str) -> MmapedDict:
        return MmapedDict(str(self._file_path(kind)))

    # --- reading -------------------------------------------------------------------------------

    def render(self) -> bytes:
        """Every worker's metrics in the Prometheus text format (version 0.0.4): this worker's as of
        now, the others' as of their last publication (at most a second ago)."""
        self.publish()
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
        """On shutdown: publish the last counts, which stay in the totals, and take this worker's
        gauges out of the scrapes."""
        self.publish()
        with self._publishing:
            for kind, file in self._files.items():
                file.close()
                self._files[kind] = _DISCARDED  # a late count (a request still finishing) goes nowhere
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
