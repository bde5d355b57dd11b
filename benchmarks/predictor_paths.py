"""Per-row latency of every way to serve each project's pipeline, in process: the reproducible basis
for the serving fast paths (`serving.fast_classify`, `serving.fast_predict`).

Each project's variants are fitted on its whole reference data (as `serving.reference_model` types
it), then predicted row by row and in batches of 100 through:

* pandas: the pipeline on a DataFrame of the row, as the app served every classifier before;
* sklearn: the pandas-free feature matrix, then the final estimator's own predict(_proba);
* linear / compiled-trees / compiled-forest: the hand-made paths the app serves;
* treelite-gtil and tl2cgen (tree ensembles only, when importable): Treelite's interpreter and the C
  library tl2cgen compiles (gcc), fed the same feature matrix. They are not dependencies of the
  project: run this script with an interpreter where `treelite` and `tl2cgen` are installed to see
  them (a scratch venv over the project's: see benchmarks/README.md).

The last column is the largest difference from the pandas path's probabilities (or predictions) on
the whole reference data: 0 means equal to the bit.

    uv run python benchmarks/predictor_paths.py [--projects churn,iris] [--rows 300]
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.projects import load_projects  # noqa: E402
from serving.fast_classify import FastClassifier  # noqa: E402
from serving.fast_predict import FastPredictor  # noqa: E402
from serving.reference_model import typed_reference_frame  # noqa: E402
from serving.served_project import RowLayout  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
BATCH_ROWS = 100

Columns = Mapping[str, np.ndarray]


def median_us(predict: Callable[[Columns], object], samples: list[Columns], per_rows: int) -> float:
    for sample in samples[:20]:  # warm caches and lazy imports
        predict(sample)
    timings = []
    for sample in samples:
        started = time.perf_counter()
        predict(sample)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1e6 / per_rows


def slices(columns: Columns, size: int, count: int, seed: int) -> list[Columns]:
    rows = len(next(iter(columns.values())))
    starts = np.random.default_rng(seed).integers(0, rows - size, count)
    return [{name: values[start : start + size] for name, values in columns.items()} for start in starts]


def library_paths(estimator, feature_matrix, scratch: Path, name: str) -> dict[str, Callable[[Columns], np.ndarray]]:  # noqa: ANN001
    """Treelite's interpreter and a tl2cgen-compiled library for a tree ensemble, when installed."""
    try:
        import tl2cgen
        import treelite
        import treelite.sklearn
    except ImportError:
        return {}
    try:
        model = treelite.sklearn.import_model(estimator)
    except Exception as error:  # not a tree ensemble Treelite imports
        print(f"# treelite does not import {type(estimator).__name__}: {error}", file=sys.stderr)
        return {}
    library = scratch / f"{name}.so"
    tl2cgen.export_lib(model, toolchain="gcc", libpath=str(library), params={"parallel_comp": 8}, verbose=False)
    compiled = tl2cgen.Predictor(str(library), nthread=1)

    def gtil(columns: Columns) -> np.ndarray:
        matrix = feature_matrix(columns).astype(np.float32).astype(np.float64)  # the float32 values trees compare
        return np.asarray(treelite.gtil.predict(model, matrix, nthread=1)).reshape(matrix.shape[0], -1)

    def tl2(columns: Columns) -> np.ndarray:
        matrix = feature_matrix(columns).astype(np.float32)
        return np.asarray(compiled.predict(tl2cgen.DMatrix(matrix))).reshape(matrix.shape[0], -1)

    return {"treelite-gtil": gtil, "tl2cgen": tl2}


def as_probabilities(values: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """A library's binary output as both columns, like predict_proba."""
    if values.shape[1] == 1 and expected.shape[1] == 2:
        return np.column_stack([1 - values[:, 0], values[:, 0]])
    return values


def measure(project, frame: pd.DataFrame, rows: int, scratch: Path) -> list[tuple]:  # noqa: ANN001
    layout = RowLayout.of(project.domain)
    features = frame[list(layout.features)]
    columns = {name: layout.column_of(features, name) for name in layout.features}
    singles, batches = slices(columns, 1, rows, 1), slices(columns, BATCH_ROWS, max(rows // 10, 20), 2)
    classifier = project.task.name != "regression"
    table = []
    for variant in project.variants:
        pipeline = project.build_model(variant.params)
        pipeline.fit(features, frame[project.domain.target].to_numpy())
        paths: dict[str, Callable[[Columns], np.ndarray]]
        if classifier:
            fast = FastClassifier(pipeline, layout.features)
            paths = {"pandas": lambda cols, pipeline=pipeline: pipeline.predict_proba(layout.frame_of(cols))}
            paths |= {
                name: (lambda cols, path=path, fast=fast: path(fast.feature_matrix(cols))) for name, path in fast.paths().items()
            }
            estimator = pipeline.steps[-1][1]
            paths |= library_paths(estimator, fast.feature_matrix, scratch, f"{project.name}_{variant.name}")
        else:
            regressor = FastPredictor(pipeline)
            paths = {"pandas": lambda cols, pipeline=pipeline: pipeline.predict(layout.frame_of(cols))}
            # The regressor's two routes, taken one at a time (its `predict` switches by batch size).
            paths["sklearn"] = lambda cols, fast=regressor: fast._regressor.predict(fast._feature_matrix(cols))
            if regressor._forest is not None:
                paths["compiled-forest"] = lambda cols, fast=regressor: fast._forest.predict(fast._feature_matrix(cols))
        whole = {name: np.asarray(predict(columns), dtype=np.float64) for name, predict in paths.items()}
        expected = whole["pandas"].reshape(len(frame), -1)
        for name, predict in paths.items():
            got = as_probabilities(whole[name].reshape(len(frame), -1), expected)
            difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("nan")
            table.append(
                (project.name, variant.name, name, median_us(predict, singles, 1), median_us(predict, batches, BATCH_ROWS), difference)
            )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", default="housing,churn,iris")
    parser.add_argument("--rows", type=int, default=300, help="single rows timed per path")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    arguments = parser.parse_args()
    projects = {project.name: project for project in load_projects(extra_modules="")}
    print(f"{'project':8} {'variant':20} {'path':16} {'us/single row':>14} {'us/row in 100':>14} {'max |diff| vs pandas':>21}")
    with tempfile.TemporaryDirectory() as scratch:
        for name in arguments.projects.split(","):
            frame = typed_reference_frame(projects[name], arguments.data_dir)
            for row in measure(projects[name], frame, arguments.rows, Path(scratch)):
                project, variant, path, single, batch, difference = row
                print(f"{project:8} {variant:20} {path:16} {single:14.1f} {batch:14.2f} {difference:21.3g}", flush=True)


if __name__ == "__main__":
    main()
