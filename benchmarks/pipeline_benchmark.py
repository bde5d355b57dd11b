"""Pipeline benchmark: the orchestrated run of one project's graph against a bare script, side by side.

Orchestrated: `dagster asset materialize --select <the project's six flow assets> -m mlops_assets.definitions` (the
monitoring assets, which the bare script has no counterpart for, are left out), a fresh process on a
temporary DAGSTER_HOME and MLflow store (Spark, Pandera checks, MLflow tracking and registry, the gate).
Bare: `benchmarks/bare_pipeline.py`, the same Spark and scikit-learn work with neither Dagster nor MLflow.
Both are timed as whole processes, from fork to exit, alternately, on the same machine in the same run.

    uv run python benchmarks/pipeline_benchmark.py [--project housing] [--data-dir ../shared/data] [--rounds 2]

The first orchestrated run also creates the Dagster and MLflow SQLite schemas; it is reported apart,
and the ratio uses the runs after it (the steady state of a daily schedule).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPOSITORY_ROOT.parent / "shared" / "data"
FLOW_ASSETS = ("raw", "cleaned", "features", "trained_model", "model_evaluation", "deployed_model")
TARGET_RATIO = 1.3
TARGET_SECONDS = 45.0


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPOSITORY_ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return seconds, completed.stdout


def orchestrated_env(state_dir: Path, data_dir: Path) -> dict[str, str]:
    dagster_home = state_dir / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").symlink_to(REPOSITORY_ROOT / "dagster.yaml")
    return {
        **os.environ,
        "MLOPS_STATE_DIR": str(state_dir),
        "DAGSTER_HOME": str(dagster_home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}",
        "MLOPS_DATA_DIR": str(data_dir),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="housing", help="the model project to run")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the folder of reference CSVs")
    parser.add_argument("--rounds", type=int, default=2, help="steady-state rounds of each (after one cold run)")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    from mlops_assets.projects import project_from_module

    project = project_from_module(f"mlops_assets.projects.{args.project}.project")
    source = (args.data_dir / project.source.file_name).resolve()
    flow = ",".join(f"{project.name}/{asset}" for asset in FLOW_ASSETS)
    orchestrated = [str(bin_dir / "dagster"), "asset", "materialize", "--select", flow, "-m", "mlops_assets.definitions"]
    bare = [sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "bare_pipeline.py"), project.name, str(source)]
    metric = f"holdout_{project.task.primary_metric}"

    with tempfile.TemporaryDirectory(prefix="pipeline-benchmark-") as state:
        env = orchestrated_env(Path(state), args.data_dir.resolve())
        cold, _ = timed(orchestrated, env)
        orchestrated_times, bare_times, quality = [], [], None
        for _ in range(args.rounds):
            bare_seconds, output = timed(bare, env)
            bare_times.append(bare_seconds)
            quality = json.loads(output.strip().splitlines()[-1])[metric]
            orchestrated_times.append(timed(orchestrated, env)[0])
    peak_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    orchestrated_median, bare_median = statistics.median(orchestrated_times), statistics.median(bare_times)
    ratio = orchestrated_median / bare_median
    print(f"project {project.name}")
    print(f"{'run':<34}{'wall seconds':>14}")
    print(f"{'orchestrated, cold (creates stores)':<34}{cold:>14.1f}")
    for index, (o, b) in enumerate(zip(orchestrated_times, bare_times, strict=True), start=1):
        print(f"{f'orchestrated, round {index}':<34}{o:>14.1f}")
        print(f"{f'bare Spark + scikit-learn, round {index}':<34}{b:>14.1f}")
    print(f"\norchestrated / bare (medians): {orchestrated_median:.1f} s / {bare_median:.1f} s = {ratio:.2f}x")
    print(f"bare {metric}: {quality:,.4g}; largest child process peak RSS: {peak_rss_mib:,.0f} MiB")
    print(f"targets: ratio <= {TARGET_RATIO} ({'met' if ratio <= TARGET_RATIO else 'MISSED'}), "
          f"orchestrated <= {TARGET_SECONDS:.0f} s ({'met' if orchestrated_median <= TARGET_SECONDS else 'MISSED'})")


if __name__ == "__main__":
    main()
