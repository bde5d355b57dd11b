"""Fixtures that run the real thing: a local SparkSession, a SQLite MLflow store and a Dagster instance,
all under pytest's temporary folders."""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, ExecuteInProcessResult, materialize
from dagster._core.instance.ref import InstanceRef

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.checks import build_project_checks
from mlops_assets.platform.factory import build_project_assets
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources import build_resources
from mlops_assets.projects import load_projects
from mlops_assets.settings import Settings

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DATA_DIR = Path(os.environ.get("MLOPS_REFERENCE_DATA_DIR", REPOSITORY_ROOT.parent / "shared" / "data"))
REFERENCE_CSV = Path(os.environ.get("MLOPS_REFERENCE_CSV", REFERENCE_DATA_DIR / "housing.csv"))
PROJECTS: dict[str, ModelProject] = {project.name: project for project in load_projects(extra_modules="")}

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


def settings_under(state_dir: Path, source: Path | None = None) -> Settings:
    """Every project reads its reference copy from the shared data folder; `source` replaces housing's."""
    environ = {"MLOPS_STATE_DIR": str(state_dir), "MLOPS_DATA_DIR": str(REFERENCE_DATA_DIR)}
    if source is not None:
        environ["MLOPS_DATA_SOURCE"] = str(source)
    return Settings.from_env(environ)


def with_source(settings: Settings, project: str, source: Path) -> Settings:
    return replace(settings, source_variables={**settings.source_variables, f"MLOPS_{project.upper()}_SOURCE": str(source)})


def materialize_in_a_process(state_dir: Path, selection: list[str], environment: dict[str, str]) -> str:
    """`dagster asset materialize` in a process of its own, as the daemon launches a run, on a fresh
    DAGSTER_HOME under `state_dir` and the reference data, with `environment` added; returns its log."""
    dagster_home = state_dir / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").symlink_to(REPOSITORY_ROOT / "dagster.yaml")
    run_environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_", "DAGSTER_"))},
        "DAGSTER_HOME": str(dagster_home),
        "MLOPS_STATE_DIR": str(state_dir),
        "MLOPS_DATA_DIR": str(REFERENCE_DATA_DIR),
        "SPARK_LOCAL_IP": "127.0.0.1",
        **environment,
    }
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "mlops_assets.definitions",
               "--select", ",".join(selection)]  # fmt: skip
    completed = subprocess.run(command, cwd=REPOSITORY_ROOT, env=run_environment, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stderr


def step_config(asset: str, config: dict) -> dict:
    """Run config for one asset's step, the asset named as the UI shows it (`housing/trained_model`)."""
    return {"ops": {AssetKey.from_user_string(asset).to_python_identifier(): {"config": config}}}


def _selection(selection: str | list[str] | None) -> AssetSelection | None:
    """Asset names as the UI shows them; `name*` is the asset and everything downstream of it."""
    if selection is None:
        return None
    names = [selection] if isinstance(selection, str) else selection
    chosen = AssetSelection.assets()
    for name in names:
        key = AssetKey.from_user_string(name.rstrip("*"))
        chosen = chosen | (AssetSelection.assets(key).downstream() if name.endswith("*") else AssetSelection.assets(key))
    return chosen


def project_definitions(project: str, *, monitoring: bool = False) -> list:
    """A project's flow assets (and, with `monitoring`, the assets that watch it) with their checks."""
    keys = ProjectKeys(project)
    wanted = set(keys.all() if monitoring else keys.flow())
    assets = [asset for asset in build_project_assets(PROJECTS[project]) if asset.key in wanted]
    return [*assets, *build_project_checks(PROJECTS[project])]


@dataclass
class Platform:
    """The whole platform on one temporary state folder: materialize, then look at what it left."""

    settings: Settings
    instance: DagsterInstance

    def materialize(
        self,
        *,
        project: str = "housing",
        source: Path | None = None,
        selection: str | list[str] | None = None,
        run_config: dict | None = None,
        resources: dict[str, object] | None = None,
        monitoring: bool = False,
        tags: dict[str, str] | None = None,
    ) -> ExecuteInProcessResult:
        settings = self.settings if source is None else with_source(self.settings, project, source)
        return materialize(
            project_definitions(project, monitoring=monitoring),
            instance=self.instance,
            resources={**build_resources(settings, list(PROJECTS.values())), **(resources or {})},
            selection=_selection(selection),
            run_config=run_config,
            tags=tags,
            raise_on_error=False,
        )

    def resources(self) -> dict[str, object]:
        return build_resources(self.settings, list(PROJECTS.values()))

    @property
    def mlflow(self):
        return self.resources()["mlflow_resource"]

    def registry(self, project: str = "housing"):
        return self.mlflow.model(PROJECTS[project].model_name)

    def production_version(self, project: str = "housing") -> str | None:
        return self.registry(project).aliased_version_number()

    def versions(self, asset: str) -> list[Path]:
        folder = self.settings.data_root.joinpath(*AssetKey.from_user_string(asset).path)
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


CLASSIFIERS = ("churn", "iris")


@pytest.fixture(scope="session")
def deployed_classifiers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, dict[str, ExecuteInProcessResult]]]:
    """Each classifier materialized once on one platform; the tests that use it build on that state."""
    state_dir = tmp_path_factory.mktemp("classifiers")
    instance = instance_under(state_dir / "dagster_home")
    platform = Platform(settings_under(state_dir), instance)
    results = {project: platform.materialize(project=project) for project in CLASSIFIERS}
    yield platform, results
    instance.dispose()


CHECKED_ASSETS = ("raw", "cleaned", "features", "trained_model", "model_evaluation")


def certified_versions(platform: Platform, project: str = "housing", from_asset: str | None = None) -> dict[str, str | None]:
    """The version other runs would read, for `from_asset` (default: raw) and every checked asset downstream."""
    from mlops_assets.platform.resources.versioned_store import VersionedStore

    store = VersionedStore(root=str(platform.settings.data_root))
    names = [f"{project}/{asset}" for asset in CHECKED_ASSETS]
    start = names.index(from_asset) if from_asset else 0
    return {
        name: (path.name if (path := store.latest_certified(AssetKey.from_user_string(name))) else None)
        for name in names[start:]
    }


def check_results(result: ExecuteInProcessResult) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def materialized(result: ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def asset_metadata(result: ExecuteInProcessResult, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey.from_user_string(asset)]
    return {key: value.value for key, value in events[-1].materialization.metadata.items()}


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """A session with the assets' own configuration; their PySparkResource gets this one back from getOrCreate."""
    from pyspark.sql import SparkSession

    from mlops_assets.platform.resources.spark import spark_config

    settings = settings_under(tmp_path_factory.mktemp("spark"), REFERENCE_CSV)
    return SparkSession.builder.config(map=spark_config(settings)).getOrCreate()
