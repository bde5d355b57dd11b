"""The automation tests' helpers: the whole graph (the flow and the assets that watch it) materialized
on a platform from `mlops_assets_tests.conftest`, with resources overridable per run."""

import os
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
from dagster import ExecuteInProcessResult, materialize

from mlops_assets.assets import HOUSING_ASSETS, MONITORING_ASSETS
from mlops_assets.checks import HOUSING_CHECKS
from mlops_assets.resources import build_resources
from mlops_assets_tests.conftest import Platform

# Batch scoring runs Python workers: they must start from this interpreter even when the test
# process's SparkSession is created before `build_resources` sets it (and PATH lacks the venv).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

ALL_ASSETS = [*HOUSING_ASSETS, *MONITORING_ASSETS]


def materialize_graph(
    platform: Platform,
    *,
    selection: list[str] | None = None,
    source: Path | None = None,
    run_config: dict | None = None,
    resources: dict[str, object] | None = None,
    tags: dict[str, str] | None = None,
) -> ExecuteInProcessResult:
    settings = platform.settings if source is None else replace(platform.settings, data_source=str(source))
    return materialize(
        [*ALL_ASSETS, *HOUSING_CHECKS],
        instance=platform.instance,
        resources={**build_resources(settings), **(resources or {})},
        selection=selection,
        run_config=run_config,
        tags=tags,
        raise_on_error=False,
    )


def write_shifted_copy(reference_csv: Path, target: Path, *, income_factor: float) -> Path:
    """The reference data with every block group's median income scaled: still plausible (the
    contracts pass), but a different population from the one the model learned."""
    frame = pd.read_csv(reference_csv)
    frame["median_income"] = (frame["median_income"] * income_factor).round(4)
    frame.to_csv(target, index=False)
    return target
