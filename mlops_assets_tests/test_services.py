"""`mlops-assets up` as a user runs it, on a state folder that holds no model yet: the warm Spark
runtime, the Dagster UI, the Dagster daemon, the MLflow UI and the serving app come up and answer over
real sockets, serving says it waits for a production model instead of blocking the rest, a run
launched in the UI is dequeued by the daemon and reaches the warm Spark runtime, and Ctrl-C stops every
one of them and everything they spawned. Before it, the supervisor on small real
processes: one dying stops the rest, one marked for restart is started again, and a process group
that ignores SIGTERM is killed."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlops_assets.platform.services import Service, ServiceFailed, Supervisor
from mlops_assets_tests.conftest import REFERENCE_DATA_DIR
from mlops_assets_tests.processes import free_port

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# The webserver and the daemon each start a code server; on two cores all of it takes a while.
START_TIMEOUT_SECONDS = 240
DAEMON_TIMEOUT_SECONDS = 90
RUN_TIMEOUT_SECONDS = 240
STOP_TIMEOUT_SECONDS = 60
# A proxy from the environment must not stand between the test and the services on loopback.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class RunningUp:
    process: subprocess.Popen
    state_dir: Path
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def start_reading(self) -> None:
        self.reader = threading.Thread(target=self._read_output, daemon=True)
        self.reader.start()

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def everything_read(self) -> bool:
        return self.reader is not None and not self.reader.is_alive()

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT_SECONDS) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.everything_read():
                break
            time.sleep(0.2)
        pytest.fail(f"`mlops-assets up` never printed /{pattern}/:\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        parts = [f"--- mlops-assets up (exit {self.process.poll()}):\n{self.output()}"]
        for log in sorted((self.state_dir / "logs").glob("*.log")):
            parts.append(f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:]))
        return "\n".join(parts)


def processes_started_under(state_dir: Path) -> dict[int, str]:
    """Every live process whose environment names this test's state folder: whatever `up` started,
    however deep, even one that left its parent's process group."""
    return processes_with_environment(f"MLOPS_STATE_DIR={state_dir}")


def processes_with_environment(variable: str) -> dict[int, str]:
    marker = variable.encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in environment.split(b"\0"):
            found[int(entry.name)] = command
    return found


@pytest.fixture
def platform_up(tmp_path: Path) -> Iterator[RunningUp]:
    state_dir = tmp_path / "state"
    ports = {"dagster": free_port(), "mlflow": free_port(), "serving": free_port(), "spark": free_port()}
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_", "DAGSTER_"))},
        "MLOPS_STATE_DIR": str(state_dir),
        "MLOPS_DATA_DIR": str(REFERENCE_DATA_DIR),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    command = [
        sys.executable, "-m", "mlops_assets.cli", "up", "--no-materialize", "--host", "127.0.0.1",
        "--dagster-port", str(ports["dagster"]), "--mlflow-port", str(ports["mlflow"]),
        "--port", str(ports["serving"]), "--workers", "1", "--spark-port", str(ports["spark"]),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd=REPOSITORY_ROOT,
        start_new_session=True,  # the test signals `up` alone, the way a terminal's Ctrl-C reaches it
    )
    running = RunningUp(process, state_dir, ports)
    running.start_reading()
    try:
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for pid in processes_started_under(state_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        running.reader.join(timeout=5)


def http_get(url: str) -> tuple[int, str]:
    try:
        with DIRECT.open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with DIRECT.open(request, timeout=30) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        pytest.fail(f"{base_url}/graphql answered {error.code}: {error.read().decode(errors='replace')[:2000]}")
    assert not answer.get("errors"), answer
    return answer["data"]


def daemon_statuses(dagster_url: str) -> dict[str, tuple[bool, bool | None]]:
    """daemon type -> (required, healthy), from the daemons' heartbeats in the instance."""
    data = graphql(dagster_url, "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }")
    return {
        status["daemonType"]: (status["required"], status["healthy"])
        for status in data["instance"]["daemonHealth"]["allDaemonStatuses"]
    }


LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename } } } } }
"""
RUN_STATUS = "query Status($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"
RUN_LOGS = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) { ... on EventConnection { events { __typename ... on MessageEvent { message } } } }
}
"""


