"""`mlops-assets`: the main job (materialize every project, then run the platform) and the environment
its processes share.

`mlops-assets up` runs one in-process run of the job that materializes every project, says which
version of each model holds the production alias, then keeps running what a user relies on: the
Dagster webserver and daemon (schedules and sensors tick), the MLflow UI on the same tracking store,
the serving app, and a warm Spark runtime that the runs they launch connect to instead of starting
Spark each (`mlops_assets.platform.spark_connect`). Ctrl-C stops all of them; if one dies, the rest
are stopped and it exits 1, except the warm Spark runtime, which is started again (runs start Spark
themselves meanwhile). `mlops-assets dev` runs `dagster dev` beside the same warm runtime.

Every process of the platform (this command, `dagster dev`, the daemon, the serving app) must agree on
DAGSTER_HOME and MLFLOW_TRACKING_URI; this command fills them in from `Settings` before anything else
reads them, and prints them for a shell with `mlops-assets env`.
"""

import argparse
import os
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

from mlops_assets.platform import spark_connect
from mlops_assets.platform.resources.spark import answers
from mlops_assets.platform.services import Service, ServiceFailed, Supervisor
from mlops_assets.settings import Settings, redacted

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = REPOSITORY_ROOT / "workspace.yaml"
# Generous: on two cores the webserver, the daemon's code server, MLflow and serving start together.
SERVICES_START_TIMEOUT_SECONDS = 300


def _is_data_location(variable: str) -> bool:
    """MLOPS_DATA_DIR (a folder of reference copies) and MLOPS_<PROJECT>_SOURCE (one project's CSV)."""
    return variable == "MLOPS_DATA_DIR" or (variable.startswith("MLOPS_") and variable.endswith("_SOURCE"))


def _absolute_unless_url(value: str) -> str:
    # The services run from the repository root: a path relative to the user's folder would move.
    return value if "://" in value else str(Path(value).expanduser().resolve())


def shared_environment(settings: Settings) -> dict[str, str]:
    environment = {
        "DAGSTER_HOME": str(settings.dagster_home),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLOPS_DATA_ROOT": str(settings.data_root),
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }
    # Only those the user set: a default exported here would shadow the way each process works it out.
    for name, value in os.environ.items():
        if _is_data_location(name) and value:
            environment[name] = _absolute_unless_url(value)
    return environment


def prepare_dagster_home(settings: Settings) -> None:
    """Dagster reads its instance config from $DAGSTER_HOME/dagster.yaml: link the project's own there."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    target = settings.dagster_home / "dagster.yaml"
    if not target.exists() and (REPOSITORY_ROOT / "dagster.yaml").exists():
        target.symlink_to(REPOSITORY_ROOT / "dagster.yaml")


def materialize_everything() -> bool:
    from dagster import DagsterInstance

    from mlops_assets.definitions import ALL_PROJECTS_JOB, defs

    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def(ALL_PROJECTS_JOB).execute_in_process(instance=instance, raise_on_error=False)
        print(f"\nrun {result.run_id} of {ALL_PROJECTS_JOB}: {'success' if result.success else 'FAILED'}")
        for event in result.get_asset_materialization_events():
            print(f"  materialized {event.asset_key.to_user_string()}")
        for evaluation in result.get_asset_check_evaluations():
            status = "passed" if evaluation.passed else f"FAILED: {evaluation.description}"
            print(f"  check {evaluation.asset_key.to_user_string()}.{evaluation.check_name} {status}")
        return result.success


def release_spark() -> None:
    """The run's SparkSession outlives the run in this process: stop it and its JVM (a driver heap of
    gigabytes) rather than hold them for as long as the services run."""
    if "pyspark" not in sys.modules:
        return
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    launcher = getattr(SparkContext._gateway, "proc", None)
    if launcher is not None and launcher.stdin is not None:
        launcher.stdin.close()  # the gateway JVM exits when the pipe to its stdin closes
        launcher.wait(timeout=60)
        SparkContext._gateway = SparkContext._jvm = None


def served_models() -> list[tuple[str, str]]:
    """(project, registered model) of every project."""
    from mlops_assets.projects import load_projects

    return [(project.name, project.model_name) for project in load_projects()]


def print_production(settings: Settings) -> int:
    """Says which version of each project's model holds the alias; returns how many projects have one."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    alias = settings.model_alias
    print(f"\nproduction models ({redacted(settings.mlflow_tracking_uri)}):")
    in_production = 0
    for project, model_name in served_models():
        try:
            version = client.get_model_version_by_alias(model_name, alias)
        except MlflowException:
            print(f"  {project}: no version of {model_name} holds '{alias}'")
            continue
        holdout = ", ".join(
            f"{name.removeprefix('holdout_')} {value}" for name, value in sorted(version.tags.items()) if name.startswith("holdout_")
        )
        print(f"  {project}: {model_name}@{alias} = version {version.version}" + (f" (holdout {holdout})" if holdout else ""))
        in_production += 1
    return in_production


