"""The app as deployed: `python -m serving` with two uvicorn worker processes, over real HTTP.

Under continuous concurrent load, the alias moves to a new version and then to a broken one: each
worker must follow by itself, no request may fail, every answer must be pyfunc's for its row and the
version it names, and each worker must write its own prediction-log files.
"""

import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from mlops_assets_tests.processes import stop

from .conftest import SEED_RECORD, start_serving_process, wait_for
from .load import ConcurrentClients
from .prometheus import parse_prometheus
from .test_prediction_equality import records_of

CLIENT_THREADS = 6


@pytest.fixture
def two_workers(registry, tmp_path: Path):
    model = registry.new_model(["v1", "v2", "broken_artifact"], alias="v1")
    server, base, log_path = start_serving_process(tmp_path, registry.tracking_uri, workers=2, environment={"MLOPS_MODEL_NAME": model.name})
    try:
        # One fresh connection reaches one worker, and the kernel may hand many in a row to the same
        # one: wait until both workers have answered /model with a loaded version.
        wait_for(lambda: _ready(base), timeout=90, what=f"a worker ready ({log_path})")
        wait_for(
            lambda: len(states := _workers_states(base)) == 2 and all(s["version"] is not None for s in states.values()),
            timeout=90,
            what=f"both workers ready ({log_path})",
        )
        # Each model logs into a folder of its own under the prediction log root.
        yield base, model, tmp_path / "prediction_log" / model.name, server
    finally:
        stop(server, grace=30)
    # no worker (nor multiprocessing helper) outlives the server for long
    wait_for(lambda: not _group_alive(server.pid), timeout=15, what="every process of the server to exit")


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _workers_states(base: str, attempts: int = 16) -> dict[str, dict]:
    """/model of each worker reached by `attempts` fresh connections, by worker id."""
    states = {}
    for _ in range(attempts):
        state = httpx.get(f"{base}/model", timeout=5).json()
        states[state["worker"]] = state
    return states


def test_two_workers_follow_the_alias_under_load_without_a_failed_request(two_workers, registry) -> None:
    base, model, log_dir, _ = two_workers
    frame = registry.frame.dropna().sample(300, random_state=5)
    records = records_of(frame)
    expected = {model.versions[label]: registry.expected(label, frame) for label in ("v1", "v2")}
    with ConcurrentClients(base, records, CLIENT_THREADS) as clients:
        answers = clients.answers
        wait_for(lambda: len(answers) > 200, what="load to build up")
        model.move_alias("v2")
        new = model.versions["v2"]
        wait_for(
            lambda: len(answers) > 50 and all(a[2] == new for a in answers[-50:]), timeout=30, what="every worker to serve v2"
        )
        model.move_alias("broken_artifact")
        broken = model.versions["broken_artifact"]
        wait_for(
            lambda: (
                (states := _workers_states(base))
                and len(states) == 2
                and all(
                    s["version"] == new and any(r["version"] == broken for r in s["refused_versions"]) for s in states.values()
                )
            ),
            timeout=30,
            what="both workers to refuse the broken version",
        )
        time.sleep(0.5)  # keep serving a little after the refusal

    failures = [answer for answer in answers if answer[1] != 200]
    assert not failures, f"{len(failures)} of {len(answers)} requests failed, e.g. {failures[:3]}"
    versions = Counter(answer[2] for answer in answers)
    assert set(versions) == {model.versions["v1"], model.versions["v2"]}, versions
    wrong = [a for a in answers if a[3] != expected[a[2]][a[0]]]
    assert not wrong, f"{len(wrong)} answers differ from pyfunc for their row and version, e.g. {wrong[:3]}"

    # /metrics adds both workers up: every answered request is counted, model calls were shared
    time.sleep(1.5)  # one publication interval
    metrics = parse_prometheus(httpx.get(f"{base}/metrics", timeout=5).text)
    assert metrics.value("serving_requests_total", route="/predict", status="200") == len(answers)
    assert metrics.value("serving_predict_batch_rows_sum") == len(answers)
    assert metrics.value("serving_predict_batch_rows_count") < len(answers), "no micro-batching under concurrent load"
    served = {labels["worker"]: value for name, labels, value in metrics.samples if name == "serving_model_version"}
    assert len(served) == 2 and set(served.values()) == {float(model.versions["v2"])}, served
    assert metrics.value("serving_model_reload_failures_total", stage="load") == 2  # each worker refused once

    # each worker wrote its own log files, and any worker tells the lineage of any prediction
    def workers_with_files() -> set[str]:
        return {
            pq.read_table(path, columns=["worker"]).column("worker")[0].as_py() for path in log_dir.glob("date=*/part-*.parquet")
        }

    wait_for(lambda: len(workers_with_files()) == 2, what="log files of both workers")
    served_by = {}
    for row, _, version, prediction, request_id in answers[:: max(1, len(answers) // 40)]:
        lineage = wait_for(
            lambda request_id=request_id: (
                (response := httpx.get(f"{base}/predictions/{request_id}", timeout=5)).status_code == 200 and response.json()
            ),
            what=f"the lineage of {request_id}",
        )
        assert lineage["model"]["model_version"] == version and lineage["rows"][0]["prediction"] == prediction
        assert lineage["rows"][0]["features"] == records[row]
        served_by[lineage["worker"]] = request_id
    assert len(served_by) == 2, "both workers answered and logged"


def test_a_worker_killed_while_it_reloads_comes_back_serving_a_good_version(two_workers) -> None:
    base, model, _, _ = two_workers
    states = _workers_states(base)
    victim_pid = int(next(iter(states)).split("-")[-2])  # worker ids are <host>-<pid>-<random>

    new = model.move_alias("v2")
    os.kill(victim_pid, signal.SIGKILL)  # while it polls, downloads or smoke-tests the new version

    # uvicorn's supervisor starts a replacement, which loads whatever the alias names now.
    wait_for(
        lambda: (
            len(states := _workers_states(base, attempts=24)) == 2
            and all(state["version"] == new for state in states.values())
            and all(f"-{victim_pid}-" not in worker for worker in states)
        ),
        timeout=90,
        what="a replacement worker serving the new version",
    )
    answers = [httpx.post(f"{base}/predict", json=SEED_RECORD, timeout=10) for _ in range(20)]
    assert {(answer.status_code, answer.json()["model_version"]) for answer in answers} == {(200, new)}
