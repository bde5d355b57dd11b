"""Each project's daily refresh and what `dagster dev` starts on its own."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from dagster import (
    AutomationConditionSensorDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    build_schedule_context,
)

from mlops_assets.platform.automation.schedules import SCHEDULED_FOR_TAG, build_refresh_schedule
from mlops_assets.definitions import PROJECTS, defs
from mlops_assets.settings import Settings
from mlops_assets_tests.conftest import instance_under


def test_the_daily_refresh_follows_the_configured_cron_and_time_zone(tmp_path: Path):
    settings = Settings.from_env(
        {"MLOPS_STATE_DIR": str(tmp_path), "MLOPS_SCHEDULE_CRON": "30 4 * * 1-5", "MLOPS_SCHEDULE_TIMEZONE": "Europe/Paris"}
    )
    schedule = build_refresh_schedule("housing", settings)
    tick = datetime(2026, 1, 14, 4, 30, tzinfo=ZoneInfo("Europe/Paris"))

    instance = instance_under(tmp_path / "dagster_home")
    try:
        with build_schedule_context(instance=instance, scheduled_execution_time=tick) as context:
            result = schedule.evaluate_tick(context)
    finally:
        instance.dispose()

    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 4 * * 1-5", "Europe/Paris")
    assert schedule.job_name == "housing_refresh"
    assert len(result.run_requests) == 1
    assert result.run_requests[0].tags[SCHEDULED_FOR_TAG] == "2026-01-14T04:30:00+01:00"


def test_each_refresh_job_is_its_projects_whole_graph_and_nothing_else():
    graph = defs.resolve_asset_graph()
    for project in PROJECTS:
        job = defs.resolve_job_def(f"{project.name}_refresh")
        own = {key for key in graph.get_all_asset_keys() if key.path[0] == project.name}
        assert set(job.asset_layer.executable_asset_keys) == own
        assert len(own) == 10
        assert {graph.get(key).group_name for key in own} == {project.name}
    every_asset = set(graph.get_all_asset_keys())
    assert set(defs.resolve_job_def("all_projects_refresh").asset_layer.executable_asset_keys) == every_asset


def test_dagster_dev_starts_the_schedule_and_every_sensor_on_its_own():
    settings = Settings.from_env()
    for project in PROJECTS:
        schedule = defs.resolve_schedule_def(f"{project.name}_daily_refresh")
        assert schedule.default_status == DefaultScheduleStatus.RUNNING
        assert (schedule.cron_schedule, schedule.execution_timezone) == (settings.schedule_cron, settings.schedule_timezone)

    sensors = {sensor.name: sensor for sensor in defs.get_repository_def().sensor_defs}
    per_project = {f"{project.name}_{kind}" for project in PROJECTS for kind in ("new_data", "drift_retraining", "approval", "live_rollback")}
    assert set(sensors) == {*per_project, "run_failure_alert", "mlops_automation"}
    assert {name: sensor.default_status for name, sensor in sensors.items()} == dict.fromkeys(sensors, DefaultSensorStatus.RUNNING)

    # Every asset with an automation condition is evaluated by the running sensor.
    automation = sensors["mlops_automation"]
    assert isinstance(automation, AutomationConditionSensorDefinition)
    graph = defs.resolve_asset_graph()
    conditioned = {key for key in graph.get_all_asset_keys() if graph.get(key).automation_condition is not None}
    assert {key.to_user_string() for key in conditioned} == {
        f"{project.name}/{asset}"
        for project in PROJECTS
        for asset in ("deployment_ledger", "feature_drift", "batch_predictions", "online_performance")
    }
    assert conditioned <= automation.asset_selection.resolve(graph)
