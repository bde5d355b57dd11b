"""The warm Spark runtime: a run that reaches it writes the same data as a run that starts Spark
itself, and a run whose warm runtime died starts Spark itself and succeeds (the supervisor of
`mlops-assets up` starts the runtime again: `test_services`)."""

import dataclasses
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey

from mlops_assets.platform.resources.spark import answers
from mlops_assets.platform.resources.versioned_store import VersionedStore
from mlops_assets.platform.spark_connect import server_command, server_environment, warm_runtime_address
from mlops_assets.settings import Settings
from mlops_assets_tests.conftest import REPOSITORY_ROOT, Platform, materialize_in_a_process
from mlops_assets_tests.processes import free_port, start, stop, wait_until

DATA_ASSETS = ["iris/raw", "iris/cleaned", "iris/features"]


@dataclass(frozen=True)
class WarmRuntime:
    address: str
    process: subprocess.Popen


@pytest.fixture(scope="module")
def warm_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmRuntime]:
    folder = tmp_path_factory.mktemp("warm_spark")
    port = free_port()
    settings = Settings.from_env({"MLOPS_STATE_DIR": str(folder)})
    server = start(
        server_command(settings, port), log=folder / "server.log", env={**os.environ, **server_environment()}, cwd=REPOSITORY_ROOT
    )
    address = warm_runtime_address(port)
    try:
        wait_until(lambda: answers(address), timeout=180, what=f"the Spark Connect server ({folder / 'server.log'})", process=server)
        yield WarmRuntime(address, server)
    finally:
        stop(server)


def content(data_root: Path, asset: str) -> pd.DataFrame:
    """The rows of the asset's newest certified version, in a canonical order."""
    version = VersionedStore(root=str(data_root)).latest_certified(AssetKey.from_user_string(asset))
    assert version is not None, f"{asset} has no certified version under {data_root}"
    frame = pd.read_parquet(version)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_a_run_on_the_warm_runtime_writes_what_a_run_with_its_own_spark_writes(warm_runtime, deployed_classifiers, tmp_path):
    log = materialize_in_a_process(tmp_path / "warm", DATA_ASSETS, {"MLOPS_SPARK_WARM_RUNTIME": warm_runtime.address})
    assert f"Spark: the warm runtime at {warm_runtime.address}" in log

    in_process, results = deployed_classifiers  # iris, materialized by the test session's own Spark
    assert results["iris"].success

    for asset in DATA_ASSETS[1:]:
        warm, own = content(tmp_path / "warm" / "data", asset), content(in_process.settings.data_root, asset)
        assert len(warm) > 100
        pd.testing.assert_frame_equal(warm, own, check_exact=True)


def test_a_run_whose_warm_runtime_died_starts_spark_itself_and_succeeds(warm_runtime, make_platform):
    os.killpg(warm_runtime.process.pid, signal.SIGKILL)
    warm_runtime.process.wait(timeout=30)
    wait_until(lambda: not answers(warm_runtime.address), timeout=30, what="the killed runtime to stop answering")
    platform = make_platform("runtime_died")
    platform = Platform(dataclasses.replace(platform.settings, spark_warm_runtime=warm_runtime.address), platform.instance)

    result = platform.materialize(project="iris", selection=DATA_ASSETS)

    assert result.success
    messages = [entry.user_message for entry in platform.instance.all_logs(result.run_id)]
    assert any(f"the warm Spark runtime at {warm_runtime.address} does not answer" in message for message in messages), messages
