"""The automation tests' helpers: the whole graph (the flow and the assets that watch it) materialized
on a platform from `mlops_assets_tests.conftest`, with resources overridable per run."""

import os
import sys
from pathlib import Path

import pandas as pd
from dagster import ExecuteInProcessResult

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets_tests.conftest import Platform

# Batch scoring runs Python workers: they must start from this interpreter even when the test
# process's SparkSession is created before `build_resources` sets it (and PATH lacks the venv).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

ALL_ASSETS = {key.to_user_string() for key in ProjectKeys("housing").all()}
# What a run of the whole graph materializes with no served prediction ever given an outcome:
# online_performance has nothing to judge and records nothing.
ASSETS_WITHOUT_LIVE_OUTCOMES = ALL_ASSETS - {"housing/online_performance"}


def materialize_graph(platform: Platform, **options) -> ExecuteInProcessResult:
    """Housing's whole graph, the flow and the assets that watch it (options as `Platform.materialize`)."""
    return platform.materialize(monitoring=True, **options)


def write_shifted_copy(reference_csv: Path, target: Path, *, income_factor: float) -> Path:
    """The reference data with every block group's median income scaled: still plausible (the
    contracts pass), but a different population from the one the model learned."""
    frame = pd.read_csv(reference_csv)
    frame["median_income"] = (frame["median_income"] * income_factor).round(4)
    frame.to_csv(target, index=False)
    return target
