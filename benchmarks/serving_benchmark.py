"""Throughput and latency of the serving app against `mlflow models serve`, on every project's registered model.

    .venv/bin/python benchmarks/serving_benchmark.py [--seconds 15] [--projects housing,churn,iris]
        [--mlflow-workers 2] [--app-workers 2] [--data-dir ../shared/data]

Both servers serve each project's `models:/<model name>@production` from one registry: a temporary one
holding, per project, the variant its pipeline picks on the reference data as `production` and another
of its variants as `challenger`, trained like the tests train them; or MLFLOW_TRACKING_URI when set.
wrk (Debian package `wrk`) drives each server from a separate process with the same load: single-row
requests whose rows cycle through up to 5,000 rows of the project's reference data, at 1 and at 32
connections, then 100-row batches. `mlflow models serve` serves one model: it runs once per project,
one at a time. One app process serves every project at once and is driven per project on
/models/<project>/predict, /models/<project>/invocations and the Open Inference ("V2") route
/v2/models/<project>/infer, then on /models/<project>/predict again with the project's traffic in
shadow mode (the challenger scoring the champion's rows off the request path). The app's own /health
route under the same load is the framework's ceiling. Before any timing, both servers answer the same
50 rows of each project and must agree. The script prints requests/s, p50, p99 and server CPU per
request of every run, the targets per project, and stops every process it started, whatever happens.

Targets per project (single row, 32 connections): >= 30x the throughput of `mlflow models serve` (tuned:
2 workers) in the same run, p99 < 10 ms, >= 0.7 of the throughput of /health, and shadow mode costing
the champion's p99 at most 10%.
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

# Where every project's reference copy lies, as the platform reads it (MLOPS_DATA_DIR).
DEFAULT_DATA_DIR = Path(os.environ.get("MLOPS_DATA_DIR") or REPOSITORY_ROOT.parent / "shared" / "data")
DEFAULT_PROJECTS = "housing,churn,iris"
SINGLE_ROW_PAYLOADS = 5000
BATCH_ROWS = 100
BATCH_PAYLOADS = 200
AGREEMENT_ROWS = 50
ALIAS = "production"
CHALLENGER_ALIAS = "challenger"
# The variant each project's pipeline deploys when it runs on the reference data (the best of its
# variants there): the model production serves. Another variant of the project is its challenger.
PRODUCTION_VARIANTS = {"housing": "boosted_trees", "churn": "shallow_boosting", "iris": "fisher_discriminant"}
# Every worker re-reads a project's traffic policy every 0.25 s (serving.served_models.TRAFFIC_POLL_SECONDS).
TRAFFIC_PICKUP_SECONDS = 1.0

TARGET_TIMES_MLFLOW = 30.0
TARGET_P99_MS = 10.0
TARGET_SHARE_OF_HEALTH = 0.7
TARGET_SHADOW_P99_COST = 0.10

# wrk runs this per thread; `done` prints one machine-readable line with the latency percentiles. The
# path is the one of the URL wrk is given (wrk.path), so that the route a run reports is the one asked.
LUA_TEMPLATE = """
local bodies = __BODIES__
local method = "__METHOD__"
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
    return wrk.format(method)
  end
  counter = counter % #bodies + 1
  return wrk.format(method, nil, nil, bodies[counter])
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
    project: str  # "-" for a route of no project (/health)
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


@dataclass(frozen=True)
class Server:
    name: str  # as the report names it
    base: str
    group: int  # its process group, whose CPU time each run counts


