"""Throughput and latency of the serving app against `mlflow models serve`, on the same registered model.

    .venv/bin/python benchmarks/serving_benchmark.py [--seconds 15] [--mlflow-workers 2] [--app-workers 2]

Both servers serve `models:/housing_price@production` from one registry: a temporary one holding a
model trained like the tests train it (default hyperparameters), or MLFLOW_TRACKING_URI when set. wrk
(Debian package `wrk`) drives each server from a separate process with the same load: single-row
requests whose rows cycle through ~5,000 rows of the reference data, at 1 and at 32 connections, then
100-row batches. The app's own /health route under the same load is the framework's ceiling. The
script prints requests/s, p50 and p99 per run, the ratios the targets are stated in, and stops every
process it started, whatever happens.

Targets (single row, 32 connections): >= 50x the throughput of `mlflow models serve`, p99 < 20 ms,
and >= half the throughput of /health.
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

DEFAULT_CSV = Path(os.environ.get("MLOPS_REFERENCE_CSV", REPOSITORY_ROOT.parent / "shared" / "data" / "housing.csv"))
SINGLE_ROW_PAYLOADS = 5000
BATCH_ROWS = 100
BATCH_PAYLOADS = 200
MODEL_NAME = "housing_price"
ALIAS = "production"

# wrk runs this per thread; `done` prints one machine-readable line with the latency percentiles.
LUA_TEMPLATE = """
local bodies = __BODIES__
local method, path = "__METHOD__", "__PATH__"
local counter = 0
wrk.headers["Content-Type"] = "application/json"

function setup(thread)
  thread:set("offset", math.random(1, 1000000))
end

function init(args)
  counter = (offset or 0) % math.max(#bodies, 1)
end

function request()
  if #bodies == 0 then
    return wrk.format(method, path)
  end
  counter = counter % #bodies + 1
  return wrk.format(method, path, nil, bodies[counter])
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"status_errors": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class RunResult:
    server: str
    route: str
    shape: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    failed: int
    server_cpu_us: float  # CPU time of the server's processes per request: robust to other load on the machine

    @property
    def label(self) -> str:
        return f"{self.server} {self.route} {self.shape} c={self.connections}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="duration of each wrk run (default 15)")
    parser.add_argument("--connections", default="1,32", help="connection counts for single-row runs (default 1,32)")
    parser.add_argument("--batch-connections", default="1,32", help="connection counts for 100-row runs (default 1,32)")
    parser.add_argument("--app-workers", type=int, default=2)
    parser.add_argument(
        "--mlflow-workers", type=int, default=2, help="uvicorn workers of `mlflow models serve` (its default is 1; 2 is fair)"
    )
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="reference data for payloads (and training)")
    parser.add_argument("--skip-mlflow", action="store_true", help="only benchmark the app")
    arguments = parser.parse_args()

    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is missing: install it with `apt-get update && apt-get install -y wrk`.", file=sys.stderr)
        return 2
    if not arguments.csv.is_file():
        print(f"the reference data is missing at {arguments.csv}: pass --csv or set MLOPS_REFERENCE_CSV", file=sys.stderr)
        return 2

    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="serving-benchmark-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or prepare_registry(workdir / "mlflow", arguments.csv)
        scripts = write_wrk_scripts(workdir / "wrk", arguments.csv)
        environment = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLOPS_MODEL_NAME": MODEL_NAME,
            "MLOPS_MODEL_ALIAS": ALIAS,
            "MLOPS_PREDICTION_LOG_DIR": str(workdir / "prediction_log"),
            "MLOPS_SERVING_POLL_SECONDS": "300",
            "MLFLOW_REGISTRY_URI": tracking_uri,
            "OMP_NUM_THREADS": "1",
            # `mlflow models serve` starts `uvicorn` through bash: it must be on the PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        results: list[RunResult] = []
        single = [int(value) for value in arguments.connections.split(",") if value]
        batched = [int(value) for value in arguments.batch_connections.split(",") if value]

        if not arguments.skip_mlflow:
            port = free_port()
            command = [
                str(Path(sys.executable).parent / "mlflow"), "models", "serve",
                "-m", f"models:/{MODEL_NAME}@{ALIAS}", "--env-manager", "local",
                "-h", "127.0.0.1", "-p", str(port), "-w", str(arguments.mlflow_workers),
            ]  # fmt: skip
            with running("mlflow models serve", command, environment, f"http://127.0.0.1:{port}/ping", workdir) as group:
                base = f"http://127.0.0.1:{port}"
                mlflow_reference = sample_predictions(f"{base}/invocations", invocation=True, csv=arguments.csv)
                for connections in single:
                    results.append(
                        drive(
                            wrk,
                            "mlflow",
                            base,
                            "/invocations",
                            "1 row",
                            connections,
                            scripts["invocations-single"],
                            arguments.seconds,
                            group,
                        )
                    )
                for connections in batched:
                    results.append(
                        drive(
                            wrk,
                            "mlflow",
                            base,
                            "/invocations",
                            f"{BATCH_ROWS} rows",
                            connections,
                            scripts["invocations-batch"],
                            arguments.seconds,
                            group,
                        )
                    )
        else:
            mlflow_reference = None

        port = free_port()
        command = [
            sys.executable,
            "-m",
            "serving",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(arguments.app_workers),
        ]
        with running("serving app", command, environment, f"http://127.0.0.1:{port}/ready", workdir) as group:
            base = f"http://127.0.0.1:{port}"
            wait_until_all_workers_ready(f"{base}/ready")
            app_reference = sample_predictions(f"{base}/predict", invocation=False, csv=arguments.csv)
            if mlflow_reference is not None and mlflow_reference != app_reference:
                print("the two servers disagree on the same rows: this benchmark compares different models", file=sys.stderr)
                return 1
            for connections in single:
                results.append(drive(wrk, "app", base, "/health", "-", connections, scripts["health"], arguments.seconds, group))
                results.append(
                    drive(wrk, "app", base, "/predict", "1 row", connections, scripts["predict-single"], arguments.seconds, group)
                )
            results.append(
                drive(
                    wrk,
                    "app",
                    base,
                    "/invocations",
                    "1 row",
                    max(single),
                    scripts["invocations-single"],
                    arguments.seconds,
                    group,
                )
            )
            for connections in batched:
                results.append(
                    drive(
                        wrk,
                        "app",
                        base,
                        "/predict",
                        f"{BATCH_ROWS} rows",
                        connections,
                        scripts["predict-batch"],
                        arguments.seconds,
                        group,
                    )
                )
            batch_rows = scrape_mean_batch_rows(f"{base}/metrics")

        report(results, batch_rows)
    return 0