def _browsable(host: str) -> str:
    """The address to open for a server bound to `host`: a wildcard bind is reached on loopback."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)


def _is_tracking_server(tracking_uri: str) -> bool:
    return urlsplit(tracking_uri).scheme in ("http", "https", "databricks")


def warm_spark_services(settings: Settings, arguments: argparse.Namespace) -> tuple[list[Service], dict[str, str]]:
    """The warm Spark runtime's service, and the environment that points the runs at it; none when
    Spark is a cluster (MLOPS_SPARK_MASTER), the user runs one already (MLOPS_SPARK_WARM_RUNTIME), or
    `--no-warm-spark` asks for Spark per run."""
    if arguments.no_warm_spark or settings.spark_warm_runtime or not settings.spark_master.startswith("local"):
        return [], {}
    address = spark_connect.warm_runtime_address(arguments.spark_port)
    service = Service(
        "warm Spark",
        spark_connect.server_command(settings, arguments.spark_port),
        env=spark_connect.server_environment(),
        cwd=REPOSITORY_ROOT,
        url=address,
        about="Spark Connect, for every run the daemon and the UI launch",
        health_check=lambda: answers(address),
        restart=True,
    )
    return [service], {spark_connect.VARIABLE: address}


def platform_services(settings: Settings, arguments: argparse.Namespace, *, model_in_production: bool) -> list[Service]:
    bin_dir = Path(sys.executable).parent
    host, address = arguments.host, _browsable(arguments.host)
    dagster_url = f"http://{address}:{arguments.dagster_port}"
    serving_url = f"http://{address}:{arguments.port}"
    warm_spark, runs_environment = warm_spark_services(settings, arguments)
    services = [
        *warm_spark,
        # The same DAGSTER_HOME (inherited) and workspace as `mlops-assets dev`; the runs they launch
        # inherit their environment.
        Service(
            "Dagster UI",
            [str(bin_dir / "dagster-webserver"), "-h", host, "-p", str(arguments.dagster_port), "-w", str(WORKSPACE)],
            health_url=f"{dagster_url}/server_info",
            env=runs_environment,
            cwd=REPOSITORY_ROOT,
            url=dagster_url,
        ),
        Service(
            "Dagster daemon",
            [str(bin_dir / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
            env=runs_environment,
            cwd=REPOSITORY_ROOT,
            about="schedules and sensors",
        ),
    ]
    if _is_tracking_server(settings.mlflow_tracking_uri):
        print(f"MLflow UI: {redacted(settings.mlflow_tracking_uri)} (the tracking server)")
    else:
        mlflow_url = f"http://{address}:{arguments.mlflow_port}"
        artifact_root = ["--default-artifact-root", settings.mlflow_artifact_root] if settings.mlflow_artifact_root else []
        services.append(
            Service(
                "MLflow UI",
                [
                    str(bin_dir / "mlflow"), "server", "--backend-store-uri", settings.mlflow_tracking_uri, *artifact_root,
                    # Runs keep their local artifact folders, read in place: nothing to proxy.
                    "--no-serve-artifacts", "--host", host, "--port", str(arguments.mlflow_port), "--workers", "1",
                ],  # fmt: skip
                health_url=f"{mlflow_url}/health",
                # Job execution (GenAI evaluations) would start a queue and consumers nobody here uses.
                env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                cwd=REPOSITORY_ROOT,
                url=mlflow_url,
            )
        )
    services.append(
        Service(
            "serving",
            [sys.executable, "-m", "serving", "--host", host, "--port", str(arguments.port), "--workers", str(arguments.workers)],
            health_url=f"{serving_url}/health",
            cwd=REPOSITORY_ROOT,
            url=serving_url,
            about="POST /predict, docs at /schema",
            ready_url=f"{serving_url}/ready",
            waiting_note=(
                "loading the production model"
                if model_in_production
                else f"it waits for a production model (a version with the alias '{settings.model_alias}')"
            ),
        )
    )
    return services


def dev_services(settings: Settings, arguments: argparse.Namespace) -> list[Service]:
    warm_spark, runs_environment = warm_spark_services(settings, arguments)
    dagster_dev = Service(
        "dagster dev", [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(WORKSPACE)], env=runs_environment, cwd=REPOSITORY_ROOT
    )
    return [*warm_spark, dagster_dev]


def run_services(settings: Settings, services: list[Service]) -> int:
    try:
        with Supervisor(
            services, log_dir=settings.state_dir / "logs", start_timeout=SERVICES_START_TIMEOUT_SECONDS
        ) as supervisor:
            return supervisor.run()
    except ServiceFailed as failure:
        print(f"mlops-assets: {failure}", file=sys.stderr, flush=True)
        return 1


def up(settings: Settings, arguments: argparse.Namespace) -> int:
    if not arguments.no_materialize:
        succeeded = materialize_everything()
        release_spark()
        if not succeeded:
            print_production(settings)
            print("\nthe run failed: nothing started (`mlops-assets up --no-materialize` serves what is in production)")
            return 1
    # Also creates the tracking store's tables when they do not exist yet: the MLflow UI and the
    # serving workers would otherwise race to create them.
    in_production = print_production(settings)
    if arguments.no_serve:
        return 0
    print(flush=True)
    return run_services(settings, platform_services(settings, arguments, model_in_production=in_production > 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-assets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser(
        "up", help="materialize every project, then run the Dagster UI and daemon, the MLflow UI and the serving app"
    )
    up_parser.add_argument("--no-serve", action="store_true", help="stop after materializing")
    up_parser.add_argument("--no-materialize", action="store_true", help="start the services on the existing state")
    up_parser.add_argument("--host", default="127.0.0.1", help="the interface every service binds")
    up_parser.add_argument("--dagster-port", type=int, default=3000)
    up_parser.add_argument("--mlflow-port", type=int, default=5000)
    up_parser.add_argument("--port", type=int, default=8000, help="the serving app's port")
    up_parser.add_argument("--workers", type=int, default=2, help="serving worker processes (one per core)")
    commands.add_parser("env", help="print the shared environment as shell exports")
    dev_parser = commands.add_parser("dev", help="start `dagster dev` (UI and daemon) on the shared environment")
    for command_parser in (up_parser, dev_parser):
        command_parser.add_argument("--spark-port", type=int, default=spark_connect.DEFAULT_PORT, help="the warm Spark runtime's port")
        command_parser.add_argument("--no-warm-spark", action="store_true", help="let every run start Spark itself")
    arguments = parser.parse_args(argv)

    settings = Settings.from_env()
    # The values come from this environment, resolved: absolute paths hold in the services' folder too.
    os.environ.update(shared_environment(settings))
    prepare_dagster_home(settings)

    if arguments.command == "env":
        for name, value in shared_environment(settings).items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if arguments.command == "dev":
        return run_services(settings, dev_services(settings, arguments))
    return up(settings, arguments)


if __name__ == "__main__":
    sys.exit(main())