@dataclass(frozen=True)
class BenchmarkedProject:
    """A project in this run: its declaration, the reference rows its payloads hold, and its wrk scripts."""

    project: Any  # mlops_assets.platform.project.ModelProject, imported late (its imports take seconds)
    records: list[dict]
    scripts: dict[str, Path]

    @property
    def name(self) -> str:
        return self.project.name

    @property
    def predict_route(self) -> str:
        return f"/models/{self.name}/predict"

    @property
    def invocations_route(self) -> str:
        return f"/models/{self.name}/invocations"

    @property
    def infer_route(self) -> str:
        return f"/v2/models/{self.name}/infer"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="duration of each wrk run (default 15)")
    parser.add_argument("--projects", default=DEFAULT_PROJECTS, help=f"the projects benchmarked (default {DEFAULT_PROJECTS})")
    parser.add_argument("--connections", default="1,32", help="connection counts for single-row runs (default 1,32)")
    parser.add_argument("--batch-connections", default="1,32", help="connection counts for 100-row runs (default 1,32)")
    parser.add_argument("--app-workers", type=int, default=2)
    parser.add_argument(
        "--mlflow-workers", type=int, default=2, help="uvicorn workers of `mlflow models serve` (its default is 1; 2 is fair)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="the projects' reference CSVs, for payloads and training (default MLOPS_DATA_DIR or ../shared/data)",
    )
    parser.add_argument("--skip-mlflow", action="store_true", help="only benchmark the app")
    arguments = parser.parse_args()

    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is missing: install it with `apt-get update && apt-get install -y wrk`.", file=sys.stderr)
        return 2
    from mlops_assets.projects import BUILTIN_PROJECTS, load_projects
    from serving.reference_model import typed_reference_frame

    hosted = {project.name: project for project in load_projects()}
    names = [name.strip() for name in arguments.projects.split(",") if name.strip()]
    unknown = [name for name in names if name not in hosted]
    if not names or unknown:
        print(f"--projects: {', '.join(unknown) or 'none'}? The projects are {', '.join(hosted)}", file=sys.stderr)
        return 2
    missing = [str(arguments.data_dir / hosted[name].source.file_name) for name in names]
    missing = [path for path in missing if not Path(path).is_file()]
    if missing:
        print(f"reference data missing: {', '.join(missing)}: pass --data-dir or set MLOPS_DATA_DIR", file=sys.stderr)
        return 2
    single = [int(value) for value in arguments.connections.split(",") if value]
    batched = [int(value) for value in arguments.batch_connections.split(",") if value]
    loaded = max(single)  # the connection count the targets are stated at (32 by default)

    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="serving-benchmark-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        frames = {name: typed_reference_frame(hosted[name], arguments.data_dir) for name in names}
        own_registry = not os.environ.get("MLFLOW_TRACKING_URI")
        tracking_uri = (
            prepare_registry(workdir / "mlflow", [hosted[name] for name in names], frames)
            if own_registry
            else os.environ["MLFLOW_TRACKING_URI"]
        )
        projects = []
        for name in names:
            records = payload_records(frames[name], hosted[name])
            scripts = write_wrk_scripts(workdir / "wrk" / name, project_payloads(hosted[name], records))
            projects.append(BenchmarkedProject(hosted[name], records, scripts))
        # Same Lua request function as the prediction runs, so that wrk's own cost per request is alike.
        health_script = write_wrk_scripts(workdir / "wrk" / "app", {"health": ("GET", [])})["health"]
        admin_token = secrets.token_urlsafe(24)
        environment = {
            # MLOPS_MODEL_NAME would make the default project serve another registered model than its own.
            **{key: value for key, value in os.environ.items() if key != "MLOPS_MODEL_NAME"},
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_REGISTRY_URI": tracking_uri,
            # The app hosts the projects benchmarked, the first as its default: /ready waits for that one's model.
            "MLOPS_PROJECTS": ",".join(name for name in names if name in BUILTIN_PROJECTS),
            "MLOPS_SERVING_DEFAULT_MODEL": names[0],
            "MLOPS_MODEL_ALIAS": ALIAS,
            "MLOPS_CHALLENGER_ALIAS": CHALLENGER_ALIAS,
            "MLOPS_ADMIN_TOKEN": admin_token,
            # Nothing of this run may land in the repository's own state (.mlops_state): all under workdir.
            "MLOPS_STATE_DIR": str(workdir / "state"),
            "MLOPS_PREDICTION_LOG_DIR": str(workdir / "prediction_log"),
            "MLOPS_SERVING_STATE_DIR": str(workdir / "serving_state"),
            "MLOPS_SERVING_POLL_SECONDS": "300",
            "OMP_NUM_THREADS": "1",
            # `mlflow models serve` starts `uvicorn` through bash: it must be on the PATH.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        results: list[RunResult] = []

        mlflow_predictions: dict[str, list] = {}
        if not arguments.skip_mlflow:
            for benchmarked in projects:
                port = free_port()
                command = [
                    str(Path(sys.executable).parent / "mlflow"), "models", "serve",
                    "-m", f"models:/{benchmarked.project.model_name}@{ALIAS}", "--env-manager", "local",
                    "-h", "127.0.0.1", "-p", str(port), "-w", str(arguments.mlflow_workers),
                ]  # fmt: skip
                name = f"mlflow models serve {benchmarked.name}"
                # One at a time: each is stopped (its whole process group) before the next starts.
                with running(name, command, environment, f"http://127.0.0.1:{port}/ping", workdir) as group:
                    mlflow = Server("mlflow", f"http://127.0.0.1:{port}", group)
                    sample = {"dataframe_records": benchmarked.records[:AGREEMENT_ROWS]}
                    mlflow_predictions[benchmarked.name] = post_json(f"{mlflow.base}/invocations", sample)["predictions"]
                    for connections in single:
                        results.append(
                            drive(wrk, mlflow, benchmarked.name, "/invocations", "1 row", connections,
                                  benchmarked.scripts["invocations-single"], arguments.seconds)
                        )  # fmt: skip
                    for connections in batched:
                        results.append(
                            drive(wrk, mlflow, benchmarked.name, "/invocations", f"{BATCH_ROWS} rows", connections,
                                  benchmarked.scripts["invocations-batch"], arguments.seconds)
                        )  # fmt: skip

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
        shadow_rows: dict[str, tuple[float, float]] = {}
        with running("serving app", command, environment, f"http://127.0.0.1:{port}/ready", workdir) as group:
            app = Server("app", f"http://127.0.0.1:{port}", group)
            # A challenger is only known to be there when this run registered it.
            wait_until_every_worker(
                app.base,
                names,
                arguments.app_workers,
                lambda state: state["version"] is not None and (state["challenger_version"] is not None or not own_registry),
                what="serves every project's champion (and challenger)",
            )
            disagreements = [
                problem
                for benchmarked in projects
                if (problem := disagreement(app.base, benchmarked, mlflow_predictions.get(benchmarked.name)))
            ]
            if disagreements:
                for problem in disagreements:
                    print(problem, file=sys.stderr)
                print("the servers disagree on the same rows: this benchmark would compare different models", file=sys.stderr)
                return 1
            peers = "the app and mlflow agree" if mlflow_predictions else "the app's /predict and /v2 agree"
            print(f"{peers} on {AGREEMENT_ROWS} rows of {', '.join(names)}" + ("; so do the app's /predict and /v2" if mlflow_predictions else ""))

            for connections in single:
                results.append(drive(wrk, app, "-", "/health", "-", connections, health_script, arguments.seconds))

            def drive_app(benchmarked: BenchmarkedProject, route: str, shape: str, connections: int, script: str) -> None:
                script_path = benchmarked.scripts[script]
                results.append(drive(wrk, app, benchmarked.name, route, shape, connections, script_path, arguments.seconds))

            for benchmarked in projects:
                for connections in batched:
                    drive_app(benchmarked, benchmarked.predict_route, f"{BATCH_ROWS} rows", connections, "records-batch")
                drive_app(benchmarked, benchmarked.invocations_route, "1 row", loaded, "invocations-single")
                drive_app(benchmarked, benchmarked.infer_route, "1 row", loaded, "infer-single")
                # The single-row /predict runs last, so that the one at `loaded` connections and the shadow run
                # right after it see the same machine: their p99 is compared.
                for connections in single:
                    drive_app(benchmarked, benchmarked.predict_route, "1 row", connections, "records-single")
                shadow = drive_in_shadow(wrk, app, benchmarked, loaded, arguments.seconds, admin_token, arguments.app_workers)
                if shadow is not None:
                    results.append(shadow[0])
                    shadow_rows[benchmarked.name] = shadow[1]
            batch_rows = mean_batch_rows(app.base)

        report(results, names, loaded, batch_rows, shadow_rows)
    return 0


# --- the models and the payloads ----------------------------------------------------------------


def prepare_registry(root: Path, projects: list[Any], frames: dict[str, Any]) -> str:
    """Per project, the variant its pipeline deploys as `production` and another as `challenger`."""
    from serving.reference_model import ReferenceRegistry, train_and_register

    registry = ReferenceRegistry.create(root)
    for project in projects:
        variants = {variant.name: variant for variant in project.variants}
        production = variants[PRODUCTION_VARIANTS.get(project.name, project.variants[0].name)]
        # The first other variant: a project of one variant has no challenger, and no shadow run.
        challenger = next((variant for variant in project.variants if variant.name != production.name), None)
        for variant, alias in ((production, ALIAS), (challenger, CHALLENGER_ALIAS)):
            if variant is None:
                continue
            started = time.perf_counter()
            version = train_and_register(
                registry, frames[project.name], model_name=project.model_name, project=project, params=variant.params, alias=alias
            )
            print(
                f"trained and registered {project.model_name} version {version} ({variant.name}) @{alias} "
                f"in {time.perf_counter() - started:.1f}s"
            )
    print(f"registry: {registry.tracking_uri}")
    return registry.tracking_uri


def payload_records(frame: Any, project: Any) -> list[dict]:
    sample = frame.sample(n=min(SINGLE_ROW_PAYLOADS, len(frame)), random_state=7)
    records = sample[list(project.domain.raw_features)].to_dict("records")
    # JSON has no NaN: a missing optional number (housing's total_bedrooms) is sent as null, which both
    # servers read as missing.
    return [
        {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in record.items()}
        for record in records
    ]


def open_inference_body(records: list[dict], project: Any) -> dict:
    """One V2 input tensor per raw feature: FP64 for a number (null: missing), BYTES for a category."""
    numeric = set(project.domain.numeric_features)
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(records)],
                "datatype": "FP64" if name in numeric else "BYTES",
                "data": [record[name] for record in records],
            }
            for name in project.domain.raw_features
        ]
    }


