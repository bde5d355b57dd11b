"""Fixtures that run the real thing: a local SparkSession, a SQLite MLflow store and a Dagster instance,
all under pytest's temporary folders."""

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult, materialize
from dagster._core.instance.ref import InstanceRef

from mlops_assets.assets import HOUSING_ASSETS
from mlops_assets.checks import HOUSING_CHECKS
from mlops_assets.resources import build_resources
from mlops_assets.settings import Settings

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_CSV = Path(os.environ.get("MLOPS_REFERENCE_CSV", REPOSITORY_ROOT.parent / "shared" / "data" / "housing.csv"))

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def reference_csv() -> Path:
    if not REFERENCE_CSV.is_file():
        pytest.fail(f"the reference data is missing at {REFERENCE_CSV}: set MLOPS_REFERENCE_CSV")
    return REFERENCE_CSV


def instance_under(dagster_home: Path) -> DagsterInstance:
    """A real SQLite instance configured by the project's own dagster.yaml."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home), config_dir=str(REPOSITORY_ROOT)))


def settings_under(state_dir: Path, source: Path) -> Settings:
    return Settings.from_env({"MLOPS_STATE_DIR": str(state_dir), "MLOPS_DATA_SOURCE": str(source)})


@dataclass
class Platform:
    """The whole platform on one temporary state folder: materialize, then look at what it left."""

    settings: Settings
    instance: DagsterInstance

    def materialize(
        self,
        *,
        source: Path | None = None,
        selection: str | list[str] | None = None,
        run_config: dict | None = None,
        resources: dict[str, object] | None = None,
    ) -> ExecuteInProcessResult:
        settings = self.settings if source is None else replace(self.settings, data_source=str(source))
        return materialize(
            [*HOUSING_ASSETS, *HOUSING_CHECKS],
            instance=self.instance,
            resources=resources or build_resources(settings),
            selection=selection,
            run_config=run_config,
            raise_on_error=False,
        )

    @property
    def mlflow(self):
        return build_resources(self.settings)["mlflow_resource"]

    def production_version(self) -> str | None:
        return self.mlflow.aliased_version_number()

    def versions(self, asset: str) -> list[Path]:
        folder = self.settings.data_root / asset
        return sorted(path for path in folder.iterdir() if path.is_dir()) if folder.exists() else []


@pytest.fixture
def make_platform(tmp_path_factory: pytest.TempPathFactory, reference_csv: Path) -> Iterator:
    instances: list[DagsterInstance] = []

    def _make(name: str = "platform") -> Platform:
        state_dir = tmp_path_factory.mktemp(name)
        instance = instance_under(state_dir / "dagster_home")
        instances.append(instance)
        return Platform(settings_under(state_dir, reference_csv), instance)

    yield _make
    for instance in instances:
        instance.dispose()


def check_results(result: ExecuteInProcessResult) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def materialized(result: ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def asset_metadata(result: ExecuteInProcessResult, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(asset)]
    return {key: value.value for key, value in events[-1].materialization.metadata.items()}


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """A session with the assets' own configuration; their PySparkResource gets this one back from getOrCreate."""
    from pyspark.sql import SparkSession

    from mlops_assets.resources.spark import spark_config

    settings = settings_under(tmp_path_factory.mktemp("spark"), REFERENCE_CSV)
    return SparkSession.builder.config(map=spark_config(settings)).getOrCreate()
