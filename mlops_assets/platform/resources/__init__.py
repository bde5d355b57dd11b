"""Resources and IO managers, built from `Settings` in one place: `build_resources`."""

import os
import sys

from dagster import EnvVar

from mlops_assets.platform.resources.data_source import DataSourceResource
from mlops_assets.platform.resources.io_managers import JsonIOManager, SparkParquetIOManager, Versioned
from mlops_assets.platform.resources.mlflow_registry import MlflowResource
from mlops_assets.platform.resources.spark import build_pyspark_resource
from mlops_assets.platform.resources.versioned_store import VersionedStore
from mlops_assets.platform.project import ModelProject
from mlops_assets.settings import Settings


def _secret(name: str, value: str | None) -> "str | EnvVar | None":
    # Read from the environment when run, so the UI shows the variable's name, never the secret itself.
    return EnvVar(name) if value is not None and os.environ.get(name) == value else value


def build_resources(settings: Settings, projects: list[ModelProject]) -> dict[str, object]:
    # Imported here: the automation package imports this one (MlflowResource) for its sensors.
    from mlops_assets.platform.automation import AlertWebhook, ApprovalPolicy, DriftPolicy, LandingFolder, LiveEvidencePolicy, ServingTraffic
    from mlops_assets.platform.ledger import DeploymentLedger

    store = VersionedStore(root=str(settings.data_root))
    if settings.spark_master.startswith("local"):
        # Python UDFs (batch scoring) run in workers started from PYSPARK_PYTHON, by default whichever
        # `python3` is first on PATH: this interpreter is the one holding the model's requirements.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    pyspark = build_pyspark_resource(settings)
    sources = {project.name: settings.source_for(project.name, project.source) for project in projects}
    return {
        "pyspark": pyspark,
        "store": store,
        "data_source": DataSourceResource(
            locations={project.name: sources[project.name][0] for project in projects},
            checksums={project.name: sources[project.name][1] or "" for project in projects},
            cache_dir=str(settings.data_root / "_downloads"),
        ),
        "mlflow_resource": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.mlflow_artifact_root,
            alias=settings.model_alias,
        ),
        "spark_parquet_io_manager": SparkParquetIOManager(store=store, pyspark=pyspark),
        "json_io_manager": JsonIOManager(store=store),
        "ledger": DeploymentLedger(path=str(settings.ledger_path)),
        "approval": ApprovalPolicy(required=settings.approval_required),
        "drift_policy": DriftPolicy(
            psi_threshold=settings.drift_psi_threshold,
            ks_threshold=settings.drift_ks_threshold,
            min_samples=settings.drift_min_samples,
            prediction_log_dir=str(settings.prediction_log_dir),
            retrain_cooldown_hours=settings.retrain_cooldown_hours,
        ),
        "live_evidence": LiveEvidencePolicy(
            prediction_log_dir=str(settings.prediction_log_dir),
            min_outcomes=settings.live_min_outcomes,
            min_improvement=settings.live_min_improvement,
            rollback_tolerance=settings.live_rollback_tolerance,
        ),
        "serving_traffic": ServingTraffic(state_dir=str(settings.serving_state_dir)),
        "landing": LandingFolder(path=str(settings.landing_dir), settle_seconds=settings.landing_settle_seconds),
        "alert_webhook": AlertWebhook(url=_secret("MLOPS_ALERT_WEBHOOK_URL", settings.alert_webhook_url)),
    }


__all__ = [
    "DataSourceResource",
    "JsonIOManager",
    "MlflowResource",
    "SparkParquetIOManager",
    "Versioned",
    "VersionedStore",
    "build_pyspark_resource",
    "build_resources",
]