def project_payloads(project: Any, records: list[dict]) -> dict[str, tuple[str, list[str]]]:
    rng = random.Random(11)
    batches = [rng.sample(records, BATCH_ROWS) for _ in range(BATCH_PAYLOADS)]
    return {
        "records-single": ("POST", [json.dumps(record) for record in records]),
        "records-batch": ("POST", [json.dumps(batch) for batch in batches]),
        "invocations-single": ("POST", [json.dumps({"dataframe_records": [record]}) for record in records]),
        "invocations-batch": ("POST", [json.dumps({"dataframe_records": batch}) for batch in batches]),
        "infer-single": ("POST", [json.dumps(open_inference_body([record], project)) for record in records]),
    }


def write_wrk_scripts(folder: Path, payloads: dict[str, tuple[str, list[str]]]) -> dict[str, Path]:
    folder.mkdir(parents=True)
    scripts = {}
    for name, (method, bodies) in payloads.items():
        lua_bodies = "{\n" + ",\n".join(f"[==[{body}]==]" for body in bodies) + "\n}"
        script = folder / f"{name}.lua"
        # The bodies go in last: they are JSON and must not be mistaken for placeholders.
        script.write_text(LUA_TEMPLATE.replace("__METHOD__", method).replace("__BODIES__", lua_bodies))
        scripts[name] = script
    return scripts


