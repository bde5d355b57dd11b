"""The real `dagster-daemon` on a temporary instance: a CSV dropped into the landing folder is picked up
by the new-data sensor's tick, which launches exactly one run that completes and registers a model;
the same content under another name launches nothing more."""

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from mlops_assets.platform.automation.new_data import SOURCE_SHA256_TAG
from mlops_assets.platform.resources.data_source import sha256_of
from mlops_assets.platform.resources.mlflow_registry import MlflowResource
from mlops_assets_tests.conftest import REPOSITORY_ROOT, instance_under
from mlops_assets_tests.processes import start, stop, wait_until

RUN_TIMEOUT_SECONDS = 480
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture
def daemon(tmp_path: Path, reference_csv: Path) -> Iterator[tuple[DagsterInstance, Path, Path]]:
    home = tmp_path / "dagster_home"
    instance = instance_under(home)
    (home / "dagster.yaml").symlink_to(REPOSITORY_ROOT / "dagster.yaml")
    landing = tmp_path / "landing"
    (landing / "housing").mkdir(parents=True)
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_"))},
        "DAGSTER_HOME": str(home),
        "MLOPS_STATE_DIR": str(tmp_path),
        "MLOPS_DATA_SOURCE": str(reference_csv),
        "MLOPS_LANDING_DIR": str(landing),
        "MLOPS_LANDING_SETTLE_SECONDS": "0",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    log = tmp_path / "dagster_daemon.log"
    process = start(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", "mlops_assets.definitions"],
        log=log,
        env=environment,
        cwd=REPOSITORY_ROOT,
    )
    try:
        yield instance, landing / "housing", log
    finally:
        stop(process, grace=30)
        instance.dispose()


def _sensor_ticks(instance: DagsterInstance, name: str) -> list:
    states = [
        state for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR) if state.instigator_name == name
    ]
    if not states:
        return []
    return instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=100)


def test_a_dropped_csv_launches_one_run_through_the_sensor_and_the_daemon(daemon, reference_csv: Path, tmp_path: Path):
    instance, landing, log = daemon
    drop = Path(shutil.copy(reference_csv, landing / "2026-11-23.csv"))
    digest = sha256_of(drop)

    def source_runs():
        return instance.get_runs(RunsFilter(tags={SOURCE_SHA256_TAG: digest}))

    wait_until(lambda: len(source_runs()) > 0, timeout=120, what=f"a run launched by the sensor ({log})")
    wait_until(lambda: source_runs()[0].status in FINISHED, timeout=RUN_TIMEOUT_SECONDS, what=f"the sensor's run ({log})")
    (run,) = source_runs()
    assert run.status == DagsterRunStatus.SUCCESS, f"the run ended {run.status}; see {log}"
    assert run.job_name == "housing_refresh"
    assert run.run_config["ops"]["housing__raw"]["config"]["location"] == str(drop)

    registry = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", alias="production").model("housing_price")
    version = registry.aliased_version()
    assert version is not None and version.tags["dagster_run_id"] == run.run_id

    # The same content under another name: a tick that starts after the copy and finishes skips it,
    # and no second run starts.
    shutil.copy(drop, landing / "the-same-again.csv")
    copied_at = time.time()

    def finished_tick_after_copy():
        ticks = [
            tick
            for tick in _sensor_ticks(instance, "housing_new_data")
            if tick.timestamp > copied_at and tick.status != TickStatus.STARTED
        ]
        return ticks[0] if ticks else None

    wait_until(lambda: finished_tick_after_copy() is not None, timeout=120, what=f"another tick of the sensor ({log})")
    assert finished_tick_after_copy().status == TickStatus.SKIPPED
    assert len(source_runs()) == 1
    assert len(instance.get_runs(RunsFilter(job_name="housing_refresh"))) == 1
