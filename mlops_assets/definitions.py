"""The code location: every asset, check, resource and job of mlops-assets, assembled from settings."""

import warnings
from pathlib import Path

from dagster import (
    AnchorBasedFilePathMapping,
    AssetSelection,
    BetaWarning,
    Definitions,
    define_asset_job,
    in_process_executor,
    link_code_references_to_git,
    with_source_code_references,
)

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

# Each asset links to the function that computes it: the local file, or its page on the git host.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)  # code references are beta; every process would say so
    assets = with_source_code_references([*HOUSING_ASSETS, *MONITORING_ASSETS])
    if settings.code_git_url:
        assets = link_code_references_to_git(
            assets,
            git_url=settings.code_git_url,
            git_branch=settings.code_git_branch,
            file_path_mapping=AnchorBasedFilePathMapping(
                local_file_anchor=Path(__file__).resolve().parents[1], file_anchor_path_in_repository=""
            ),
        )

defs = Definitions(
    assets=assets,
    asset_checks=HOUSING_CHECKS,
    jobs=[housing_pipeline_job, *AUTOMATION_JOBS],
    schedules=build_schedules(settings),
    sensors=AUTOMATION_SENSORS,
    resources=build_resources(settings),
    # One process per run: the steps share one SparkSession and pay the imports once (see README).
    executor=in_process_executor,
)