def disagreement(base: str, benchmarked: BenchmarkedProject, mlflow_predictions: list | None) -> str | None:
    """What differs between the app's /predict, its V2 route and mlflow's answer on the same rows; None: nothing."""
    records = benchmarked.records[:AGREEMENT_ROWS]
    answer = post_json(f"{base}{benchmarked.predict_route}", records)
    predictions = answer["predictions"]
    infer = post_json(f"{base}{benchmarked.infer_route}", open_inference_body(records, benchmarked.project))
    infer_predictions = next(output["data"] for output in infer["outputs"] if output["name"] == "predictions")
    if infer_predictions != predictions:
        return f"{benchmarked.name}: {benchmarked.infer_route} and {benchmarked.predict_route} answer differently"
    if mlflow_predictions is None:
        return None
    if "probabilities" in answer:
        # A classifier: `mlflow models serve` answers pyfunc's predict(), the labels alone, where the app
        # adds each class's probability; only the labels have a counterpart. Compared as text: the app
        # answers a label as a string whatever the type the model holds it in.
        theirs, ours = [str(label) for label in mlflow_predictions], [str(label) for label in predictions]
    else:
        # A regressor: the same float64 to the bit (the app computes what pyfunc computes).
        theirs, ours = mlflow_predictions, predictions
    differing = [row for row, (mine, other) in enumerate(zip(ours, theirs, strict=True)) if mine != other]
    if not differing:
        return None
    first = differing[0]
    return (
        f"{benchmarked.name}: the app and mlflow differ on {len(differing)} of {len(records)} rows; "
        f"row {first}: app {ours[first]!r}, mlflow {theirs[first]!r}"
    )