def wait_for_code_location(dagster_url: str, name: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """The webserver answers before its code server has loaded the definitions: wait as the UI's spinner does."""
    deadline = time.monotonic() + timeout
    while True:
        entries = {entry["name"]: entry for entry in graphql(dagster_url, LOCATIONS)["workspaceOrError"]["locationEntries"]}
        entry = entries.get(name)
        if entry and entry["loadStatus"] == "LOADED":
            assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the code location {name} did not load within {timeout} s: {entries}")
        time.sleep(1)


def launch_in_the_ui(dagster_url: str, job_name: str, asset_path: list[str]) -> str:
    """Launch a run of one asset of `job_name` as the UI's Materialize button does: it is queued, and the
    daemon's run queue launches it."""
    wait_for_code_location(dagster_url, "mlops_assets")
    selector = {"repositoryLocationName": "mlops_assets", "repositoryName": "__repository__", "jobName": job_name}
    params = {"selector": {**selector, "assetSelection": [{"path": asset_path}]}, "mode": "default", "runConfigData": {}}
    launched = graphql(dagster_url, LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def finished_run(dagster_url: str, run_id: str, timeout: float = RUN_TIMEOUT_SECONDS) -> tuple[str, list[dict]]:
    """The run's final status and its events, once it ended."""
    deadline = time.monotonic() + timeout
    while (status := graphql(dagster_url, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]) not in ("SUCCESS", "FAILURE", "CANCELED"):
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {status} after {timeout} s")
        time.sleep(1)
    return status, graphql(dagster_url, RUN_LOGS, {"runId": run_id})["logsForRun"]["events"]


def is_listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_server(port: int, marker: str) -> Service:
    return Service(
        "web",
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        health_url=f"http://127.0.0.1:{port}/",
        env={"SERVICES_TEST_MARKER": marker},
        url=f"http://127.0.0.1:{port}",
    )


def test_a_service_that_exits_stops_the_others_and_fails(tmp_path: Path):
    port, marker, said = free_port(), f"exits-{tmp_path.name}", []
    # Exits on its own a while after the web server answers, so that the supervisor has seen that one up.
    exits_later = f"""
import socket, time
while True:
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
        break
    except OSError:
        time.sleep(0.2)
time.sleep(2)
"""
    short_lived = Service("short-lived", [sys.executable, "-c", exits_later], env={"SERVICES_TEST_MARKER": marker})
    try:
        with Supervisor([http_server(port, marker), short_lived], log_dir=tmp_path / "logs", say=said.append) as supervisor:
            with pytest.raises(ServiceFailed, match="short-lived exited with code 0"):
                supervisor.run()
        assert f"web: http://127.0.0.1:{port}" in said, said
        assert processes_with_environment(f"SERVICES_TEST_MARKER={marker}") == {}
        assert not is_listening(port)
    finally:
        for pid in processes_with_environment(f"SERVICES_TEST_MARKER={marker}"):
            os.kill(pid, signal.SIGKILL)


def test_a_service_marked_for_restart_is_started_again_and_the_others_keep_running(tmp_path: Path):
    port, marker, said = free_port(), f"restarts-{tmp_path.name}", []
    starts = tmp_path / "starts"
    # Dies a second after its first start; runs on after the second.
    dies_once = f"""
import pathlib, sys, time
starts = pathlib.Path({str(starts)!r})
starts.write_text(starts.read_text() + "started\\n" if starts.exists() else "started\\n")
time.sleep(1 if starts.read_text().count("started") == 1 else 600)
sys.exit(3)
"""
    flaky = Service("flaky", [sys.executable, "-c", dies_once], env={"SERVICES_TEST_MARKER": marker}, restart=True)
    ctrl_c = threading.Timer(6, os.kill, (os.getpid(), signal.SIGINT))
    try:
        with Supervisor([http_server(port, marker), flaky], log_dir=tmp_path / "logs", say=said.append) as supervisor:
            ctrl_c.start()
            assert supervisor.run() == 0
        assert "flaky exited with code 3" in "\n".join(said) and "starting flaky again" in said, said
        assert starts.read_text().count("started") == 2
        assert said[-1] == "stopped", said
        assert processes_with_environment(f"SERVICES_TEST_MARKER={marker}") == {}
    finally:
        ctrl_c.cancel()
        for pid in processes_with_environment(f"SERVICES_TEST_MARKER={marker}"):
            os.kill(pid, signal.SIGKILL)


# A service that ignores SIGTERM and leaves a child behind that ignores it too.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
time.sleep(600)
"""


def test_sigint_stops_everything_and_a_group_deaf_to_sigterm_is_killed(tmp_path: Path):
    port, marker, said = free_port(), f"stubborn-{tmp_path.name}", []
    stubborn = Service("stubborn", [sys.executable, "-c", STUBBORN], env={"SERVICES_TEST_MARKER": marker})
    ctrl_c = threading.Timer(3, os.kill, (os.getpid(), signal.SIGINT))
    handler_before = signal.getsignal(signal.SIGINT)
    try:
        with Supervisor(
            [http_server(port, marker), stubborn], log_dir=tmp_path / "logs", stop_timeout=2, say=said.append
        ) as supervisor:
            assert len(processes_with_environment(f"SERVICES_TEST_MARKER={marker}")) >= 2
            # The supervisor's handler, installed on entry, is what receives this, not pytest's.
            ctrl_c.start()
            assert supervisor.run() == 0
        assert "SIGINT received" in said and "stubborn did not stop within 2 s: killing it" in said, said
        assert said[-1] == "stopped", said
        assert processes_with_environment(f"SERVICES_TEST_MARKER={marker}") == {}
        assert signal.getsignal(signal.SIGINT) is handler_before
    finally:
        ctrl_c.cancel()
        for pid in processes_with_environment(f"SERVICES_TEST_MARKER={marker}"):
            os.kill(pid, signal.SIGKILL)


def test_up_runs_every_service_until_ctrl_c_stops_them_all(platform_up: RunningUp):
    up = platform_up
    dagster_url = up.wait_for_line(r"^Dagster UI: (http://\S+)").group(1)
    mlflow_url = up.wait_for_line(r"^MLflow UI: (http://\S+)").group(1)
    serving_url = up.wait_for_line(r"^serving: (http://\S+) .*waits for a production model").group(1)
    warm_spark = up.wait_for_line(r"^warm Spark: (sc://\S+)").group(1)
    up.wait_for_line(r"^everything is up")
    assert warm_spark == f"sc://127.0.0.1:{up.ports['spark']}"
    assert (dagster_url, mlflow_url, serving_url) == tuple(
        f"http://127.0.0.1:{up.ports[name]}" for name in ("dagster", "mlflow", "serving")
    )

    assert graphql(dagster_url, "{ version }")["version"]
    assert http_get(f"{mlflow_url}/health") == (200, "OK")
    assert http_get(f"{serving_url}/health")[0] == 200
    status, body = http_get(f"{serving_url}/ready")
    assert status == 503, body  # no version holds production on a fresh state folder

    # The daemon writes a heartbeat per daemon thread once it runs: schedules and sensors really tick.
    deadline = time.monotonic() + DAEMON_TIMEOUT_SECONDS
    statuses = daemon_statuses(dagster_url)
    while not all(healthy for required, healthy in statuses.values() if required) and time.monotonic() < deadline:
        time.sleep(1)
        statuses = daemon_statuses(dagster_url)
    assert statuses["SCHEDULER"] == (True, True) and statuses["SENSOR"] == (True, True), statuses
    assert all(healthy for required, healthy in statuses.values() if required), statuses
    children = processes_started_under(up.state_dir)
    assert len(children) >= 5, children  # up itself, the webserver, the daemon, MLflow, serving, and theirs

    # The daemon, not the webserver, launches the run (the default run coordinator queues it), from its
    # own code server: the environment `up` gave the daemon points the run at the warm runtime.
    status, events = finished_run(dagster_url, launch_in_the_ui(dagster_url, "housing_refresh", ["housing", "raw"]))
    assert status == "SUCCESS", [event.get("message") for event in events]
    assert "RunEnqueuedEvent" in {event["__typename"] for event in events}  # queued: only the daemon's queue starts it
    assert any(f"Spark: the warm runtime at {warm_spark}" in (event.get("message") or "") for event in events), events

    up.process.send_signal(signal.SIGINT)
    try:
        exit_code = up.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`mlops-assets up` did not stop within {STOP_TIMEOUT_SECONDS} s of SIGINT:\n{up.diagnostics()}")
    assert exit_code == 0, up.diagnostics()
    up.reader.join(timeout=10)
    assert "SIGINT received" in up.output() and up.lines[-1] == "stopped", up.diagnostics()
    assert processes_started_under(up.state_dir) == {}
    assert [name for name, port in up.ports.items() if is_listening(port)] == []
