"""Wine cultivars (multiclass): the whole declaration of a project that needs no rule of its own.

The data is scikit-learn's copy of the UCI wine data, written to a CSV by `write_wine_csv`; the
platform's generic cleaning and contracts are built from the domain below.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_assets.ml.tasks import MulticlassTask
from mlops_assets.platform.checks.rules import domain_contracts
from mlops_assets.platform.project import DataSource, Domain, GatePolicy, ModelProject, Variant
from mlops_assets.platform.transforms import domain_cleaning, split_only

FEATURES = (
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
    "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315_of_diluted_wines", "proline",
)
TARGET = "cultivar"
DOMAIN = Domain(target=TARGET, numeric_features=FEATURES, categories={}, target_classes=("class_0", "class_1", "class_2"))
TASK = MulticlassTask()
SOURCE_COLUMNS = (*FEATURES, TARGET)


def write_wine_csv(path: Path) -> Path:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame.columns = [*FEATURES, TARGET]
    frame[TARGET] = frame[TARGET].map(lambda label: f"class_{label}")
    frame.to_csv(path, index=False)
    return path


def build_pipeline(params: Mapping[str, Any]):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=float(params["C"]), max_iter=1000))


PROJECT = ModelProject(
    name="wine",
    description="The cultivar of an Italian wine from 13 chemical measurements.",
    model_name="wine_cultivar",
    task=TASK,
    # No public copy is downloaded: MLOPS_WINE_SOURCE names the CSV.
    source=DataSource(url="", sha256="", file_name="wine.csv"),
    domain=DOMAIN,
    contracts=domain_contracts("wine", DOMAIN, TASK, source_columns=SOURCE_COLUMNS, min_rows=100),
    clean=domain_cleaning(DOMAIN, SOURCE_COLUMNS),
    with_features=split_only,
    build_model=build_pipeline,
    variants=(Variant("regularised", {"C": 0.1}), Variant("loose", {"C": 1.0})),
    gate=GatePolicy(bound=0.8, bound_source="well below what a linear model scores on these measurements"),
)