# --- the model and the payloads -----------------------------------------------------------------


def prepare_registry(root: Path, csv: Path) -> str:
    from mlops_assets.projects.housing.model import Hyperparameters
    from serving.reference_model import ReferenceRegistry, read_reference_frame, train_and_register

    started = time.perf_counter()
    registry = ReferenceRegistry.create(root)
    train_and_register(registry, read_reference_frame(csv), model_name=MODEL_NAME, params=Hyperparameters(), alias=ALIAS)
    print(f"trained and registered {MODEL_NAME}@{ALIAS} in {time.perf_counter() - started:.1f}s ({registry.tracking_uri})")
    return registry.tracking_uri


def reference_records(csv: Path) -> list[dict]:
    import pandas as pd

    from mlops_assets.projects.housing.domain import RAW_FEATURES

    frame = pd.read_csv(csv)[list(RAW_FEATURES)]
    records = frame.sample(n=min(SINGLE_ROW_PAYLOADS, len(frame)), random_state=7).to_dict("records")
    # JSON has no NaN: a missing total_bedrooms is sent as null, which both servers read as missing.
    return [
        {key: None if isinstance(value, float) and value != value else value for key, value in record.items()}
        for record in records
    ]


def write_wrk_scripts(folder: Path, csv: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    records = reference_records(csv)
    rng = random.Random(11)
    batches = [rng.sample(records, BATCH_ROWS) for _ in range(BATCH_PAYLOADS)]
    payloads = {
        "predict-single": ("POST", "/predict", [json.dumps(record) for record in records]),
        "invocations-single": ("POST", "/invocations", [json.dumps({"dataframe_records": [record]}) for record in records]),
        "predict-batch": ("POST", "/predict", [json.dumps(batch) for batch in batches]),
        "invocations-batch": ("POST", "/invocations", [json.dumps({"dataframe_records": batch}) for batch in batches]),
        # Same Lua request function as the prediction runs, so that wrk's own cost per request is alike.
        "health": ("GET", "/health", []),
    }
    scripts = {}
    for name, (method, path, bodies) in payloads.items():
        lua_bodies = "{\n" + ",\n".join(f"[==[{body}]==]" for body in bodies) + "\n}"
        script = folder / f"{name}.lua"
        # The bodies go in last: they are JSON and must not be mistaken for placeholders.
        script.write_text(LUA_TEMPLATE.replace("__METHOD__", method).replace("__PATH__", path).replace("__BODIES__", lua_bodies))
        scripts[name] = script
    return scripts


def sample_predictions(url: str, *, invocation: bool, csv: Path) -> list[float]:
    records = reference_records(csv)[:50]
    body = {"dataframe_records": records} if invocation else records
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(name: str, command: list[str], environment: dict, ready_url: str, workdir: Path) -> Iterator[int]:
    """Start `command` in its own process group, wait for `ready_url`, and always stop the whole group."""
    log_path = workdir / f"{name.replace(' ', '-')}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPOSITORY_ROOT
        )
    try:
        started = time.perf_counter()
        while not _answers_200(ready_url):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; its log:\n{log_path.read_text()[-3000:]}")
            if time.perf_counter() - started > 180:
                raise RuntimeError(f"{name} not ready after 180 s; its log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        print(f"{name} ready in {time.perf_counter() - started:.1f}s (pid {process.pid})")
        yield process.pid
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    # uvicorn workers outliving their supervisor would keep the port and the CPU busy
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def wait_until_all_workers_ready(url: str, attempts: int = 40) -> None:
    """/ready answers from one worker at a time: wait until a run of answers is all ready."""
    consecutive = 0
    for _ in range(attempts * 10):
        consecutive = consecutive + 1 if _answers_200(url) else 0
        if consecutive >= 20:
            return
        time.sleep(0.05 if consecutive else 0.5)
    raise RuntimeError("not every worker of the app became ready")


# --- load ---------------------------------------------------------------------------------------


def drive(
    wrk: str, server: str, base: str, route: str, shape: str, connections: int, script: Path, seconds: int, group: int
) -> RunResult:
    threads = 1 if connections == 1 else 2
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), f"{base}{route}"]
    cpu_before = group_cpu_seconds(group)
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    cpu_used = group_cpu_seconds(group) - cpu_before
    line = next((line for line in output.splitlines() if line.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"no result from wrk:\n{output}")
    summary = json.loads(line.removeprefix("WRK_RESULT "))
    result = RunResult(
        server=server,
        route=route,
        shape=shape,
        connections=connections,
        requests_per_second=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        failed=summary["status_errors"] + summary["socket_errors"],
        server_cpu_us=cpu_used / max(summary["requests"], 1) * 1e6,
    )
    print(
        f"  {result.label:<42} {result.requests_per_second:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  server CPU {result.server_cpu_us:6.0f} us/req  failed {result.failed}"
    )
    return result


def group_cpu_seconds(group: int) -> float:
    """User + system CPU time of every live process in a process group (Linux /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == group:  # after the command: state, ppid, pgrp, ..., utime, stime at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def scrape_mean_batch_rows(url: str) -> float | None:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        for name in ("serving_predict_batch_rows_sum", "serving_predict_batch_rows_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    count = values.get("serving_predict_batch_rows_count")
    return values["serving_predict_batch_rows_sum"] / count if count else None


def report(results: list[RunResult], batch_rows: float | None) -> None:
    def find(server: str, route: str, shape: str, connections: int) -> RunResult | None:
        return next(
            (r for r in results if (r.server, r.route, r.shape, r.connections) == (server, route, shape, connections)), None
        )

    print()
    print(
        f"| {'server':<7} | {'route':<12} | {'rows':<8} | {'conns':>5} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} "
        f"| {'CPU us/req':>10} | {'failed':>6} |"
    )
    print(f"|{'-' * 9}|{'-' * 14}|{'-' * 10}|{'-' * 7}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 12}|{'-' * 8}|")
    for r in results:
        print(
            f"| {r.server:<7} | {r.route:<12} | {r.shape:<8} | {r.connections:>5} | {r.requests_per_second:>9.0f} | "
            f"{r.p50_ms:>7.2f} | {r.p99_ms:>7.2f} | {r.server_cpu_us:>10.0f} | {r.failed:>6} |"
        )
    if batch_rows is not None:
        print(f"\nmean rows per model call in the app over all runs (micro-batching): {batch_rows:.1f}")

    print("\nratios")
    for connections in sorted({r.connections for r in results if r.shape == "1 row"}):
        app, mlflow, health = (
            find("app", "/predict", "1 row", connections),
            find("mlflow", "/invocations", "1 row", connections),
            find("app", "/health", "-", connections),
        )
        if app and mlflow:
            print(
                f"  single row, c={connections}: app /predict / mlflow = {app.requests_per_second / mlflow.requests_per_second:.1f}x"
            )
        if app and health:
            print(
                f"  single row, c={connections}: app /predict / app /health = {app.requests_per_second / health.requests_per_second:.2f}"
            )
    for connections in sorted({r.connections for r in results if r.shape != "1 row" and r.shape != "-"}):
        app, mlflow = (
            find("app", "/predict", f"{BATCH_ROWS} rows", connections),
            find("mlflow", "/invocations", f"{BATCH_ROWS} rows", connections),
        )
        if app and mlflow:
            print(
                f"  {BATCH_ROWS}-row batches, c={connections}: app / mlflow = {app.requests_per_second / mlflow.requests_per_second:.1f}x (rows/s: app {app.requests_per_second * BATCH_ROWS:.0f}, mlflow {mlflow.requests_per_second * BATCH_ROWS:.0f})"
            )

    app, mlflow, health = (
        find("app", "/predict", "1 row", 32),
        find("mlflow", "/invocations", "1 row", 32),
        find("app", "/health", "-", 32),
    )
    if app:
        print("\ntargets (single row, 32 connections)")
        if mlflow:
            ratio = app.requests_per_second / mlflow.requests_per_second
            print(f"  >= 50x mlflow models serve: {ratio:.1f}x  {'PASS' if ratio >= 50 else 'FAIL'}")
        print(f"  p99 < 20 ms: {app.p99_ms:.2f} ms  {'PASS' if app.p99_ms < 20 else 'FAIL'}")
        if health:
            share = app.requests_per_second / health.requests_per_second
            print(f"  >= 0.5 x /health: {share:.2f}  {'PASS' if share >= 0.5 else 'FAIL'}")
        print(
            f"  no failed requests: {sum(r.failed for r in results)}  {'PASS' if not any(r.failed for r in results) else 'FAIL'}"
        )


if __name__ == "__main__":
    sys.exit(main())
