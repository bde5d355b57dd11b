"""Pipeline benchmark: the orchestrated run of one project's graph against a bare script, side by side.

Orchestrated: `dagster asset materialize --select <the project's six flow assets> -m mlops_assets.definitions` (the
monitoring assets, which the bare script has no counterpart for, are left out), a fresh process on a
temporary DAGSTER_HOME and MLflow store (Spark, Pandera checks, MLflow tracking and registry, the gate).
Bare: `benchmarks/bare_pipeline.py`, the same Spark and scikit-learn work with neither Dagster nor MLflow.
Both are timed as whole processes, from fork to exit, alternately, on the same machine in the same run.

    uv run python benchmarks/pipeline_benchmark.py [--project housing,churn,iris] [--data-dir ../shared/data] [--rounds 2] [--no-warm]

The first orchestrated run also creates the Dagster and MLflow SQLite schemas; it is reported apart,
and the ratio uses the runs after it (the steady state of a daily schedule). Then, unless --no-warm,
the same runs again beside a warm Spark runtime (the local Spark Connect server `mlops-assets up`
keeps running): the orchestrated run connects to it instead of starting Spark, and so does a bare run.
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
from contextlib import ExitStack
from pathlib import Path

from warm_spark import warm_runtime

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPOSITORY_ROOT.parent / "shared" / "data"
FLOW_ASSETS = ("raw", "cleaned", "features", "trained_model", "model_evaluation", "deployed_model")
TARGET_RATIO = 1.3
TARGET_WARM_SECONDS = 20.0


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


def benchmark(project_name: str, data_dir: Path, rounds: int, warm: bool) -> None:
    bin_dir = Path(sys.executable).parent
    from mlops_assets.projects import project_from_module

    project = project_from_module(f"mlops_assets.projects.{project_name}.project")
    source = (data_dir / project.source.file_name).resolve()
    flow = ",".join(f"{project.name}/{asset}" for asset in FLOW_ASSETS)
    orchestrated = [str(bin_dir / "dagster"), "asset", "materialize", "--select", flow, "-m", "mlops_assets.definitions"]
    bare = [sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "bare_pipeline.py"), project.name, str(source)]
    metric = f"holdout_{project.task.primary_metric}"

    times: dict[str, list[float]] = {"orchestrated": [], "bare": [], "orchestrated, warm Spark": [], "bare, warm Spark": []}
    with tempfile.TemporaryDirectory(prefix="pipeline-benchmark-") as state, ExitStack() as running:
        env = orchestrated_env(Path(state), data_dir.resolve())
        cold, _ = timed(orchestrated, env)
        if warm:
            address, _ = running.enter_context(warm_runtime(Path(state)))
            warm_env = {**env, "MLOPS_SPARK_WARM_RUNTIME": address}
            bare_warm_env = {**env, "MLOPS_SPARK_MASTER": address}
            timed(orchestrated, warm_env)  # the runtime's own first queries (JIT, class loading): not steady state
        quality = None
        for _ in range(rounds):
            bare_seconds, output = timed(bare, env)
            times["bare"].append(bare_seconds)
            quality = json.loads(output.strip().splitlines()[-1])[metric]
            times["orchestrated"].append(timed(orchestrated, env)[0])
            if warm:
                times["bare, warm Spark"].append(timed(bare, bare_warm_env)[0])
                times["orchestrated, warm Spark"].append(timed(orchestrated, warm_env)[0])
    peak_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"\nproject {project.name}")
    print(f"{'run':<44}{'wall seconds':>14}")
    print(f"{'orchestrated, cold (creates stores)':<44}{cold:>14.1f}")
    for index in range(rounds):
        for name, seconds in times.items():
            if seconds:
                print(f"{f'{name}, round {index + 1}':<44}{seconds[index]:>14.1f}")
    median = {name: statistics.median(seconds) for name, seconds in times.items() if seconds}
    # Judged against the bare script on the same Spark: its own JVM each, or the same warm runtime.
    ratios = {"own Spark": median["orchestrated"] / median["bare"]}
    print(f"orchestrated / bare, each starting Spark (medians): {median['orchestrated']:.1f} s / {median['bare']:.1f} s = {ratios['own Spark']:.2f}x")
    if warm:
        ratios["warm Spark"] = median["orchestrated, warm Spark"] / median["bare, warm Spark"]
        print(f"orchestrated / bare, both on the warm runtime: {median['orchestrated, warm Spark']:.1f} s / "
              f"{median['bare, warm Spark']:.1f} s = {ratios['warm Spark']:.2f}x; the warm orchestrated run against the bare "
              f"script starting Spark: {median['orchestrated, warm Spark'] / median['bare']:.2f}x")  # fmt: skip
    print(f"bare {metric}: {quality:,.4g}; largest child process peak RSS: {peak_rss_mib:,.0f} MiB")
    verdicts = ", ".join(f"{name} {ratio:.2f}x {'met' if ratio <= TARGET_RATIO else 'MISSED'}" for name, ratio in ratios.items())
    print(f"targets: orchestrated / bare <= {TARGET_RATIO} ({verdicts})", end="")
    if warm:
        refresh = median["orchestrated, warm Spark"]
        print(f"; warm refresh <= {TARGET_WARM_SECONDS:.0f} s ({refresh:.1f} s, {'met' if refresh <= TARGET_WARM_SECONDS else 'MISSED'})")
    else:
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="housing", help="the model projects to run, comma-separated")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the folder of reference CSVs")
    parser.add_argument("--rounds", type=int, default=2, help="steady-state rounds of each (after one cold run)")
    parser.add_argument("--no-warm", action="store_true", help="leave out the runs on a warm Spark runtime")
    args = parser.parse_args()
    for project_name in args.project.split(","):
        benchmark(project_name.strip(), args.data_dir, args.rounds, warm=not args.no_warm)


if __name__ == "__main__":
    main()
