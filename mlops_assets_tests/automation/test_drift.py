"""Drift statistics on the reference data: quiet on a sample of the same population, loud on a shifted one."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.platform.assets.monitoring import recent_predictions
from mlops_assets.platform.automation.drift import DRIFTED, OK, TOO_FEW_SAMPLES, DriftPolicy, compare_features
from mlops_assets.projects.housing.domain import CATEGORY, NUMERIC_FEATURES, RAW_FEATURES

POLICY = DriftPolicy(prediction_log_dir="unused", psi_threshold=0.2, ks_threshold=0.1, min_samples=500)


def housing_drift(reference: pd.DataFrame, current: pd.DataFrame):
    return compare_features(reference, current, POLICY, numeric=NUMERIC_FEATURES, categorical=(CATEGORY,))


@pytest.fixture(scope="module")
def reference(reference_csv: Path) -> pd.DataFrame:
    return pd.read_csv(reference_csv)


def statuses(results) -> dict[str, str]:
    return {result.feature: result.status for result in results}


def test_a_sample_of_the_same_population_does_not_drift(reference: pd.DataFrame):
    results = housing_drift(reference, reference.sample(n=3_000, random_state=7))
    assert set(statuses(results).values()) == {OK}
    assert max(result.psi for result in results) < 0.05


def test_a_shifted_feature_drifts_and_only_that_one(reference: pd.DataFrame):
    shifted = reference.copy()
    shifted["median_income"] *= 1.3
    shifted["ocean_proximity"] = np.where(shifted.index % 3 == 0, "INLAND", shifted["ocean_proximity"])
    results = {result.feature: result for result in housing_drift(reference, shifted)}
    assert {name for name, result in results.items() if result.status == DRIFTED} == {"median_income", "ocean_proximity"}
    assert results["median_income"].psi > 0.2 and results["median_income"].ks > 0.1
    assert results["ocean_proximity"].ks is None


def test_missing_values_count_as_a_change(reference: pd.DataFrame):
    emptied = reference.copy()
    emptied.loc[emptied.index % 4 == 0, "total_bedrooms"] = np.nan
    results = {result.feature: result for result in housing_drift(reference, emptied)}
    assert results["total_bedrooms"].status == DRIFTED
    assert results["total_bedrooms"].ks < 0.1  # the values left look the same: only PSI's missing bin sees it


def test_too_few_values_are_not_judged(reference: pd.DataFrame):
    few = reference.head(100).copy()
    few["median_income"] *= 3
    assert set(statuses(housing_drift(reference, few)).values()) == {TOO_FEW_SAMPLES}


def test_the_prediction_log_is_read_for_the_recent_days_only(tmp_path: Path, reference: pd.DataFrame):
    log = tmp_path / "prediction_log"
    today, old = log / "date=2026-01-14", log / "date=2025-12-01"
    for folder in (today, old):
        folder.mkdir(parents=True)
    columns = ["request_id", "longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms",
               "population", "households", "median_income", "ocean_proximity", "prediction"]
    rows = reference.assign(request_id="r", prediction=1.0)[columns]
    rows.head(700).to_parquet(today / "part-1.parquet")
    rows.head(50).to_parquet(old / "part-1.parquet")
    # A file a worker is still writing, under its temporary dot-name: not read.
    (today / ".part-2.parquet.tmp").write_bytes(b"not parquet yet")

    recent = recent_predictions(log, days=7, now=datetime(2026, 1, 14, 12, tzinfo=UTC), raw_features=RAW_FEATURES)

    assert len(recent) == 700
    assert list(recent.columns) == columns[1:-1]
    assert recent_predictions(tmp_path / "missing", days=7, now=datetime.now(UTC), raw_features=RAW_FEATURES) is None
