"""The daily refresh of the whole graph, on by default: `dagster dev` alone keeps the model fresh."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule

from mlops_assets.automation.jobs import housing_refresh_job
from mlops_assets.settings import Settings

SCHEDULED_FOR_TAG = "mlops/scheduled_for"


def build_refresh_schedule(settings: Settings) -> ScheduleDefinition:
    @schedule(
        name="daily_housing_refresh",
        job=housing_refresh_job,
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            f"The whole graph from the configured source, on '{settings.schedule_cron}' ({settings.schedule_timezone}); "
            "MLOPS_SCHEDULE_CRON and MLOPS_SCHEDULE_TIMEZONE change it."
        ),
    )
    def daily_housing_refresh(context: ScheduleEvaluationContext) -> RunRequest:
        # The tick's own time, in the schedule's zone: the deployment ledger says which refresh moved production.
        return RunRequest(tags={SCHEDULED_FOR_TAG: context.scheduled_execution_time.isoformat()})

    return daily_housing_refresh
