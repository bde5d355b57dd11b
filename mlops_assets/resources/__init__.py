"""Resources and IO managers, built from `Settings` in one place: `build_resources`."""

import os
import sys

from dagster import EnvVar

from mlops_assets.resources.data_source import DataSourceResource
from mlops_assets.resources.io_managers import JsonIOManager, SparkParquetIOManager, Versioned
from mlops_assets.resources.mlflow_registry import MlflowResource
from mlops_assets.resources.spark import build_pyspark_resource
from mlops_assets.resources.versioned_store import VersionedStore
from mlops_assets.settings import Settings


def _secret(name: str, value: str | None) -> "str | EnvVar | None":
    # Read from the environment when run, so the UI shows the variable's name, never the secret itself.
    return EnvVar(name) if value is not None and os.environ.get(name) == value else value


def build_resources(settings: Settings) -> dict[str, object]:
    # Imported here: the automation package imports this one (MlflowResource) for its sensors.
    from mlops_assets.automation import AlertWebhook, ApprovalPolicy, DriftPolicy, LandingFolder
    from mlops_assets.ledger import DeploymentLedger

    store = VersionedStore(root=str(settings.data_root))
    if settings.spark_master.startswith("local"):
        # Python UDFs (batch scoring) run in workers started from PYSPARK_PYTHON, by default whichever
        # `python3` is first on PATH: this interpreter is the one holding the model's requirements.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    pyspark = build_pyspark_resource(settings)
    return {
        "pyspark": pyspark,
        "store": store,
        "data_source": DataSourceResource(
            location=settings.data_source,
            sha256=settings.data_source_sha256,
            cache_dir=str(settings.data_root / "_downloads"),
        ),
        "mlflow_resource": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.mlflow_artifact_root,
            model_name=settings.model_name,
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
