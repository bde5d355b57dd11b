"""`mlops-assets`: the main job (materialize everything, then serve) and the environment it shares.

Every process of the platform (this command, `dagster dev`, the daemon, the serving app) must agree on
DAGSTER_HOME and MLFLOW_TRACKING_URI; this command fills them in from `Settings` before anything else
reads them, and prints them for a shell with `mlops-assets env`.
"""

import argparse
import os
import shlex
import sys
from pathlib import Path

from mlops_assets.settings import Settings

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def shared_environment(settings: Settings) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(settings.dagster_home),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLOPS_DATA_ROOT": str(settings.data_root),
        "MLOPS_DATA_SOURCE": settings.data_source,
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }


def prepare_dagster_home(settings: Settings) -> None:
    """Dagster reads its instance config from $DAGSTER_HOME/dagster.yaml: link the project's own there."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    target = settings.dagster_home / "dagster.yaml"
    if not target.exists() and (REPOSITORY_ROOT / "dagster.yaml").exists():
        target.symlink_to(REPOSITORY_ROOT / "dagster.yaml")


def materialize_everything() -> bool:
    from dagster import DagsterInstance

    from mlops_assets.definitions import defs

    with DagsterInstance.get() as instance:
        # The refresh job is the whole graph: the flow to production, then the ledger, drift and batch scores.
        result = defs.resolve_job_def("housing_refresh").execute_in_process(instance=instance, raise_on_error=False)
        print(f"\nrun {result.run_id}: {'success' if result.success else 'FAILED'}")
        for event in result.get_asset_materialization_events():
            print(f"  materialized {event.asset_key.to_user_string()}")
        for evaluation in result.get_asset_check_evaluations():
            status = "passed" if evaluation.passed else f"FAILED: {evaluation.description}"
            print(f"  check {evaluation.asset_key.to_user_string()}.{evaluation.check_name} {status}")
        return result.success


def print_production(settings: Settings) -> None:
    from mlops_assets.resources.mlflow_registry import MlflowResource

    registry = MlflowResource(
        tracking_uri=settings.mlflow_tracking_uri, model_name=settings.model_name, alias=settings.model_alias
    )
    version = registry.aliased_version()
    if version is None:
        print(f"no version of {settings.model_name} holds '{settings.model_alias}'")
        return
    rmse = version.tags.get("holdout_rmse", "?")
    print(f"{settings.model_name}@{settings.model_alias} = version {version.version} (holdout RMSE {rmse})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="materialize every asset, then serve the production model")
    up.add_argument("--no-serve", action="store_true", help="stop after materializing")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--workers", type=int, default=2, help="serving worker processes (one per core)")
    commands.add_parser("env", help="print the shared environment as shell exports")
    commands.add_parser("dev", help="start `dagster dev` (UI and daemon) on the shared environment")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    for name, value in shared_environment(settings).items():
        os.environ.setdefault(name, value)
    prepare_dagster_home(settings)

    if args.command == "env":
        for name, value in shared_environment(settings).items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if args.command == "dev":
        os.chdir(REPOSITORY_ROOT)
        os.execvp("dagster", ["dagster", "dev", "-w", str(REPOSITORY_ROOT / "workspace.yaml")])
    succeeded = materialize_everything()
    print_production(settings)
    if not succeeded:
        return 1
    if not args.no_serve:
        return serve(args.host, args.port, args.workers)
    return 0


def serve(host: str, port: int, workers: int) -> int:
    from serving.__main__ import main as serve_main

    print(f"serving the production model on http://{host}:{port} (POST /predict, docs at /schema)")
    serve_main(["--host", host, "--port", str(port), "--workers", str(workers)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
