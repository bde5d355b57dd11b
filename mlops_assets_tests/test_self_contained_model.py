"""A registered model loads in a virtualenv built from nothing but its own requirements.txt: the project
module its feature step calls travels with it, the rest of the project (Dagster, Spark) does not."""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model, infer_signature
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlops_assets.ml.artifacts import log_sklearn_model, model_code_paths
from mlops_assets_tests.fixtures import toy_features

TOY_FEATURES = toy_features.__name__
TRUSTED_TYPES = (
    f"{TOY_FEATURES}.add_ratio",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
EXAMPLE_ROWS = 20
INSTALL_TIMEOUT_SECONDS = 300
LOAD_TIMEOUT_SECONDS = 180

# Runs in the clean virtualenv: loads the model the way serving does and saves its predictions bit for bit.
LOAD_AND_PREDICT = """
import importlib.util
import sys

import mlflow.pyfunc
import numpy as np
from mlflow.models import Model

model_dir, predictions_file = sys.argv[1:]
assert importlib.util.find_spec("mlops_assets_tests") is None, "the project leaks into the clean environment"
example = Model.load(model_dir).load_input_example(model_dir)
np.save(predictions_file, mlflow.pyfunc.load_model(model_dir).predict(example))
"""


def test_the_shipped_code_is_the_named_module_under_empty_parent_packages(tmp_path: Path):
    code_paths = model_code_paths([TOY_FEATURES], into=tmp_path)

    assert code_paths == [str(tmp_path / "mlops_assets_tests")]
    shipped = {path.relative_to(tmp_path).as_posix(): path.read_bytes() for path in tmp_path.rglob("*.py")}
    assert shipped == {
        "mlops_assets_tests/__init__.py": b"",
        "mlops_assets_tests/fixtures/__init__.py": b"",
        "mlops_assets_tests/fixtures/toy_features.py": Path(toy_features.__file__).read_bytes(),
    }


def test_a_module_that_does_not_exist_is_refused_by_name(tmp_path: Path):
    with pytest.raises(ValueError, match="mlops_assets_tests.fixtures.no_such_module"):
        model_code_paths(["mlops_assets_tests.fixtures.no_such_module"], into=tmp_path)


def test_a_registered_version_predicts_in_a_virtualenv_built_from_its_requirements_alone(
    self_contained_model: Path, clean_python: Path, toy_pipeline: Pipeline, tmp_path: Path
):
    predictions_file = tmp_path / "predictions.npy"

    loaded = load_and_predict(clean_python, self_contained_model, predictions_file)

    assert loaded.returncode == 0, loaded.stderr
    in_process = toy_pipeline.predict(stored_example(self_contained_model))
    in_clean_virtualenv = np.load(predictions_file)
    assert in_clean_virtualenv.dtype == in_process.dtype
    assert in_clean_virtualenv.tobytes() == in_process.tobytes()


def test_without_its_code_the_same_model_fails_there_for_want_of_the_project_module(
    model_without_code: Path, self_contained_model: Path, clean_python: Path, tmp_path: Path
):
    # Same requirements, same virtualenv: only the shipped code differs, so it is what the other test proves.
    assert requirements_of(model_without_code) == requirements_of(self_contained_model)

    loaded = load_and_predict(clean_python, model_without_code, tmp_path / "predictions.npy")

    assert loaded.returncode != 0
    assert "ModuleNotFoundError: No module named 'mlops_assets_tests'" in loaded.stderr


def test_a_housing_model_logged_by_the_platform_predicts_there_too(
    clean_python: Path, experiment_id: str, reference_csv: Path, tmp_path: Path
):
    from mlops_assets.platform.model_logging import log_project_model
    from mlops_assets.projects.housing.model import Hyperparameters, build_pipeline
    from mlops_assets.projects.housing.project import PROJECT

    # The pipeline whose feature step lives in the project's package: what failed to load before it shipped.
    frame = pd.read_csv(reference_csv).head(2_000)
    features = frame[list(PROJECT.domain.raw_features)]
    pipeline = build_pipeline(Hyperparameters(max_iter=5)).fit(features, frame[PROJECT.domain.target])
    with mlflow.start_run(experiment_id=experiment_id):
        info = log_project_model(PROJECT, pipeline, features, registered_model_name="housing-self-contained")
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/housing-self-contained/{info.registered_model_version}", dst_path=str(tmp_path / "model")
        )
    )

    loaded = load_and_predict(clean_python, model_dir, tmp_path / "predictions.npy")

    assert loaded.returncode == 0, loaded.stderr
    assert np.load(tmp_path / "predictions.npy").tobytes() == pipeline.predict(stored_example(model_dir)).tobytes()


