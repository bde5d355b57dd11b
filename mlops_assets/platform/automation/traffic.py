"""Live traffic from the launchpad: job `<project>_traffic` sets which version answers the serving
app's requests for a project (the champion alone, a canary share for the challenger, or the challenger
in the shadow), the same policy `PUT /admin/models/{project}/traffic` sets.

The policy is the serving app's file (`serving/traffic.py`), written atomically where every worker
follows it; the job needs no running server and no admin token.
"""

from typing import Literal

from dagster import Config, ConfigurableResource, JobDefinition, OpExecutionContext, job, op
from pydantic import Field


class ServingTraffic(ConfigurableResource):
    """Where the serving app keeps what outlives a restart (MLOPS_SERVING_STATE_DIR): each project's traffic policy."""

    state_dir: str


class TrafficConfig(Config):
    mode: Literal["off", "canary", "shadow"] = Field(
        description="off: the champion (`production`) answers alone; canary: the challenger answers canary_share of the "
        "requests (sticky per x-caller-key); shadow: the champion answers, the challenger scores the same rows aside."
    )
    canary_share: float = Field(default=0.1, ge=0, le=1, description="The challenger's share of requests in canary mode.")


def traffic_job_name(project_name: str) -> str:
    return f"{project_name}_traffic"


def build_traffic_job(project_name: str) -> JobDefinition:
    @op(name=f"{project_name}_set_traffic", description=f"Sets {project_name}'s traffic policy in the serving app.")
    def set_traffic(context: OpExecutionContext, config: TrafficConfig, serving_traffic: ServingTraffic) -> None:
        from pathlib import Path

        from serving.traffic import write_policy

        policy = write_policy(Path(serving_traffic.state_dir), project_name, config.mode, config.canary_share)
        context.log.info(f"{project_name} traffic: {policy.mode} (canary share {policy.canary_share}), run {context.run_id}")

    @job(
        name=traffic_job_name(project_name),
        description=(
            f"Which version answers {project_name}'s requests: the champion alone, a canary share for the challenger, or the "
            "challenger in the shadow (config: mode, canary_share). Every serving worker follows it within a second."
        ),
        tags={"mlops/action": "traffic", "mlops/project": project_name},
    )
    def traffic() -> None:
        set_traffic()

    return traffic
