"""Real models in a real MLflow registry (SQLite, temporary), served by the real app.

One registry per test session holds every artifact the tests need, logged once: two good versions
that predict differently, one whose artifact is corrupt and one that loads but cannot predict. Each
test registers copies of those under a model name of its own, so tests can move aliases freely
without seeing each other's models.
"""

import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from mlops_assets.projects.housing.domain import RAW_FEATURES, TARGET
from mlops_assets.projects.housing.model import Hyperparameters, build_pipeline
from mlops_assets_tests.processes import free_port, start
from serving.reference_model import ReferenceRegistry, train_and_register
from serving.settings import ServingSettings

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_CSV = Path(os.environ.get("MLOPS_REFERENCE_CSV", REPOSITORY_ROOT.parent / "shared" / "data" / "housing.csv"))
ALIAS = "production"
ADMIN_TOKEN = "test-admin-token"
SEED_RECORD = {
    "longitude": -122.23,
    "latitude": 37.88,
    "housing_median_age": 41.0,
    "total_rooms": 880.0,
    "total_bedrooms": 129.0,
    "population": 322.0,
    "households": 126.0,
    "median_income": 8.3252,
    "ocean_proximity": "NEAR BAY",
}
_model_names = itertools.count(1)


@dataclass
class RegisteredModel:
    """A model name of a test's own, with versions copied from the session's artifacts."""

    registry: "SessionRegistry"
    name: str
    versions: dict[str, str] = field(default_factory=dict)  # label -> registry version

    def move_alias(self, label: str) -> str:
        version = self.versions[label]
        self.registry.reference.move_alias(self.name, ALIAS, version)
        return version


@dataclass
class SessionRegistry:
    reference: ReferenceRegistry
    frame: pd.DataFrame
    sources: dict[str, tuple[str, str] | str]  # label -> (model, version) logged, or a bare artifact path

    @property
    def tracking_uri(self) -> str:
        return self.reference.tracking_uri

    def new_model(self, labels: Iterable[str], *, alias: str | None = None) -> RegisteredModel:
        model = RegisteredModel(self, f"housing_test_{next(_model_names)}")
        for label in labels:
            source = self.sources[label]
            if isinstance(source, str):
                model.versions[label] = self.reference.register_source(model.name, source, run_id=None, tags={"label": label})
            else:
                model.versions[label] = self.reference.copy_version(*source, model.name)
        if alias is not None:
            model.move_alias(alias)
        return model

    def expected(self, label: str, frame: pd.DataFrame) -> np.ndarray:
        """pyfunc's predictions of a version: the reference the app must equal."""
        model_name, version = self.sources[label]  # type: ignore[misc]
        location = self.reference.client.get_model_version_download_uri(model_name, version)
        return np.asarray(_pyfunc(location).predict(frame[list(RAW_FEATURES)]), dtype=np.float64)


_pyfunc_cache: dict[str, object] = {}


def _pyfunc(location: str):  # noqa: ANN202
    import mlflow.pyfunc

    if location not in _pyfunc_cache:
        _pyfunc_cache[location] = mlflow.pyfunc.load_model(location)
    return _pyfunc_cache[location]


@pytest.fixture(scope="session")
def reference_frame() -> pd.DataFrame:
    if not REFERENCE_CSV.is_file():
        pytest.fail(f"the reference data is missing at {REFERENCE_CSV}: set MLOPS_REFERENCE_CSV")
    return pd.read_csv(REFERENCE_CSV)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, reference_frame: pd.DataFrame) -> SessionRegistry:
    root = tmp_path_factory.mktemp("mlflow")
    reference = ReferenceRegistry.create(root)
    source_name = "housing_sources"
    sources: dict[str, tuple[str, str] | str] = {
        "v1": (
            source_name,
            train_and_register(reference, reference_frame, model_name=source_name, params=Hyperparameters(max_iter=30)),
        ),
        "v2": (
            source_name,
            train_and_register(
                reference, reference_frame, model_name=source_name, params=Hyperparameters(max_iter=30, learning_rate=0.3)
            ),
        ),
        "fails_to_predict": (source_name, _log_model_that_cannot_predict(reference, reference_frame, source_name)),
    }
    sources["broken_artifact"] = _corrupt_copy(reference, *sources["v1"], root / "broken_artifact")  # type: ignore[misc]
    return SessionRegistry(reference, reference_frame, sources)


