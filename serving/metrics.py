"""Prometheus metrics in the text exposition format, without a client library.

Each worker process counts in memory (a dict update per request). With several workers a scrape
reaches only one of them, so when the workers share a runtime folder each one writes a snapshot of
its counts there every second and `/metrics` adds them up: counters and histograms are summed over
workers, gauges (the model version a worker serves, whether it is ready) keep a `worker` label.
Snapshots of workers that have exited are ignored, which Prometheus reads as a counter reset.
"""

import bisect
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import msgspec

# ASGI types, spelled out to keep this module free of framework imports.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


REQUESTS = Family("serving_requests_total", "counter", "HTTP requests answered.", ("route", "method", "status"))
REQUEST_SECONDS = Family(
    "serving_request_duration_seconds", "histogram", "Time to answer a request.", ("route", "status"), LATENCY_BUCKETS
)
BATCH_ROWS = Family("serving_predict_batch_rows", "histogram", "Rows per model call after micro-batching.", (), BATCH_ROW_BUCKETS)
PREDICTED_ROWS = Family("serving_predicted_rows_total", "counter", "Rows predicted.", ("route",))
MODEL_VERSION = Family("serving_model_version", "gauge", "Registry version a worker serves (0: none yet).", ("model", "alias"))
MODEL_LOADED_AT = Family("serving_model_loaded_timestamp_seconds", "gauge", "When the served version was loaded.", ())
RELOADS = Family("serving_model_reloads_total", "counter", "Versions loaded, smoke-tested and swapped in.", ())
FAILED_RELOADS = Family(
    "serving_model_reload_failures_total", "counter", "Versions refused, by the stage that failed.", ("stage",)
)
REGISTRY_ERRORS = Family("serving_registry_errors_total", "counter", "Failed lookups of the alias in the registry.", ())
LOG_ROWS_WRITTEN = Family("serving_prediction_log_rows_written_total", "counter", "Predictions written to the log.", ())
LOG_ROWS_DROPPED = Family(
    "serving_prediction_log_rows_dropped_total", "counter", "Predictions not logged: buffer full or write failed.", ("reason",)
)
LOG_FILES_PRUNED = Family(
    "serving_prediction_log_files_pruned_total", "counter", "Oldest log files deleted to stay within the disk budget.", ()
)

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
_BY_NAME = {family.name: family for family in FAMILIES}

# label values -> value (counter, gauge) or [bucket counts..., +Inf count, sum] (histogram)
Samples = dict[tuple[str, ...], float | list[float]]


class Snapshot(msgspec.Struct):
    worker: str
    pid: int
    families: dict[str, list[tuple[list[str], float | list[float]]]]


@dataclass
class Metrics:
    worker: str
    runtime_dir: Path | None = None
    _values: dict[str, Samples] = field(default_factory=lambda: {family.name: {} for family in FAMILIES})

    def inc(self, family: Family, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        samples = self._values[family.name]
        samples[labels] = samples.get(labels, 0.0) + amount

    def set(self, family: Family, labels: tuple[str, ...], value: float) -> None:
        self._values[family.name][labels] = value

    def clear(self, family: Family) -> None:
        self._values[family.name].clear()

    def observe(self, family: Family, labels: tuple[str, ...], value: float) -> None:
        samples = self._values[family.name]
        counts = samples.get(labels)
        if counts is None:
            counts = samples[labels] = [0.0] * (len(family.buckets) + 2)
        counts[bisect.bisect_left(family.buckets, value)] += 1  # type: ignore[index]
        counts[-1] += value  # type: ignore[index]

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        status_text = str(status)
        self.inc(REQUESTS, (route, method, status_text))
        self.observe(REQUEST_SECONDS, (route, status_text), seconds)

    # --- sharing between workers -------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(
            worker=self.worker,
            pid=os.getpid(),
            families={
                name: [(list(labels), value) for labels, value in samples.items()] for name, samples in self._values.items()
            },
        )

    def _snapshot_path(self, worker: str) -> Path:
        assert self.runtime_dir is not None
        return self.runtime_dir / "metrics" / f"{worker}.json"

    def publish(self) -> None:
        """Write this worker's counts where the other workers' /metrics will find them."""
        if self.runtime_dir is None:
            return
        path = self._snapshot_path(self.worker)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(msgspec.json.encode(self.snapshot()))
        os.replace(temporary, path)

    def withdraw(self) -> None:
        """Remove this worker's snapshot (on shutdown)."""
        if self.runtime_dir is not None:
            self._snapshot_path(self.worker).unlink(missing_ok=True)

    def other_workers(self) -> list[Snapshot]:
        if self.runtime_dir is None or not (self.runtime_dir / "metrics").is_dir():
            return []
        snapshots = []
        for path in (self.runtime_dir / "metrics").glob("*.json"):
            if path.stem == self.worker:
                continue
            try:
                snapshot = msgspec.json.decode(path.read_bytes(), type=Snapshot)
            except (OSError, msgspec.DecodeError):
                continue  # being replaced right now, or removed: the next scrape sees it
            if _process_alive(snapshot.pid):
                snapshots.append(snapshot)
        return snapshots

    def render(self) -> str:
        """All workers' metrics in the Prometheus text format (version 0.0.4)."""
        return render([self.snapshot(), *self.other_workers()])


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def render(snapshots: Iterable[Snapshot]) -> str:
    merged: dict[str, Samples] = {family.name: {} for family in FAMILIES}
    for snapshot in snapshots:
        for name, samples in snapshot.families.items():
            family = _BY_NAME.get(name)
            if family is None:
                continue  # a worker running other code during a rolling restart
            target = merged[name]
            for labels, value in samples:
                if family.kind == "gauge":
                    target[(*labels, snapshot.worker)] = value
                elif family.kind == "counter":
                    key = tuple(labels)
                    target[key] = target.get(key, 0.0) + value  # type: ignore[operator]
                else:
                    key = tuple(labels)
                    existing = target.get(key)
                    target[key] = list(value) if existing is None else [a + b for a, b in zip(existing, value, strict=True)]  # type: ignore[arg-type]

    lines: list[str] = []
    for family in FAMILIES:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        label_names = (*family.labels, "worker") if family.kind == "gauge" else family.labels
        for labels, value in sorted(merged[family.name].items()):
            if family.kind != "histogram":
                lines.append(f"{family.name}{_labels(label_names, labels)} {_number(value)}")  # type: ignore[arg-type]
                continue
            counts, total = value[:-1], value[-1]  # type: ignore[index]
            cumulative = 0.0
            for bound, count in zip((*family.buckets, math.inf), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == math.inf else _number(float(bound))
                lines.append(f"{family.name}_bucket{_labels((*label_names, 'le'), (*labels, le))} {_number(cumulative)}")
            lines.append(f"{family.name}_sum{_labels(label_names, labels)} {_number(total)}")
            lines.append(f"{family.name}_count{_labels(label_names, labels)} {_number(cumulative)}")
    return "\n".join(lines) + "\n"


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


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
