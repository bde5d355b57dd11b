"""Two runs of the graph launched at once, as two processes on one instance, one MLflow store and one
data root (a schedule tick and a new-data drop at the same minute): both succeed, each reads and
certifies its own versions, the registry gains two versions, and production ends on one of them."""

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, DagsterRunStatus

from mlops_assets.platform.resources.mlflow_registry import MlflowResource
from mlops_assets.platform.resources.versioned_store import VersionedStore
from mlops_assets_tests.conftest import REPOSITORY_ROOT, instance_under, settings_under

FLOW = (
    "group:housing and not key:housing/feature_drift and not key:housing/batch_predictions"
    " and not key:housing/deployment_ledger and not key:housing/online_performance"
)
DATA_ASSETS = ("housing/raw", "housing/cleaned", "housing/features")


def test_two_runs_at_once_do_not_corrupt_each_other(tmp_path: Path, reference_csv: Path):
    home = tmp_path / "dagster_home"
    instance = instance_under(home)
    (home / "dagster.yaml").symlink_to(REPOSITORY_ROOT / "dagster.yaml")
    settings = settings_under(tmp_path, reference_csv)
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_"))},
        "DAGSTER_HOME": str(home),
        "MLOPS_STATE_DIR": str(tmp_path),
        "MLOPS_DATA_SOURCE": str(reference_csv),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "--select", FLOW, "-m", "mlops_assets.definitions"]
    logs = [tmp_path / f"run-{n}.log" for n in (1, 2)]
    processes = [
        subprocess.Popen(command, env=environment, cwd=REPOSITORY_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        for log in logs
    ]
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=600) == 0, log.read_text()[-3000:]

    runs = instance.get_runs()
    assert len(runs) == 2 and {run.status for run in runs} == {DagsterRunStatus.SUCCESS}
    store = VersionedStore(root=str(settings.data_root))
    for asset in DATA_ASSETS:
        versions = sorted(path for path in store.asset_dir(AssetKey.from_user_string(asset)).iterdir() if path.is_dir())
        # One version per run, each certified with the digest its own run recorded.
        assert sorted(version.name.rsplit("_", 1)[1] for version in versions) == sorted(run.run_id for run in runs)
        for version in versions:
            record = instance.fetch_materializations(AssetKey.from_user_string(asset), limit=10).records
            digests = {r.asset_materialization.metadata["digest"].value for r in record}
            assert store.manifest(version)["digest"] in digests
            assert (version / "_CERTIFIED.json").exists()

    registry = MlflowResource(tracking_uri=settings.mlflow_tracking_uri, alias=settings.model_alias).model("housing_price")
    versions = registry.client.search_model_versions("name = 'housing_price'")
    trained_by = sorted(version.tags["dagster_run_id"] for version in versions)
    assert trained_by == sorted(run.run_id for run in runs)
    assert registry.aliased_version_number() in {str(version.version) for version in versions}
    instance.dispose()


def test_two_processes_creating_a_new_mlflow_store_at_once_both_succeed(tmp_path: Path):
    # Without the lock, MLflow's migrations race: one process fails with `table ... already exists`.
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    script = "import sys; from mlops_assets.platform.resources.mlflow_registry import create_local_store; create_local_store(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", script, uri], cwd=REPOSITORY_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output.decode()[-3000:]
