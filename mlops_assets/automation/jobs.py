"""The asset jobs that schedules and sensors launch. Assets are named by key, not imported, so that the
automation package never imports the asset modules (which import it)."""

from dagster import AssetSelection, define_asset_job

REFRESH_JOB = "housing_refresh"
RETRAINING_JOB = "housing_retraining"
APPROVED_DEPLOYMENT_JOB = "approved_deployment"

housing_refresh_job = define_asset_job(
    REFRESH_JOB,
    selection=AssetSelection.all(),
    description=(
        "The whole graph in one run (one Spark session): ingest, clean, features, train, evaluate, deploy, "
        "then the deployment ledger, feature drift and batch predictions. Launched daily and for each new drop."
    ),
)

housing_retraining_job = define_asset_job(
    RETRAINING_JOB,
    selection=AssetSelection.assets("trained_model").downstream(),
    description="A new model on the newest certified features, through evaluation and the gate; launched by drift.",
)

approved_deployment_job = define_asset_job(
    APPROVED_DEPLOYMENT_JOB,
    selection=AssetSelection.assets("deployed_model").downstream(),
    description="The deployment decision again, once a person approved the candidate; launched by the approval sensor.",
)

ASSET_JOBS = [housing_refresh_job, housing_retraining_job, approved_deployment_job]
