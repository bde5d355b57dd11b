"""Automation around the asset graph: the daily refresh, sensors (new data, drift, approval, run
failures), declarative automation, the rollback job and the jobs they launch.

Nothing here imports the asset modules (they import it): jobs select assets by key.
"""

from dagster import ScheduleDefinition

from mlops_assets.automation.alerts import AlertWebhook, run_failure_alert
from mlops_assets.automation.approval import ApprovalPolicy, approval_sensor
from mlops_assets.automation.declarative import AFTER_PARENTS, automation_condition_sensor
from mlops_assets.automation.drift import DriftPolicy
from mlops_assets.automation.jobs import ASSET_JOBS
from mlops_assets.automation.new_data import LandingFolder, new_data_sensor
from mlops_assets.automation.retraining import drift_retraining_sensor
from mlops_assets.automation.rollback import rollback_production_job
from mlops_assets.automation.schedules import build_refresh_schedule
from mlops_assets.settings import Settings

AUTOMATION_JOBS = [*ASSET_JOBS, rollback_production_job]
AUTOMATION_SENSORS = [
    new_data_sensor,
    drift_retraining_sensor,
    approval_sensor,
    run_failure_alert,
    automation_condition_sensor,
]


def build_schedules(settings: Settings) -> list[ScheduleDefinition]:
    return [build_refresh_schedule(settings)]


__all__ = [
    "AFTER_PARENTS",
    "AUTOMATION_JOBS",
    "AUTOMATION_SENSORS",
    "AlertWebhook",
    "ApprovalPolicy",
    "DriftPolicy",
    "LandingFolder",
    "build_schedules",
]
