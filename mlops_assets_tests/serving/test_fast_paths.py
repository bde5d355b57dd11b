"""Every project's pipeline, whichever variant wins, is served without pandas and predicts exactly
what MLflow's pyfunc predicts, on every path, on the whole reference data of its project.

Each declared variant of each classifier is trained and logged the way the pipeline logs it
(`serving.reference_model`, no Dagster run), so the estimators validation may choose tomorrow are
held to the same bar as the ones it chose today. Probabilities are compared to the bit, not within a
tolerance: every path performs scikit-learn's own floating-point operations in scikit-learn's order
(the same BLAS product on the same shapes, the trees' float32 comparisons, sums added left to right),
so any difference is a bug rather than rounding.
"""

import numpy as np
import pandas as pd
import pytest

from mlops_assets_tests.conftest import PROJECTS
from serving.predictors import PANDAS, ServedPredictor
from serving.reference_model import ReferenceRegistry, train_and_register
from serving.served_project import RowLayout

from .test_every_project import typed_rows

# The pandas-free path each estimator the projects declare is served by.
OWN_PATH = {
    "LogisticRegression": "linear",
    "LinearDiscriminantAnalysis": "linear",
    "GradientBoostingClassifier": "compiled-trees",
    "RandomForestClassifier": "compiled-trees",
}
CLASSIFIER_VARIANTS = [(project, variant.name) for project in ("churn", "iris") for variant in PROJECTS[project].variants]
BATCH_SIZES = (1, 2, 17, 128, 129, 500)


@pytest.fixture(scope="module")
def classifier_registry(tmp_path_factory: pytest.TempPathFactory) -> ReferenceRegistry:
    return ReferenceRegistry.create(tmp_path_factory.mktemp("fast_paths") / "mlflow")


@pytest.fixture(scope="module")
def reference_rows() -> dict[str, pd.DataFrame]:
    return {project: typed_rows(project) for project in ("churn", "iris")}


@pytest.fixture(scope="module")
def logged_variant(classifier_registry, reference_rows):  # noqa: ANN201
    """pyfunc's model of a variant, trained on its project's reference rows and logged as the pipeline
    logs it; loaded afresh at each call (a test may alter its copy), trained once."""
    import mlflow.pyfunc

    versions: dict[tuple[str, str], str] = {}

    def load(project: str, variant: str):  # noqa: ANN202
        declared = PROJECTS[project]
        model_name = f"{project}_{variant}"
        if (project, variant) not in versions:
            params = next(candidate.params for candidate in declared.variants if candidate.name == variant)
            versions[project, variant] = train_and_register(
                classifier_registry, reference_rows[project], model_name=model_name, params=params, project=declared
            )
        location = classifier_registry.client.get_model_version_download_uri(model_name, versions[project, variant])
        return mlflow.pyfunc.load_model(location)

    return load


def columns_of(frame: pd.DataFrame, layout: RowLayout) -> dict[str, np.ndarray]:
    return {name: layout.column_of(frame, name) for name in layout.features}


def head(columns: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    return {name: values[:rows] for name, values in columns.items()}


@pytest.mark.parametrize(("project", "variant"), CLASSIFIER_VARIANTS)
def test_every_classifier_path_equals_pyfunc_on_the_whole_reference_data(
    logged_variant, reference_rows, project: str, variant: str
) -> None:
    pyfunc_model = logged_variant(project, variant)
    pipeline = pyfunc_model.get_raw_model()
    layout = RowLayout.of(PROJECTS[project].domain)
    frame = reference_rows[project][list(layout.features)]
    expected_labels = np.asarray(pyfunc_model.predict(frame)).astype(str)
    expected_probabilities = pipeline.predict_proba(frame)
    predictor = ServedPredictor(pipeline, layout, classifier=True)
    own_path = OWN_PATH[type(pipeline.steps[-1][1]).__name__]

    paths = predictor.predict_every_path(columns_of(frame, layout))

    assert set(paths) == {PANDAS, "sklearn", own_path}
    assert predictor.name == own_path
    for path, predictions in paths.items():
        np.testing.assert_array_equal(predictions.values.astype(str), expected_labels, err_msg=path)
        np.testing.assert_array_equal(predictions.probabilities, expected_probabilities, err_msg=path)


@pytest.mark.parametrize(("project", "variant"), CLASSIFIER_VARIANTS)
def test_served_classifier_predictions_equal_pyfunc_at_every_batch_size(
    logged_variant, reference_rows, project: str, variant: str
) -> None:
    """Each request is answered as pyfunc answers that request, to the bit, whichever path its size takes.

    Against pyfunc on the whole data a linear model may differ by an ulp on a small batch: BLAS picks
    its kernel by shape, and scikit-learn itself (through pandas or not) does the same there."""
    pyfunc_model = logged_variant(project, variant)
    pipeline = pyfunc_model.get_raw_model()
    layout = RowLayout.of(PROJECTS[project].domain)
    frame = reference_rows[project][list(layout.features)]
    labels_on_whole_data = np.asarray(pyfunc_model.predict(frame)).astype(str)
    probabilities_on_whole_data = pipeline.predict_proba(frame)
    predictor = ServedPredictor(pipeline, layout, classifier=True)
    columns = columns_of(frame, layout)

    for size in BATCH_SIZES:
        predictions = predictor.predict(head(columns, size))
        request = frame.head(size)
        np.testing.assert_array_equal(predictions.values.astype(str), np.asarray(pyfunc_model.predict(request)).astype(str))
        np.testing.assert_array_equal(predictions.probabilities, pipeline.predict_proba(request), err_msg=f"{size} rows")
        np.testing.assert_array_equal(predictions.values.astype(str), labels_on_whole_data[:size], err_msg=f"{size} rows")
        np.testing.assert_allclose(predictions.probabilities, probabilities_on_whole_data[:size], rtol=0, atol=1e-15)


def test_every_housing_path_equals_pyfunc_on_the_whole_reference_data(registry) -> None:
    import mlflow.pyfunc

    pyfunc_model = mlflow.pyfunc.load_model(registry.reference.client.get_model_version_download_uri(*registry.sources["v1"]))
    layout = RowLayout.of(PROJECTS["housing"].domain)
    frame = registry.frame[list(layout.features)]
    expected = np.asarray(pyfunc_model.predict(frame), dtype=np.float64)
    predictor = ServedPredictor(pyfunc_model.get_raw_model(), layout, classifier=False)

    paths = predictor.predict_every_path(columns_of(frame, layout))

    assert set(paths) == {PANDAS, "sklearn", "compiled-forest"}
    assert predictor.name == "compiled-forest"
    for path, predictions in paths.items():
        np.testing.assert_array_equal(predictions.values, expected, err_msg=path)
        assert predictions.probabilities is None


def test_a_fast_path_whose_probabilities_differ_is_dropped_for_pandas(logged_variant, reference_rows) -> None:
    """A classifier's smoke test compares labels; one rounding off in a probability must still not be served."""
    pyfunc_model = logged_variant("iris", "fisher_discriminant")
    layout = RowLayout.of(PROJECTS["iris"].domain)
    pipeline = pyfunc_model.get_raw_model()
    predictor = ServedPredictor(pipeline, layout, classifier=True)
    discriminant = pipeline.steps[-1][1]
    # After the predictor compiled it: the pandas path sees the nudged intercept, the linear path the original.
    discriminant.intercept_ = np.nextafter(discriminant.intercept_, np.inf)

    paths = predictor.predict_every_path(columns_of(reference_rows["iris"], layout))

    assert set(paths) == {PANDAS}
    assert predictor.name == PANDAS
