"""The code location: every model project's assets, checks, jobs, schedules and sensors, built by the
platform's factory from the projects' declarations, with the resources they share."""

import warnings
from pathlib import Path

from dagster import (
    AnchorBasedFilePathMapping,
    BetaWarning,
    link_code_references_to_git,
    with_source_code_references,
)

from mlops_assets.platform.automation import ALL_PROJECTS_JOB
from mlops_assets.platform.factory import build_platform_definitions
from mlops_assets.projects import load_projects
from mlops_assets.settings import Settings

settings = Settings.from_env()
PROJECTS = load_projects()


def linked_to_code(assets: list) -> list:
    """Each asset links to the code that computes it: the local file, or its page on the git host."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # code references are beta; every process would say so
        assets = with_source_code_references(assets)
        if settings.code_git_url:
            assets = link_code_references_to_git(
                assets,
                git_url=settings.code_git_url,
                git_branch=settings.code_git_branch,
                file_path_mapping=AnchorBasedFilePathMapping(
                    local_file_anchor=Path(__file__).resolve().parents[1], file_anchor_path_in_repository=""
                ),
            )
    return assets


defs = build_platform_definitions(PROJECTS, settings, link_code=linked_to_code)

__all__ = ["ALL_PROJECTS_JOB", "PROJECTS", "defs"]
