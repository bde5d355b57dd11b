"""Configuration from the environment, with defaults that run everything on one machine.

With nothing set, all state lives under one project-local folder (`.mlops_state/`, git-ignored):
the Dagster instance, the MLflow SQLite store and artifacts, and the data root. The production
profile sets the same standard variables to Postgres, an MLflow server and a Spark master.

Each model project's source is, first found: MLOPS_<PROJECT>_SOURCE (and MLOPS_<PROJECT>_SHA256), an
older variable the project still honours, its reference file in MLOPS_DATA_DIR (verified against the
published checksum), or its public URL (downloaded once, verified).
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_assets.platform.project import DataSource

PRODUCTION_ALIAS = "production"

# The daily refresh: 03:00 UTC, after a night's drops have landed and before the working day.
SCHEDULE_CRON = "0 3 * * *"
SCHEDULE_TIMEZONE = "UTC"


def _project_root() -> Path:
    package_parent = Path(__file__).resolve().parents[1]
    return package_parent if (package_parent / "pyproject.toml").exists() else Path.cwd()


def _number(environ: "os._Environ[str] | dict[str, str]", name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _switch(environ: "os._Environ[str] | dict[str, str]", name: str) -> bool:
    return environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _is_local_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("sqlite:", "file:", "/")) or "://" not in tracking_uri


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    dagster_home: Path
    mlflow_tracking_uri: str
    mlflow_artifact_root: str | None
    data_root: Path
    spark_master: str
    spark_driver_memory: str
    # A local Spark Connect server kept running between runs (`mlops-assets up`, `dev`); None: Spark per run.
    spark_warm_runtime: str | None
    model_alias: str
    # Automation: the daily refresh, new-data drops, drift, alerts, approval and the deployment ledger.
    schedule_cron: str
    schedule_timezone: str
    landing_dir: Path
    landing_settle_seconds: float
    prediction_log_dir: Path
    # The serving app's traffic policies (serving/settings.py: `serving` beside the prediction log folder).
    serving_state_dir: Path
    drift_psi_threshold: float
    drift_ks_threshold: float
    drift_min_samples: int
    retrain_cooldown_hours: float
    # Live evidence (online_performance): how many outcomes a decision needs, and its two thresholds.
    live_min_outcomes: int
    live_min_improvement: float
    live_rollback_tolerance: float
    alert_webhook_url: str | None
    approval_required: bool
    ledger_path: Path
    # Where the UI's "view code" links point: the local files, or these files in a git host's web view.
    code_git_url: str | None
    code_git_branch: str
    # Where reference copies of every project's data lie (MLOPS_DATA_DIR), and the per-project variables.
    data_dir: Path | None = None
    source_variables: Mapping[str, str] = field(default_factory=dict)

    def source_for(self, project_name: str, source: "DataSource") -> tuple[str, str | None]:
        """Where a project's raw CSV comes from, and the sha256 it must have (None: any)."""
        for prefix in (f"MLOPS_{project_name.upper()}", *source.legacy_prefixes):
            location = self.source_variables.get(f"{prefix}_SOURCE")
            if location:
                checksum = self.source_variables.get(f"{prefix}_SHA256") or (source.sha256 if location == source.url else None)
                return location, checksum
        if self.data_dir is not None:
            return str(self.data_dir / source.file_name), source.sha256
        return source.url, source.sha256

    def landing_dir_for(self, project_name: str) -> Path:
        return self.landing_dir / project_name

    @classmethod
    def from_env(cls, environ: "os._Environ[str] | dict[str, str]" = os.environ) -> "Settings":
        state_dir = Path(environ.get("MLOPS_STATE_DIR", _project_root() / ".mlops_state")).resolve()
        tracking_uri = environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}"
        # A local store puts artifacts next to it; a tracking server decides where they go itself.
        default_artifact_root = str(state_dir / "mlflow" / "artifacts") if _is_local_store(tracking_uri) else None
        data_root = Path(environ.get("MLOPS_DATA_ROOT", state_dir / "data")).resolve()
        # The serving app writes here (the same variable and default as serving/settings.py).
        prediction_log_dir = Path(environ.get("MLOPS_PREDICTION_LOG_DIR", data_root / "prediction_log")).resolve()
        return cls(
            state_dir=state_dir,
            dagster_home=Path(environ.get("DAGSTER_HOME", state_dir / "dagster_home")).resolve(),
            mlflow_tracking_uri=tracking_uri,
            mlflow_artifact_root=environ.get("MLOPS_MLFLOW_ARTIFACT_ROOT", default_artifact_root),
            data_root=data_root,
            spark_master=environ.get("MLOPS_SPARK_MASTER", "local[*]"),
            spark_driver_memory=environ.get("MLOPS_SPARK_DRIVER_MEMORY", "4g"),
            spark_warm_runtime=environ.get("MLOPS_SPARK_WARM_RUNTIME", "").strip() or None,
            model_alias=environ.get("MLOPS_MODEL_ALIAS", PRODUCTION_ALIAS),
            schedule_cron=environ.get("MLOPS_SCHEDULE_CRON", SCHEDULE_CRON),
            schedule_timezone=environ.get("MLOPS_SCHEDULE_TIMEZONE", SCHEDULE_TIMEZONE),
            landing_dir=Path(environ.get("MLOPS_LANDING_DIR", state_dir / "landing")).resolve(),
            landing_settle_seconds=_number(environ, "MLOPS_LANDING_SETTLE_SECONDS", 10.0),
            prediction_log_dir=prediction_log_dir,
            serving_state_dir=Path(environ.get("MLOPS_SERVING_STATE_DIR", prediction_log_dir.parent / "serving")).resolve(),
            drift_psi_threshold=_number(environ, "MLOPS_DRIFT_PSI_THRESHOLD", 0.2),
            drift_ks_threshold=_number(environ, "MLOPS_DRIFT_KS_THRESHOLD", 0.1),
            drift_min_samples=int(_number(environ, "MLOPS_DRIFT_MIN_SAMPLES", 500)),
            retrain_cooldown_hours=_number(environ, "MLOPS_RETRAIN_COOLDOWN_HOURS", 12.0),
            live_min_outcomes=int(_number(environ, "MLOPS_LIVE_MIN_OUTCOMES", 200)),
            live_min_improvement=_number(environ, "MLOPS_LIVE_MIN_IMPROVEMENT", 0.0),
            live_rollback_tolerance=_number(environ, "MLOPS_LIVE_ROLLBACK_TOLERANCE", 0.05),
            alert_webhook_url=environ.get("MLOPS_ALERT_WEBHOOK_URL") or None,
            approval_required=_switch(environ, "MLOPS_APPROVAL_REQUIRED"),
            ledger_path=Path(environ.get("MLOPS_LEDGER_PATH", data_root / "deployment_ledger.sqlite3")).resolve(),
            code_git_url=environ.get("MLOPS_CODE_GIT_URL") or None,
            code_git_branch=environ.get("MLOPS_CODE_GIT_BRANCH", "main"),
            data_dir=Path(environ["MLOPS_DATA_DIR"]).resolve() if environ.get("MLOPS_DATA_DIR") else None,
            source_variables={
                name: value for name, value in environ.items() if name.startswith("MLOPS_") and name.endswith(("_SOURCE", "_SHA256"))
            },
        )


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redacted(text: str) -> str:
    """`text` with the credentials of every URL in it masked: a tracking URI may carry a password, and
    MLflow repeats the URI in its error messages."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
