"""IBM Telco customer churn: will a customer leave this month (binary classification)."""

from mlops_assets.ml.tasks import CostMatrix
from mlops_assets.platform.project import DataSource, GatePolicy, ModelProject
from mlops_assets.platform.transforms import split_only
from mlops_assets.projects.churn import model, transforms
from mlops_assets.projects.churn.contracts import CONTRACTS, DOMAIN, TASK
from mlops_assets.projects.churn.domain import AVERAGE_MONTHLY_CHARGE, CONTRACT

RETENTION_OFFER_COST = 100.0
MONTHS_KEPT_BY_AN_OFFER = 12

PROJECT = ModelProject(
    name="churn",
    description="Whether a Telco customer churns (IBM's Telco Customer Churn sample), from their account and services.",
    model_name="telco_churn",
    task=TASK,
    source=DataSource(
        url="https://raw.githubusercontent.com/IBM/telco-customer-churn-on-icp4d/master/data/Telco-Customer-Churn.csv",
        sha256="16320c9c1ec72448db59aa0a26a0b95401046bef5d02fd3aeb906448e3055e91",
        file_name="telco_churn.csv",
    ),
    domain=DOMAIN,
    contracts=CONTRACTS,
    clean=transforms.clean,
    with_features=split_only,
    build_model=model.build_pipeline,
    variants=model.VARIANTS,
    gate=GatePolicy(
        bound=0.80,
        max_regression=0.01,
        slice_tolerance=0.05,
        bound_source=(
            "a few points below a plain logistic regression on this data (ROC AUC 0.84-0.85, in cross-validation "
            "and on the holdout): a sound retrain passes, a model that lost its key columns does not"
        ),
    ),
    slice_column=CONTRACT,
    # Against making no offer: a churner who is made the offer is assumed to stay a year at the average
    # monthly charge, less the offer; an offer to a customer who would have stayed is its cost wasted;
    # no offer changes nothing. Every offer is assumed to work: a real take-up rate scales the first value down.
    costs=CostMatrix(
        true_positive=MONTHS_KEPT_BY_AN_OFFER * AVERAGE_MONTHLY_CHARGE - RETENTION_OFFER_COST,
        false_positive=-RETENTION_OFFER_COST,
        false_negative=0.0,
        true_negative=0.0,
    ),
    model_code=model.MODEL_CODE,
    skops_trusted_types=model.SKOPS_TRUSTED_TYPES,
)
