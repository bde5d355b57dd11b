"""A real model of any project in an MLflow registry without running Dagster, for tests and benchmarks.

It is trained the way the `trained_model` asset trains it (the project's pipeline, logged by the
platform's own `log_project_model`: same signature, skops trust list, input example) and tagged with
the lineage the pipeline records, so the serving app cannot tell it from a deployed one. Only the
Spark feature table and the Dagster run are skipped: the rows come as a pandas DataFrame (typed as the
project's cleaned data is) and the lineage tags name this helper. Without a project named, the
default serving project's.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.platform.project import ModelProject

EXPERIMENT_NAME = "reference_models"
HOLDOUT_SHARE = 0.2
DEFAULT_SEED = 42


@dataclass
class ReferenceRegistry:
    """An MLflow store (tracking + registry) with an experiment whose artifacts live under `root`."""

    tracking_uri: str
    root: Path
    experiment_id: str
    _client: Any = field(default=None, repr=False)

    @classmethod
    def create(cls, root: Path, tracking_uri: str | None = None) -> "ReferenceRegistry":
        from mlflow import MlflowClient

        root.mkdir(parents=True, exist_ok=True)
        tracking_uri = tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(EXPERIMENT_NAME, artifact_location=(root / "artifacts").as_uri())
        )
        return cls(tracking_uri=tracking_uri, root=root, experiment_id=experiment_id, _client=client)

    @property
    def client(self) -> Any:
        return self._client

    def log_model(
        self,
        pipeline: Any,
        training_frame: "pd.DataFrame",
        *,
        model_name: str,
        lineage: dict[str, str],
        holdout_metrics: dict[str, float],
        project: "ModelProject | None" = None,
    ) -> str:
        """Log `pipeline` as a new version of `model_name`, tagged like the pipeline tags it; returns the version."""
        import mlflow

        from mlops_assets.platform.model_logging import log_project_model

        project = project or _declared()
        # `log_model` registers through the process-wide URIs (and MLflow exports them to the environment
        # for subprocesses): this process's MLflow points at this store from here on.
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        with mlflow.start_run(experiment_id=self.experiment_id, tags=lineage):
            mlflow.log_metrics({f"holdout_{name}": value for name, value in holdout_metrics.items()})
            info = log_project_model(project, pipeline, training_frame, registered_model_name=model_name)
        version = str(info.registered_model_version)
        primary = project.task.primary_metric
        tags = {**lineage, "project": project.name, f"holdout_{primary}": round(holdout_metrics.get(primary, float("nan")), 4)}
        for key, value in tags.items():
            self.client.set_model_version_tag(model_name, version, key, str(value))
        return version

    def copy_version(self, source_name: str, source_version: str, target_name: str) -> str:
        """Register an existing version's artifacts again under `target_name` (no re-logging), with its tags."""
        source = self.client.get_model_version(source_name, source_version)
        # The artifact location, not the `models:/m-...` source: resolving that goes through the global
        # tracking URI inside MLflow, which need not be this store.
        location = self.client.get_model_version_download_uri(source_name, source_version)
        return self.register_source(target_name, location, run_id=source.run_id, tags=source.tags)

    def register_source(self, model_name: str, source: str, *, run_id: str | None, tags: dict[str, str]) -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(model_name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = self.client.create_model_version(model_name, source=source, run_id=run_id, tags=tags)
        return str(version.version)

    def move_alias(self, model_name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name, alias, version)


def read_reference_frame(csv_path: Path) -> "pd.DataFrame":
    import pandas as pd

    return pd.read_csv(csv_path)


def typed_reference_frame(project: "ModelProject", data_dir: Path) -> "pd.DataFrame":
    """A project's reference CSV (in `data_dir`) typed as its cleaned data is: numbers as float64, rows
    without a required number dropped; its raw features and target."""
    import pandas as pd

    domain = project.domain
    frame = pd.read_csv(data_dir / project.source.file_name)
    for name in domain.numeric_features:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    required = [name for name in domain.numeric_features if name not in domain.optional_features]
    return frame.dropna(subset=required).reset_index(drop=True)[[*domain.raw_features, domain.target]]


def train_and_register(
    registry: ReferenceRegistry,
    frame: "pd.DataFrame",
    *,
    model_name: str,
    params: Any = None,
    alias: str | None = None,
    project: "ModelProject | None" = None,
) -> str:
    """Fit the project's pipeline on `frame` (params: its first variant's unless given), score it on a
    holdout with the project's task, register and tag it; returns the version."""
    project = project or _declared()
    params = params if params is not None else project.variants[0].params
    features, target = list(project.domain.raw_features), project.domain.target
    holdout = frame.sample(frac=HOLDOUT_SHARE, random_state=_seed(params))
    train = frame.drop(holdout.index)
    pipeline = project.build_model(params)
    pipeline.fit(train[features], train[target].to_numpy())
    metrics = project.task.score(pipeline, holdout[features], holdout[target].to_numpy())
    lineage = {
        "dagster_run_id": "reference-model-no-dagster-run",
        "features_version": f"reference-csv-{len(frame)}-rows",
        "features_path": "reference csv (pandas)",
        "features_digest": str(frame_digest(frame)),
        "code_version": _code_version(project),
        "evaluated_on": f"reference-csv-{len(frame)}-rows",
    }
    version = registry.log_model(pipeline, frame, model_name=model_name, lineage=lineage, holdout_metrics=metrics, project=project)
    if alias is not None:
        registry.move_alias(model_name, alias, version)
    return version


def frame_digest(frame: "pd.DataFrame") -> str:
    import hashlib

    import pandas as pd

    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:16]


def _seed(params: Any) -> int:
    if isinstance(params, Mapping):
        return int(params.get("random_state", DEFAULT_SEED))
    return int(getattr(params, "random_state", DEFAULT_SEED))


def _declared() -> "ModelProject":
    from serving.served_project import declared_project

    return declared_project()


def _code_version(project: "ModelProject") -> str:
    from mlops_assets.platform.code_version import project_code_version

    return project_code_version(project)
