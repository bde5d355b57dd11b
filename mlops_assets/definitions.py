"""The code location: every asset, check, resource and job of mlops-assets, assembled from settings."""

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from mlops_assets.assets import HOUSING_ASSETS, MONITORING_ASSETS
from mlops_assets.automation import AUTOMATION_JOBS, AUTOMATION_SENSORS, build_schedules
from mlops_assets.checks import HOUSING_CHECKS
from mlops_assets.resources import build_resources
from mlops_assets.settings import Settings

housing_pipeline_job = define_asset_job(
    "housing_pipeline",
    selection=AssetSelection.assets(*HOUSING_ASSETS),
    description="Every asset from the raw CSV to the production alias, with their checks.",
)

settings = Settings.from_env()

defs = Definitions(
    assets=[*HOUSING_ASSETS, *MONITORING_ASSETS],
    asset_checks=HOUSING_CHECKS,
    jobs=[housing_pipeline_job, *AUTOMATION_JOBS],
    schedules=build_schedules(settings),
    sensors=AUTOMATION_SENSORS,
    resources=build_resources(settings),
    # One process per run: the steps share one SparkSession and pay the imports once (see README).
    executor=in_process_executor,
)
