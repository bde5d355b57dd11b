"""Automation around each project's graph: the daily refresh, sensors (new data, drift, approval), the
rollback job and the jobs they launch; and, for the whole platform, declarative automation and run
failure alerts.

Nothing here imports the asset modules (they import it): jobs and sensors name assets by key.
"""

from dagster import Definitions

from mlops_assets.platform.automation.alerts import AlertWebhook, run_failure_alert
from mlops_assets.platform.automation.approval import ApprovalPolicy, build_approval_sensor
from mlops_assets.platform.automation.declarative import AFTER_PARENTS, automation_condition_sensor
from mlops_assets.platform.automation.drift import DriftPolicy
from mlops_assets.platform.automation.live_evidence import LiveEvidencePolicy, build_live_rollback_sensor
from mlops_assets.platform.automation.jobs import ALL_PROJECTS_JOB, all_projects_job, build_project_jobs
from mlops_assets.platform.automation.new_data import LandingFolder, build_new_data_sensor
from mlops_assets.platform.automation.retraining import build_drift_retraining_sensor
from mlops_assets.platform.automation.rollback import build_rollback_job
from mlops_assets.platform.automation.schedules import build_refresh_schedule
from mlops_assets.platform.automation.traffic import ServingTraffic, build_traffic_job
from mlops_assets.settings import Settings


def build_project_automation(project_name: str, model_name: str, settings: Settings) -> Definitions:
    """A project's jobs, daily schedule, new-data, drift-retraining, approval and live-rollback sensors, and rollback and traffic jobs."""
    return Definitions(
        jobs=[*build_project_jobs(project_name), build_rollback_job(project_name, model_name), build_traffic_job(project_name)],
        schedules=[build_refresh_schedule(project_name, settings)],
        sensors=[
            build_new_data_sensor(project_name),
            build_drift_retraining_sensor(project_name),
            build_approval_sensor(project_name, model_name),
            build_live_rollback_sensor(project_name),
        ],
    )


PLATFORM_JOBS = [all_projects_job]
PLATFORM_SENSORS = [run_failure_alert, automation_condition_sensor]

__all__ = [
    "AFTER_PARENTS",
    "ALL_PROJECTS_JOB",
    "PLATFORM_JOBS",
    "PLATFORM_SENSORS",
    "AlertWebhook",
    "ApprovalPolicy",
    "DriftPolicy",
    "LandingFolder",
    "LiveEvidencePolicy",
    "ServingTraffic",
    "build_project_automation",
]
