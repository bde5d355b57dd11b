"""California housing: the median house value of a block group, from the 1990 census (regression)."""

from mlops_assets.platform.project import DataSource, GatePolicy, ModelProject
from mlops_assets.projects.housing import model, transforms
from mlops_assets.projects.housing.contracts import CONTRACTS, DOMAIN, TASK
from mlops_assets.projects.housing.domain import CATEGORY

PROJECT = ModelProject(
    name="housing",
    description="Median house value of a California block group (1990 census), in USD.",
    model_name="housing_price",
    task=TASK,
    source=DataSource(
        url="https://raw.githubusercontent.com/ageron/handson-ml2/master/datasets/housing/housing.csv",
        sha256="8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e",
        file_name="housing.csv",
        legacy_prefixes=("MLOPS_DATA",),
    ),
    domain=DOMAIN,
    contracts=CONTRACTS,
    clean=transforms.clean,
    with_features=transforms.with_features,
    build_model=model.build_pipeline,
    variants=model.VARIANTS,
    gate=GatePolicy(
        # The final test RMSE of the published reference solution for this dataset (Geron, Hands-On
        # Machine Learning, 2nd edition, chapter 2): a new model must at least beat it.
        bound=47_730.0,
        max_regression=0.01,
        slice_tolerance=0.05,
        bound_source="the published reference solution (Geron, Hands-On ML, ch. 2)",
    ),
    slice_column=CATEGORY,
    model_code=model.MODEL_CODE,
    skops_trusted_types=model.SKOPS_TRUSTED_TYPES,
)
