"""MLflow tracking and registry behind one resource.

dagster-mlflow ships only the legacy `mlflow_tracking` resource (one run per Dagster run, left RUNNING
unless the job adds `end_mlflow_on_run_finished`), which does not fit per-asset runs in an asset graph.
This resource opens MLflow runs as context managers, so a run ends FINISHED or FAILED with its step, and
ends any run still open when the Dagster step finishes. MLflow is imported lazily: loading the
definitions (webserver, daemon, sensors) does not pay for it.
"""

import fcntl
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource, InitResourceContext

from mlops_assets.settings import redacted

if TYPE_CHECKING:
    from mlflow import ActiveRun
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient


def _import_model_stack(tracking_uri: str) -> None:
    import mlflow.pyfunc  # noqa: F401
    import mlflow.sklearn  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    create_local_store(tracking_uri)


def create_local_store(tracking_uri: str) -> None:
    """Create a fresh SQLite store's tables while holding a lock beside it. MLflow creates them on first
    use without one, so two runs starting on a new store at once (a schedule tick and a sensor's run)
    both migrate and one fails with `table ... already exists`. A server-backed store is left to
    `mlflow db upgrade` and the tracking server."""
    if not tracking_uri.startswith("sqlite:"):
        return
    from mlflow.tracking import MlflowClient
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    if not database or database == ":memory:":
        return
    os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
    with open(f"{database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_background_import: threading.Thread | None = None


def wait_for_model_stack() -> None:
    """Every use of MLflow waits for the background import first: MLflow's circular imports, run from
    two threads at once, hand one of them a half-initialised module for the rest of the process."""
    if _background_import is not None and _background_import is not threading.current_thread():
        _background_import.join()


# The version that passed the gate and waits for live evidence beside production (serving follows both).
CHALLENGER_ALIAS = "challenger"


@dataclass(frozen=True)
class RegisteredModel:
    """One registered model and its serving alias: where a project's versions live."""

    client: "MlflowClient"
    name: str
    alias: str

    def model_uri(self, version: str) -> str:
        return f"models:/{self.name}/{version}"

    def aliased_version(self) -> "ModelVersion | None":
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.name, self.alias)
        except MlflowException:
            return None

    def aliased_version_number(self) -> str | None:
        """The version holding the alias, as the string the registry's URIs use (MLflow returns an int)."""
        version = self.aliased_version()
        return None if version is None else str(version.version)

    def version_tags(self, version: str) -> dict[str, str] | None:
        """The tags of `version`, or None when it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_model_version(self.name, version).tags)
        except MlflowException:
            return None

    def move_alias(self, version: str) -> None:
        self.client.set_registered_model_alias(self.name, self.alias, version)

    def remove_alias(self) -> None:
        self.client.delete_registered_model_alias(self.name, self.alias)

    def with_alias(self, alias: str) -> "RegisteredModel":
        """The same registered model seen through another alias (the challenger beside production)."""
        return replace(self, alias=alias)

    def tag_version(self, version: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, version, key, str(value))


class MlflowResource(ConfigurableResource):
    """The tracking store and model registry, reached through one explicit tracking URI."""

    tracking_uri: str
    artifact_root: str | None = None
    alias: str = "production"

    def setup_for_execution(self, context: InitResourceContext) -> None:
        global _background_import
        # One explicit URI for this process and its children: MLflow's default is relative to the
        # working directory. The environment reaches an MLflow not imported yet; an imported one has
        # its URI set directly (a process may serve several instances, as the tests do).
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        os.environ["MLFLOW_REGISTRY_URI"] = self.tracking_uri
        if "mlflow" in sys.modules:
            self._point_mlflow_here()
            create_local_store(self.tracking_uri)
        else:
            # Importing MLflow and scikit-learn takes seconds: do it while the Spark steps run, off
            # the critical path of the model steps that need them.
            if _background_import is None or not _background_import.is_alive():
                _background_import = threading.Thread(
                    target=_import_model_stack, args=(self.tracking_uri,), name="import-model-stack", daemon=True
                )
                _background_import.start()

    def _point_mlflow_here(self) -> None:
        wait_for_model_stack()
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        wait_for_model_stack()
        import mlflow

        # A step that died outside `start_run` must not leave a run RUNNING forever.
        while mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")

    @property
    def client(self) -> "MlflowClient":
        wait_for_model_stack()
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def model(self, name: str) -> RegisteredModel:
        return RegisteredModel(client=self.client, name=name, alias=self.alias)

    def experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(name, artifact_location=self._artifact_location(name))

    def _artifact_location(self, experiment_name: str) -> str | None:
        # One folder per experiment under a local store's artifact root; a tracking server decides itself.
        return None if self.artifact_root is None else os.path.join(self.artifact_root, experiment_name)

    @contextmanager
    def start_run(self, *, experiment_name: str, run_name: str, tags: dict[str, str], nested: bool = False) -> Iterator["ActiveRun"]:
        import mlflow

        self._point_mlflow_here()
        with mlflow.start_run(experiment_id=self.experiment_id(experiment_name), run_name=run_name, tags=tags, nested=nested) as run:
            yield run

    def run_url(self, run_id: str) -> str:
        experiment_id = self.client.get_run(run_id).info.experiment_id
        # Shown in the UI: a tracking URI's credentials stay out of it.
        uri = redacted(self.tracking_uri)
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"mlflow ui --backend-store-uri {uri}  ->  experiment {experiment_id}, run {run_id}"
