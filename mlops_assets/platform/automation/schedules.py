"""The daily refresh of a project's whole graph, on by default: `dagster dev` alone keeps its model fresh."""

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from mlops_assets.platform.automation.jobs import refresh_job_name
from mlops_assets.settings import Settings

SCHEDULED_FOR_TAG = "mlops/scheduled_for"


def build_refresh_schedule(project_name: str, settings: Settings) -> ScheduleDefinition:
    @schedule(
        name=f"{project_name}_daily_refresh",
        job_name=refresh_job_name(project_name),
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            f"The whole {project_name} graph from its configured source, on '{settings.schedule_cron}' ({settings.schedule_timezone}); "
            "MLOPS_SCHEDULE_CRON and MLOPS_SCHEDULE_TIMEZONE change it."
        ),
    )
    def daily_refresh(context: ScheduleEvaluationContext) -> RunRequest:
        # The tick's own time, in the schedule's zone: the deployment ledger says which refresh moved production.
        return RunRequest(tags={SCHEDULED_FOR_TAG: context.scheduled_execution_time.isoformat()})

    return daily_refresh