def post_json(url: str, body: object, headers: dict[str, str] | None = None, method: str = "POST") -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{method} {url} answered {error.code}: {error.read()[:1000]!r}") from None


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
        return json.loads(response.read())


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


def wait_until_every_worker(
    base: str, projects: list[str], workers: int, condition: Callable[[dict], bool], *, what: str, timeout: float = 120
) -> None:
    """Each request reaches one worker, which names itself in GET /models/<project>: ask until `workers`
    different workers' latest answers meet `condition` for every project."""
    latest: dict[tuple[str, str], bool] = {}
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        for project in projects:
            state = _state_or_none(f"{base}/models/{project}")
            if state is not None:
                latest[(project, state["worker"])] = condition(state)
        if all(sum(met for (name, _), met in latest.items() if name == project) >= workers for project in projects):
            return
        time.sleep(0.05)
    raise RuntimeError(f"not every worker of the app {what} after {timeout:.0f} s: {latest}")


def _state_or_none(url: str) -> dict | None:
    try:
        return get_json(url)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return None  # not loaded yet (503), or not answering yet


# --- load ---------------------------------------------------------------------------------------


def drive(
    wrk: str, server: Server, project: str, route: str, shape: str, connections: int, script: Path, seconds: int
) -> RunResult:
    threads = 1 if connections == 1 else 2
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"{server.base}{route}",
    ]
    cpu_before = group_cpu_seconds(server.group)
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    cpu_used = group_cpu_seconds(server.group) - cpu_before
    line = next((line for line in output.splitlines() if line.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"no result from wrk:\n{output}")
    summary = json.loads(line.removeprefix("WRK_RESULT "))
    result = RunResult(
        server=server.name,
        project=project,
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
        f"  {result.label:<58} {result.requests_per_second:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  server CPU {result.server_cpu_us:6.0f} us/req  failed {result.failed}"
    )
    return result


def drive_in_shadow(
    wrk: str, app: Server, benchmarked: BenchmarkedProject, connections: int, seconds: int, token: str, workers: int
) -> tuple[RunResult, tuple[float, float]] | None:
    """Single rows on /models/<project>/predict with the project's traffic in shadow mode, then off again;
    with the rows the challenger scored and those it skipped (backlog full) meanwhile. None: no challenger."""
    url = f"{app.base}/admin/models/{benchmarked.name}/traffic"
    authorization = {"authorization": f"Bearer {token}"}
    post_json(url, {"mode": "shadow"}, authorization, method="PUT")
    try:
        time.sleep(TRAFFIC_PICKUP_SECONDS)
        state = get_json(url, authorization)
        if state["effective_mode"] != "shadow":
            print(f"  {benchmarked.name}: no shadow run, the mode in effect is {state['effective_mode']} ({state['detail']})")
            return None
        # The admin route answers for one worker: each worker names the mode it follows in GET /models/<project>.
        wait_until_every_worker(
            app.base, [benchmarked.name], workers, lambda model: model["traffic_mode"] == "shadow", what="follows shadow mode"
        )
        scored_before, skipped_before = shadow_row_counts(app.base, benchmarked.name)
        result = drive(
            wrk, dataclasses.replace(app, name="app shadow"), benchmarked.name, benchmarked.predict_route, "1 row", connections,
            benchmarked.scripts["records-single"], seconds,
        )  # fmt: skip
        # The challenger catches up a little after the last answer (SHADOW_DELAY_SECONDS apart), and the
        # workers publish their counts once a second.
        time.sleep(1.5)
        scored_after, skipped_after = shadow_row_counts(app.base, benchmarked.name)
        print(
            f"  {'':<58} challenger version {state['challenger_version']} scored {scored_after - scored_before:.0f} rows "
            f"in the shadow, skipped {skipped_after - skipped_before:.0f}"
        )
        return result, (scored_after - scored_before, skipped_after - skipped_before)
    finally:
        post_json(url, {"mode": "off"}, authorization, method="PUT")


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


def metric_totals(base: str, names: tuple[str, ...], **labels: str) -> dict[str, float]:
    """The sum of each named sample in the app's /metrics over the series carrying `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in totals and labels.items() <= sample.labels.items():
                totals[sample.name] += sample.value
    return totals


def mean_batch_rows(base: str) -> float | None:
    totals = metric_totals(base, ("serving_predict_batch_rows_sum", "serving_predict_batch_rows_count"))
    count = totals["serving_predict_batch_rows_count"]
    return totals["serving_predict_batch_rows_sum"] / count if count else None


def shadow_row_counts(base: str, project: str) -> tuple[float, float]:
    """Rows the project's challenger scored in the shadow so far, and rows logged without its prediction."""
    names = ("serving_shadow_predicted_rows_total", "serving_shadow_rows_skipped_total")
    totals = metric_totals(base, names, project=project)
    return totals[names[0]], totals[names[1]]


# --- the report ---------------------------------------------------------------------------------


def report(
    results: list[RunResult],
    projects: list[str],
    loaded: int,
    batch_rows: float | None,
    shadow_rows: dict[str, tuple[float, float]],
) -> None:
    def find(server: str, project: str, route: str, shape: str, connections: int) -> RunResult | None:
        wanted = (server, project, route, shape, connections)
        return next((r for r in results if (r.server, r.project, r.route, r.shape, r.connections) == wanted), None)

    route_width = max([len("route"), *(len(r.route) for r in results)])
    project_width = max([len("project"), *(len(r.project) for r in results)])
    print()
    print(
        f"| {'server':<10} | {'project':<{project_width}} | {'route':<{route_width}} | {'rows':<8} | {'conns':>5} "
        f"| {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'CPU us/req':>10} | {'failed':>6} |"
    )
    widths = (12, project_width + 2, route_width + 2, 10, 7, 11, 9, 9, 12, 8)
    print("|" + "|".join("-" * width for width in widths) + "|")
    for r in results:
        print(
            f"| {r.server:<10} | {r.project:<{project_width}} | {r.route:<{route_width}} | {r.shape:<8} | {r.connections:>5} "
            f"| {r.requests_per_second:>9.0f} | {r.p50_ms:>7.2f} | {r.p99_ms:>7.2f} | {r.server_cpu_us:>10.0f} | {r.failed:>6} |"
        )
    if batch_rows is not None:
        print(f"\nmean rows per model call in the app over all runs (micro-batching, shadow calls included): {batch_rows:.1f}")

    missed: list[str] = []
    for project in projects:
        predict_route = f"/models/{project}/predict"
        print(f"\n{project}: ratios")
        for connections in sorted({r.connections for r in results if r.project == project and r.shape == "1 row"}):
            app, mlflow, health = (
                find("app", project, predict_route, "1 row", connections),
                find("mlflow", project, "/invocations", "1 row", connections),
                find("app", "-", "/health", "-", connections),
            )
            if app and mlflow:
                print(f"  single row, c={connections}: app /predict / mlflow = {throughput_ratio(app, mlflow):.1f}x")
            if app and health:
                print(f"  single row, c={connections}: app /predict / app /health = {throughput_ratio(app, health):.2f}")
        batch = f"{BATCH_ROWS} rows"
        for connections in sorted({r.connections for r in results if r.project == project and r.shape == batch}):
            app, mlflow = (
                find("app", project, predict_route, batch, connections),
                find("mlflow", project, "/invocations", batch, connections),
            )
            if app and mlflow:
                print(
                    f"  {BATCH_ROWS}-row batches, c={connections}: app / mlflow = {throughput_ratio(app, mlflow):.1f}x (rows/s: "
                    f"app {app.requests_per_second * BATCH_ROWS:.0f}, mlflow {mlflow.requests_per_second * BATCH_ROWS:.0f})"
                )

        app = find("app", project, predict_route, "1 row", loaded)
        if app is None:
            continue
        mlflow, health = find("mlflow", project, "/invocations", "1 row", loaded), find("app", "-", "/health", "-", loaded)
        infer = find("app", project, f"/v2/models/{project}/infer", "1 row", loaded)
        shadow = find("app shadow", project, predict_route, "1 row", loaded)
        print(f"{project}: targets (single row, {loaded} connections)")

        def target(name: str, figure: str, passed: bool) -> None:
            if not passed:
                missed.append(f"{project}: {name}")  # noqa: B023 (called at once, in this iteration)
            print(f"  {name}: {figure}  {'PASS' if passed else 'FAIL'}")

        if mlflow:
            ratio = throughput_ratio(app, mlflow)
            figure = f"{ratio:.1f}x ({app.requests_per_second:.0f} against {mlflow.requests_per_second:.0f} req/s)"
            target(f">= {TARGET_TIMES_MLFLOW:.0f}x mlflow models serve", figure, ratio >= TARGET_TIMES_MLFLOW)
        target(f"p99 < {TARGET_P99_MS:.0f} ms", f"{app.p99_ms:.2f} ms", app.p99_ms < TARGET_P99_MS)
        if health:
            share = throughput_ratio(app, health)
            target(f">= {TARGET_SHARE_OF_HEALTH} x /health", f"{share:.2f}", share >= TARGET_SHARE_OF_HEALTH)
        if infer:
            print(
                f"  V2 /infer beside /predict: {infer.requests_per_second:.0f} against {app.requests_per_second:.0f} req/s "
                f"({throughput_ratio(infer, app):.2f}x), p99 {infer.p99_ms:.2f} against {app.p99_ms:.2f} ms"
            )
        if shadow:
            cost = shadow.p99_ms / app.p99_ms - 1
            scored, skipped = shadow_rows.get(project, (0.0, 0.0))
            figure = (
                f"{shadow.p99_ms:.2f} against {app.p99_ms:.2f} ms off ({cost:+.1%}; "
                f"the challenger scored {scored:.0f} rows, skipped {skipped:.0f})"
            )
            target(f"shadow costs p99 <= +{TARGET_SHADOW_P99_COST:.0%}", figure, cost <= TARGET_SHADOW_P99_COST)
        else:
            print("  shadow: not measured (no challenger in effect)")
        failed = sum(r.failed for r in results if r.project == project)
        target("no failed requests", f"{failed} (every run of {project}, both servers)", failed == 0)

    health_failed = sum(r.failed for r in results if r.route == "/health")
    if health_failed:
        missed.append(f"/health: {health_failed} failed requests")
    print(f"\ntargets missed: {'; '.join(missed)}" if missed else "\nevery target met")


def throughput_ratio(numerator: RunResult, denominator: RunResult) -> float:
    return numerator.requests_per_second / denominator.requests_per_second


if __name__ == "__main__":
    sys.exit(main())