def test_loading_where_the_real_package_is_imported_keeps_using_the_real_module(
    self_contained_model: Path, toy_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
):
    # MLflow rebinds sys.path to put the model's code first; the monkeypatch puts this session's back afterwards.
    monkeypatch.setattr(sys, "path", list(sys.path))
    real_module_file = toy_features.__file__

    loaded = mlflow.sklearn.load_model(str(self_contained_model))

    assert sys.path[0] == str(self_contained_model / "code")
    assert loaded.named_steps["features"].func is toy_features.add_ratio
    assert sys.modules[TOY_FEATURES].__file__ == real_module_file
    example = stored_example(self_contained_model)
    np.testing.assert_array_equal(loaded.predict(example), toy_pipeline.predict(example))


@pytest.fixture(scope="module")
def toy_pipeline() -> Pipeline:
    diabetes = load_diabetes(as_frame=True, scaled=False)
    pipeline = Pipeline(
        [
            ("features", FunctionTransformer(toy_features.add_ratio, validate=False)),
            ("regressor", HistGradientBoostingRegressor(max_iter=20, random_state=0)),
        ]
    )
    return pipeline.fit(diabetes.data, diabetes.target)


@pytest.fixture(scope="module")
def example() -> pd.DataFrame:
    return load_diabetes(as_frame=True, scaled=False).data.head(EXAMPLE_ROWS)


@pytest.fixture(scope="module")
def experiment_id(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite store of its own, artifacts beside it; the URIs other tests may have set come back afterwards."""
    root = tmp_path_factory.mktemp("self_contained_store")
    previous_tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    previous_registry_uri = os.environ.get("MLFLOW_REGISTRY_URI")
    store_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(store_uri)
    mlflow.set_registry_uri(store_uri)
    try:
        yield mlflow.create_experiment("self-contained-models", artifact_location=(root / "artifacts").as_uri())
    finally:
        mlflow.set_tracking_uri(previous_tracking_uri)
        mlflow.set_registry_uri(previous_registry_uri)
        if previous_registry_uri is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)


def registered_and_downloaded(
    name: str,
    code_modules: Sequence[str],
    *,
    pipeline: Pipeline,
    example: pd.DataFrame,
    experiment_id: str,
    into: Path,
) -> Path:
    with mlflow.start_run(experiment_id=experiment_id):
        info = log_sklearn_model(
            pipeline,
            example,
            signature=infer_signature(example, pipeline.predict(example)),
            registered_model_name=name,
            code_modules=code_modules,
            skops_trusted_types=TRUSTED_TYPES,
        )
    # From the registry, the way a deployment gets it.
    uri = f"models:/{name}/{info.registered_model_version}"
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into)))


@pytest.fixture(scope="module")
def self_contained_model(toy_pipeline, example, experiment_id, tmp_path_factory) -> Path:
    return registered_and_downloaded(
        "toy-self-contained",
        [TOY_FEATURES],
        pipeline=toy_pipeline,
        example=example,
        experiment_id=experiment_id,
        into=tmp_path_factory.mktemp("self_contained_model"),
    )


@pytest.fixture(scope="module")
def model_without_code(toy_pipeline, example, experiment_id, tmp_path_factory) -> Path:
    return registered_and_downloaded(
        "toy-without-code",
        [],
        pipeline=toy_pipeline,
        example=example,
        experiment_id=experiment_id,
        into=tmp_path_factory.mktemp("model_without_code"),
    )


@pytest.fixture(scope="module")
def clean_python(self_contained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtualenv holding the model's requirements.txt and nothing else."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to build the clean virtualenv: run the tests with `uv run pytest`")
    root = tmp_path_factory.mktemp("clean_virtualenv")
    venv = root / "venv"
    # Outside the project folder and without VIRTUAL_ENV, uv sees neither the project nor its environment.
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    python = venv / "bin" / "python"
    requirements = self_contained_model / "requirements.txt"
    for command in (
        [uv, "venv", str(venv), "--python", sys.executable, "--quiet"],
        [uv, "pip", "install", "--python", str(python), "--requirements", str(requirements), "--quiet"],
    ):
        built = subprocess.run(
            command, cwd=root, env=environment, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS
        )
        assert built.returncode == 0, built.stderr
    return python


def load_and_predict(python: Path, model_dir: Path, predictions_file: Path) -> subprocess.CompletedProcess:
    # Away from the repository and with no PYTHONPATH, only the virtualenv and the model's own code are importable.
    # The virtualenv is throwaway, so the bytecode the first load writes there may speed up the next one.
    hidden = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"}
    environment = {key: value for key, value in os.environ.items() if key not in hidden}
    return subprocess.run(
        [str(python), "-c", LOAD_AND_PREDICT, str(model_dir), str(predictions_file)],
        cwd=predictions_file.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_SECONDS,
    )


def stored_example(model_dir: Path) -> pd.DataFrame:
    return Model.load(str(model_dir)).load_input_example(str(model_dir))


def requirements_of(model_dir: Path) -> str:
    return (model_dir / "requirements.txt").read_text()
