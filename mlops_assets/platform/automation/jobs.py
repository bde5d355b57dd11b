"""The asset jobs of a project, which its schedule and sensors launch, and the job of every project."""

from dagster import AssetSelection, define_asset_job

from mlops_assets.platform.assets.common import ProjectKeys

ALL_PROJECTS_JOB = "all_projects_refresh"


def refresh_job_name(project_name: str) -> str:
    return f"{project_name}_refresh"


def retraining_job_name(project_name: str) -> str:
    return f"{project_name}_retraining"


def approved_deployment_job_name(project_name: str) -> str:
    return f"{project_name}_approved_deployment"


def build_project_jobs(project_name: str) -> list:
    keys = ProjectKeys(project_name)
    return [
        define_asset_job(
            refresh_job_name(project_name),
            selection=AssetSelection.groups(project_name),
            description=(
                f"The whole {project_name} graph in one run (one Spark session): ingest, clean, features, train, evaluate, "
                "deploy, then the deployment ledger, feature drift and batch predictions. Launched daily and for each new drop."
            ),
        ),
        define_asset_job(
            retraining_job_name(project_name),
            selection=AssetSelection.assets(keys.trained_model).downstream(),
            description="A new model on the newest certified features, through evaluation and the gate; launched by drift.",
        ),
        define_asset_job(
            approved_deployment_job_name(project_name),
            selection=AssetSelection.assets(keys.deployed_model).downstream(),
            description="The deployment decision again, once a person approved the candidate; launched by the approval sensor.",
        ),
    ]


all_projects_job = define_asset_job(
    ALL_PROJECTS_JOB,
    selection=AssetSelection.all(),
    description="Every project's whole graph in one run (one Spark session): what `mlops-assets up` materializes.",
)
