"""A fault in production: the MLflow server goes away under a running serving app. The app keeps
answering with the model it loaded, says it is degraded on /ready, and recovers by itself when the
server is back on the same address."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd

from mlops_assets.projects.housing.model import Hyperparameters
from mlops_assets_tests.conftest import REPOSITORY_ROOT
from mlops_assets_tests.processes import free_port, http_ok, start, stop, wait_until
from serving.reference_model import ReferenceRegistry, train_and_register

from .test_postgres_and_mlflow_server import SEED_ROW

BIN = Path(sys.executable).parent


def _mlflow_server(folder: Path, port: int, attempt: int) -> subprocess.Popen:
    process = start(
        [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts", "--workers", "1",
        ],
        log=folder / f"server-{attempt}.log",
    )  # fmt: skip
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout=120, what="mlflow server", process=process)
    return process


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _predict(base: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/predict", data=json.dumps(SEED_ROW).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.load(response)


def test_the_app_serves_through_a_registry_outage_and_recovers(tmp_path: Path, reference_csv: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _mlflow_server(tmp_path, port, attempt=1)
    app = None
    try:
        registry = ReferenceRegistry.create(tmp_path / "client", tracking_uri=url)
        version = train_and_register(
            registry, pd.read_csv(reference_csv), model_name="housing_price", params=Hyperparameters(max_iter=30), alias="production"
        )
        app_port = free_port()
        base = f"http://127.0.0.1:{app_port}"
        environment = {
            **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_"))},
            "MLFLOW_TRACKING_URI": url,
            "MLOPS_STATE_DIR": str(tmp_path / "state"),
            "MLOPS_SERVING_POLL_SECONDS": "0.5",
        }
        app = start(
            [sys.executable, "-m", "serving", "--workers", "1", "--port", str(app_port)],
            log=tmp_path / "serving.log", env=environment, cwd=REPOSITORY_ROOT,
        )  # fmt: skip
        wait_until(lambda: http_ok(f"{base}/ready"), timeout=120, what="the serving app", process=app)
        assert _get(f"{base}/ready")["status"] == "ok"

        stop(server)
        wait_until(lambda: _get(f"{base}/ready")["status"] == "degraded", timeout=60, what="degraded readiness")
        during = [_predict(base) for _ in range(20)]
        assert {(status, answer["model_version"]) for status, answer in during} == {(200, version)}
        assert _get(f"{base}/model")["last_registry_error"]

        server = _mlflow_server(tmp_path, port, attempt=2)
        wait_until(lambda: _get(f"{base}/ready")["status"] == "ok", timeout=60, what="readiness to recover")
        assert _get(f"{base}/model")["last_registry_error"] is None
        assert _predict(base)[1]["model_version"] == version
    finally:
        if app is not None:
            stop(app)
        stop(server)
