"""Scale benchmark: the Spark data assets at 20k, 1M and 10M rows, beside a single-node polars peer.

Inputs are the reference CSV replicated with jitter (coordinates, counts, incomes and prices moved by a
few percent, so no two copies are equal), written once to benchmarks/.data/ and reused. For each size
it runs, as separate processes timed from start to exit:
  spark:  `dagster asset materialize` of housing/raw, housing/cleaned, housing/features (with their
          contract checks) on local[*], on a fresh temporary instance;
  spark, warm: the same run connected to a warm Spark runtime (the local Spark Connect server that
          `mlops-assets up` keeps running), started once before the first size (with --warm);
  polars: benchmarks/polars_peer.py, the same cleaning and features.
Peak memory is the largest sum of RSS over the process tree (driver, JVM), sampled every 100 ms; for
the warm runs, the run's own tree plus the server's RSS after the run (the JVM keeps what it took).

    uv run --group bench python benchmarks/scale_benchmark.py [--sizes 20640 1000000 10000000] [--warm]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path

from warm_spark import warm_runtime

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPOSITORY_ROOT / "benchmarks" / ".data"
REFERENCE = REPOSITORY_ROOT.parent / "shared" / "data" / "housing.csv"
RESULTS = REPOSITORY_ROOT / "benchmarks" / "scale_results.json"
PLOT = REPOSITORY_ROOT / "benchmarks" / "scale.png"
BIN = Path(sys.executable).parent


def synthesize(rows: int) -> Path:
    if rows <= 20_640:
        return REFERENCE
    path = DATA_DIR / f"housing_{rows}.csv"
    if path.exists():
        return path
    import polars as pl

    reference = pl.read_csv(REFERENCE)
    copies = -(-rows // reference.height)
    replicated = pl.concat([reference] * copies).head(rows).with_row_index("copy")
    # A factor in [1 - scale, 1 + scale] per row; the hash is unsigned, so it is centred after the cast.
    noise = lambda scale, seed: (pl.lit(1.0) + scale * ((pl.int_range(pl.len()).hash(seed) % 2001).cast(pl.Int64) - 1000) / 1000)  # noqa: E731
    jittered = replicated.with_columns(
        (pl.col("longitude") + 0.01 * (noise(1.0, 1) - 1)).clip(-124.3, -114.4).round(4),
        (pl.col("latitude") + 0.01 * (noise(1.0, 2) - 1)).clip(32.6, 41.9).round(4),
        *[(pl.col(name) * noise(0.05, 3 + i)).round(0) for i, name in enumerate(["total_rooms", "total_bedrooms", "population", "households"])],
        (pl.col("median_income") * noise(0.05, 9)).round(4),
        (pl.col("median_house_value") * noise(0.05, 10)).clip(14_999, 500_001).round(0),
    ).with_columns(pl.col("households").clip(1, None), pl.col("total_rooms").clip(1, None), pl.col("population").clip(1, None))
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    jittered.drop("copy").write_csv(path)
    return path


def tree_rss_bytes(pid: int) -> int:
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, tree_rss_bytes(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{stderr[-4000:]}")
    return seconds, peak


def run_spark(source: Path, warm: tuple[str, int] | None = None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="scale-spark-") as state:
        home = Path(state) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").symlink_to(REPOSITORY_ROOT / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "MLOPS_STATE_DIR": state, "MLOPS_DATA_SOURCE": str(source), "SPARK_LOCAL_IP": "127.0.0.1"}
        if warm is not None:
            env["MLOPS_SPARK_WARM_RUNTIME"] = warm[0]
        seconds, peak = measure(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "mlops_assets.definitions", "--select", "housing/raw,housing/cleaned,housing/features"],
            env,
        )
        return seconds, peak + (tree_rss_bytes(warm[1]) if warm is not None else 0)


def run_polars(source: Path) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="scale-polars-") as out:
        return measure([sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "polars_peer.py"), str(source), out], dict(os.environ))


def plot(results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4), dpi=100)
    for engine, marker in (("spark", "o"), ("spark_warm", "^"), ("polars", "s")):
        points = [(r["rows"], r[f"{engine}_seconds"]) for r in results if f"{engine}_seconds" in r]
        if not points:
            continue
        axis.plot(*zip(*points, strict=True), marker=marker, label=engine)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("rows")
    axis.set_ylabel("wall seconds, whole process")
    axis.set_title("Data assets (raw, cleaned, features): Spark via Dagster vs polars")
    axis.legend()
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(PLOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_640, 1_000_000, 10_000_000])
    parser.add_argument("--warm", action="store_true", help="also run the Spark assets on a warm Spark runtime")
    args = parser.parse_args()
    results = []
    print(f"{'rows':>12} {'engine':>10} {'seconds':>9} {'rows/s':>12} {'peak MiB':>9}")
    with ExitStack() as running:
        engines = [("spark", run_spark)]
        if args.warm:
            state = Path(running.enter_context(tempfile.TemporaryDirectory(prefix="scale-warm-")))
            engines.append(("spark_warm", partial(run_spark, warm=running.enter_context(warm_runtime(state)))))
        engines.append(("polars", run_polars))
        for rows in args.sizes:
            source = synthesize(rows)
            row = {"rows": rows}
            for engine, run in engines:
                seconds, peak = run(source)
                row |= {f"{engine}_seconds": round(seconds, 2), f"{engine}_rows_per_second": round(rows / seconds), f"{engine}_peak_mib": round(peak / 2**20)}
                print(f"{rows:>12,} {engine:>10} {seconds:>9.1f} {rows / seconds:>12,.0f} {peak / 2**20:>9,.0f}")
            row["spark_over_polars"] = round(row["spark_seconds"] / row["polars_seconds"], 1)
            if args.warm:
                row["spark_warm_over_polars"] = round(row["spark_warm_seconds"] / row["polars_seconds"], 1)
            results.append(row)
    for first, second in zip(results, results[1:], strict=False):
        growth, size_growth = second["spark_seconds"] / first["spark_seconds"], second["rows"] / first["rows"]
        print(f"spark {first['rows']:,} -> {second['rows']:,} rows: x{size_growth:.0f} rows, x{growth:.1f} time "
              f"({'at most linear' if growth <= size_growth else 'WORSE than linear'})")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    plot(results)
    print(f"results: {RESULTS.relative_to(REPOSITORY_ROOT)}, plot: {PLOT.relative_to(REPOSITORY_ROOT)}")


if __name__ == "__main__":
    main()