def _log_model_that_cannot_predict(reference: ReferenceRegistry, frame: pd.DataFrame, model_name: str) -> str:
    """A pipeline that loads fine but whose regressor was fit on 5 columns: it fails on real input."""
    from mlops_assets.projects.housing.features import feature_matrix

    pipeline = build_pipeline(Hyperparameters(max_iter=5))
    features = frame[list(RAW_FEATURES)]
    pipeline.named_steps["features"].fit(features)
    matrix = feature_matrix({name: features[name].to_numpy() for name in RAW_FEATURES})
    pipeline.named_steps["regressor"].fit(matrix[:, :5], frame[TARGET].to_numpy())
    return reference.log_model(pipeline, frame, model_name=model_name, lineage={"dagster_run_id": "broken"}, holdout_metrics={})


def _corrupt_copy(reference: ReferenceRegistry, model_name: str, version: str, target: Path) -> str:
    """A copy of a good version's artifacts with the model file replaced by garbage."""
    location = urlparse(reference.client.get_model_version_download_uri(model_name, version))
    shutil.copytree(location.path if location.scheme == "file" else location.geturl(), target)
    (target / "model.skops").write_bytes(b"not a skops archive")
    return str(target)


# --- apps -----------------------------------------------------------------------------------------


@pytest.fixture
def settings_for(registry: SessionRegistry, tmp_path: Path) -> Callable[..., ServingSettings]:
    def make(model: RegisteredModel | str, **overrides: object) -> ServingSettings:
        name = model.name if isinstance(model, RegisteredModel) else model
        settings = ServingSettings(
            tracking_uri=registry.tracking_uri,
            model_name=name,
            model_alias=ALIAS,
            prediction_log_dir=tmp_path / "prediction_log",
            poll_seconds=0.2,
            prediction_log_flush_seconds=0.2,
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]

    return make


@contextmanager
def serving(settings: ServingSettings, *, wait_ready: bool = True) -> Iterator:
    """The app on a Litestar TestClient (lifespan, background polling and all)."""
    from litestar.testing import TestClient

    from serving.app import create_app

    with TestClient(app=create_app(settings), timeout=30) as client:
        if wait_ready:
            wait_for(lambda: client.get("/ready").status_code == 200, what="the app to load its first model")
        yield client


def start_serving_process(
    folder: Path, tracking_uri: str, *, workers: int, environment: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str, Path]:
    """`python -m serving` as deployed, in a process group of its own (its workers stop with it), on a
    free port, polling the registry and flushing the prediction log fast; returns the process, its
    base URL and its log. The caller stops it (`mlops_assets_tests.processes.stop`)."""
    port = free_port()
    server_environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_"))},
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLOPS_MODEL_ALIAS": ALIAS,
        "MLOPS_PREDICTION_LOG_DIR": str(folder / "prediction_log"),
        "MLOPS_PREDICTION_LOG_FLUSH_SECONDS": "0.3",
        "MLOPS_SERVING_POLL_SECONDS": "0.5",
        **(environment or {}),
    }
    log = folder / "server.log"
    command = [sys.executable, "-m", "serving", "--port", str(port), "--workers", str(workers)]
    return start(command, log=log, env=server_environment, cwd=REPOSITORY_ROOT), f"http://127.0.0.1:{port}", log


def wait_for(condition: Callable[[], object], *, timeout: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def served_v1(registry: SessionRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One app serving a good version, shared by the read-only tests of a module."""
    model = registry.new_model(["v1"], alias="v1")
    settings = ServingSettings(
        tracking_uri=registry.tracking_uri,
        model_name=model.name,
        model_alias=ALIAS,
        prediction_log_dir=tmp_path_factory.mktemp("prediction_log"),
        poll_seconds=5,
        prediction_log_flush_seconds=0.2,
        max_batch_rows=50,
        max_body_bytes=64 * 1024,
    )
    with serving(settings) as client:
        yield client
