"""A team adds its own model without touching the platform: a project declared outside the package
(`example_project/wine.py`), joined by MLOPS_EXTRA_PROJECTS, is materialized from its CSV to a
`production` alias by the Dagster CLI and served over HTTP."""

import json
import os
import sys
import urllib.request
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_assets_tests.conftest import REPOSITORY_ROOT
from mlops_assets_tests.example_project.wine import FEATURES, TARGET, write_wine_csv
from mlops_assets_tests.processes import free_port, http_ok, start, stop, wait_until

MODEL = "wine_cultivar"


def test_a_project_declared_outside_the_package_reaches_production_and_is_served(tmp_path: Path):
    csv = write_wine_csv(tmp_path / "wine.csv")
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPOSITORY_ROOT / "dagster.yaml")
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "MLOPS_"))},
        "DAGSTER_HOME": str(home),
        "MLOPS_STATE_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLOPS_EXTRA_PROJECTS": "mlops_assets_tests.example_project.wine",
        "MLOPS_WINE_SOURCE": str(csv),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    bin_dir = Path(sys.executable).parent
    materialize = start(
        [str(bin_dir / "dagster"), "asset", "materialize", "--select", "group:wine", "-m", "mlops_assets.definitions"],
        log=tmp_path / "materialize.log", env=environment, cwd=REPOSITORY_ROOT,
    )
    assert materialize.wait(timeout=600) == 0, (tmp_path / "materialize.log").read_text()[-4000:]

    production = MlflowClient(tracking_uri, registry_uri=tracking_uri).get_model_version_by_alias(MODEL, "production")
    assert production.tags["project"] == "wine" and float(production.tags["holdout_accuracy"]) > 0.8

    port = free_port()
    server = start(
        [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@production", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)],
        log=tmp_path / "serve.log", env=environment, cwd=tmp_path,
    )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/ping"), timeout=120, what="the model server", process=server)
        rows = pd.read_csv(csv).sample(n=10, random_state=0)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"dataframe_split": rows[list(FEATURES)].to_dict(orient="split")}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            served = json.loads(response.read())["predictions"]
    finally:
        stop(server)
    # A sound model on rows it mostly trained on: nearly every label right.
    assert len(served) == 10 and set(served) <= {"class_0", "class_1", "class_2"}
    assert sum(label == actual for label, actual in zip(served, rows[TARGET], strict=True)) >= 9
