"""Real services of the production profile on this machine, started and stopped by the tests:
databases on the local PostgreSQL 15, an `mlflow server` on Postgres, a Spark standalone cluster."""

import json
import os
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from mlops_assets.deploy.ensure_database import ensure_database
from mlops_assets_tests.processes import free_port, http_ok, start, stop, wait_until

# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3: name the driver the project installs.
POSTGRES_SERVER = os.environ.get("MLOPS_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432")
BIN = Path(sys.executable).parent


def _drop_database(name: str) -> None:
    connection = psycopg2.connect(f"{POSTGRES_SERVER}/postgres".replace("+psycopg2", ""))
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator:
    """A factory of fresh databases on the local server, each dropped at the end of the session."""
    created: list[str] = []

    def _create(purpose: str) -> str:
        name = f"mlops_test_{purpose}_{uuid.uuid4().hex[:8]}"
        assert ensure_database(f"{POSTGRES_SERVER}/{name}") is True
        assert ensure_database(f"{POSTGRES_SERVER}/{name}") is False
        created.append(name)
        return f"{POSTGRES_SERVER}/{name}"

    yield _create
    for name in created:
        _drop_database(name)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_store_uri: str


@pytest.fixture(scope="module")
def mlflow_server(postgres_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    folder = tmp_path_factory.mktemp("mlflow_server")
    backend = postgres_database("mlflow")
    port = free_port()
    process = start(
        [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", backend,
            "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
            "--workers", "1",
        ],
        log=folder / "server.log",
    )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout=120, what="mlflow server", process=process)
        yield MlflowServer(url=f"http://127.0.0.1:{port}", backend_store_uri=backend)
    finally:
        stop(process)


@dataclass(frozen=True)
class SparkCluster:
    master_url: str
    master_ui: str

    def application_names(self) -> list[str]:
        with urllib.request.urlopen(f"{self.master_ui}/json/", timeout=5) as response:
            status = json.load(response)
        return [app["name"] for app in status.get("activeapps", []) + status.get("completedapps", [])]


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """A standalone master and one worker from the installed pyspark distribution, on loopback."""
    folder = tmp_path_factory.mktemp("spark_cluster")
    import pyspark

    # pyspark ships all of Spark; its scripts find it through SPARK_HOME, not through the venv's python.
    spark_home = str(Path(pyspark.__file__).parent)
    env = {**os.environ, "SPARK_HOME": spark_home, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_WORKER_DIR": str(folder / "work"), "SPARK_LOG_DIR": str(folder)}
    master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    master = start(
        [str(BIN / "spark-class"), "org.apache.spark.deploy.master.Master",
         "--host", "127.0.0.1", "--port", str(master_port), "--webui-port", str(master_ui)],
        log=folder / "master.log", env=env,
    )
    worker = None
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{master_ui}/json/"), timeout=90, what="spark master", process=master)
        worker = start(
            [str(BIN / "spark-class"), "org.apache.spark.deploy.worker.Worker", master_url,
             "--cores", "2", "--memory", "2g", "--webui-port", str(worker_ui)],
            log=folder / "worker.log", env=env,
        )

        def worker_registered() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{master_ui}/json/", timeout=2) as response:
                return json.load(response).get("aliveworkers", 0) >= 1

        wait_until(worker_registered, timeout=90, what="spark worker", process=worker)
        yield SparkCluster(master_url=master_url, master_ui=f"http://127.0.0.1:{master_ui}")
    finally:
        if worker is not None:
            stop(worker)
        stop(master)
