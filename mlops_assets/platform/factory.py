"""One factory: a model project's declaration in, its `Definitions` out.

Everything a project has is built here from its `ModelProject`: the six flow assets with their
blocking contract checks, the monitoring assets (ledger, drift, batch predictions, online performance), a refresh job, a
daily schedule, a new-data sensor on its own landing folder, drift retraining, approval and rollback.
Keys are `<project>/<asset>` and every asset is in the group `<project>`, set here with explicit
`ins`, so that one project's lineage stands apart and a selection by group runs one project.
"""

from collections.abc import Callable

from dagster import Definitions

from mlops_assets.platform.assets.data import build_data_assets
from mlops_assets.platform.assets.deployment import build_deployment_asset
from mlops_assets.platform.assets.evaluation import build_evaluation_asset
from mlops_assets.platform.assets.ledger import build_ledger_asset
from mlops_assets.platform.assets.monitoring import build_monitoring_assets
from mlops_assets.platform.assets.online import build_online_performance_asset
from mlops_assets.platform.assets.training import build_training_asset
from mlops_assets.platform.automation import PLATFORM_JOBS, PLATFORM_SENSORS, build_project_automation
from mlops_assets.platform.checks import build_project_checks
from mlops_assets.platform.project import ModelProject
from mlops_assets.settings import Settings


def build_project_assets(project: ModelProject) -> list:
    """The project's assets and checks, upstream first."""
    return [
        *build_data_assets(project),
        build_training_asset(project),
        build_evaluation_asset(project),
        build_deployment_asset(project),
        build_ledger_asset(project),
        *build_monitoring_assets(project),
        build_online_performance_asset(project),
    ]


AssetsTransform = Callable[[list], list]


def build_project_definitions(project: ModelProject, settings: Settings, link_code: AssetsTransform = list) -> Definitions:
    return Definitions.merge(
        Definitions(assets=link_code(build_project_assets(project)), asset_checks=build_project_checks(project)),
        build_project_automation(project.name, project.model_name, settings),
    )


def build_platform_definitions(projects: list[ModelProject], settings: Settings, link_code: AssetsTransform = list) -> Definitions:
    """Every project's definitions, the jobs and sensors of the whole platform, and the shared resources;
    `link_code` may attach code references to each project's assets."""
    from dagster import in_process_executor

    from mlops_assets.platform.resources import build_resources

    return Definitions.merge(
        *[build_project_definitions(project, settings, link_code) for project in projects],
        Definitions(
            jobs=PLATFORM_JOBS,
            sensors=PLATFORM_SENSORS,
            resources=build_resources(settings, projects),
            # One process per run: the steps share one SparkSession and pay the imports once (see README).
            executor=in_process_executor,
        ),
    )
