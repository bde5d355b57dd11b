"""Feature drift between a reference sample (what the production model was trained on) and a current
one (the newest data, or what the serving app has been asked), per raw feature, on the driver.

Two statistics, because they fail differently: the population stability index (PSI) over the
reference's deciles sees a change anywhere in the distribution, including in missing values; the
two-sample Kolmogorov-Smirnov statistic (the largest gap between the two CDFs) sees a shift of the
bulk that coarse bins can hide. A feature drifts when either passes its threshold, and is judged only
with enough values on both sides: a handful of requests says nothing about a distribution.
"""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field


PSI_BINS = 10
# An empty bin would make PSI infinite: proportions are floored at this share.
PSI_FLOOR = 1e-4
# PSI and KS are stable well before this many rows; beyond it both sides are sampled down.
MAX_ROWS_COMPARED = 200_000
SAMPLE_SEED = 0

OK, DRIFTED, TOO_FEW_SAMPLES = "ok", "drifted", "too few samples"


class DriftPolicy(ConfigurableResource):
    """When a feature counts as drifted, where the serving app's inputs are, and how often drift may retrain."""

    psi_threshold: float = Field(
        default=0.2, gt=0, description="PSI at or above which a feature has drifted (0.1: moderate shift, 0.2: significant)."
    )
    ks_threshold: float = Field(
        default=0.1, gt=0, le=1, description="Kolmogorov-Smirnov statistic at or above which a numeric feature has drifted."
    )
    min_samples: int = Field(
        default=500, ge=1, description="Fewest values on each side for a feature to be judged at all."
    )
    prediction_log_dir: str = Field(description="The serving app's prediction logs: one folder per registered model (Parquet, a column per raw feature).")
    serving_window_days: int = Field(default=7, ge=1, description="How many recent days of the prediction log to compare.")
    retrain_cooldown_hours: float = Field(
        default=12.0, ge=0, description="No drift-triggered retraining within this many hours of the last training."
    )


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    reference_count: int
    current_count: int
    psi: float | None
    ks: float | None
    ks_pvalue: float | None
    status: str

    def as_record(self) -> dict:
        return asdict(self)


def _proportions(counts: np.ndarray) -> np.ndarray:
    shares = counts / max(counts.sum(), 1)
    return np.maximum(shares, PSI_FLOOR)


def _psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    expected, actual = _proportions(reference_counts), _proportions(current_counts)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI over the reference's quantile bins, with missing values as one more bin."""
    reference_values, current_values = reference[~np.isnan(reference)], current[~np.isnan(current)]
    inner_edges = np.unique(np.quantile(reference_values, np.linspace(0, 1, bins + 1)[1:-1]))
    # Bins are closed on the right side of each edge; values beyond the reference's range land in the end bins.
    reference_bins = np.bincount(np.searchsorted(inner_edges, reference_values, side="right"), minlength=len(inner_edges) + 1)
    current_bins = np.bincount(np.searchsorted(inner_edges, current_values, side="right"), minlength=len(inner_edges) + 1)
    missing = [np.isnan(reference).sum(), np.isnan(current).sum()]
    return _psi(np.append(reference_bins, missing[0]), np.append(current_bins, missing[1]))


def categorical_psi(reference: np.ndarray, current: np.ndarray) -> float:
    categories = sorted(set(pd.unique(reference)) | set(pd.unique(current)), key=str)
    reference_counts = pd.Series(reference).value_counts(dropna=False).reindex(categories, fill_value=0).to_numpy()
    current_counts = pd.Series(current).value_counts(dropna=False).reindex(categories, fill_value=0).to_numpy()
    return _psi(reference_counts.astype(float), current_counts.astype(float))


def _sampled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if len(frame) <= MAX_ROWS_COMPARED else frame.sample(n=MAX_ROWS_COMPARED, random_state=SAMPLE_SEED)


def compare_features(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    policy: DriftPolicy,
    *,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
) -> list[FeatureDrift]:
    """Per feature: PSI (numeric and categorical), KS (numeric), and whether it drifted."""
    from scipy.stats import ks_2samp

    reference, current = _sampled(reference), _sampled(current)
    results = []
    for feature in (*numeric, *categorical):
        is_category = feature in categorical
        if is_category:
            reference_values = reference[feature].to_numpy(dtype=object)
            current_values = current[feature].to_numpy(dtype=object)
            counts = (int(pd.notna(reference_values).sum()), int(pd.notna(current_values).sum()))
        else:
            reference_values = reference[feature].to_numpy(dtype=np.float64)
            current_values = current[feature].to_numpy(dtype=np.float64)
            counts = (int((~np.isnan(reference_values)).sum()), int((~np.isnan(current_values)).sum()))
        if min(counts) < policy.min_samples:
            results.append(FeatureDrift(feature, *counts, psi=None, ks=None, ks_pvalue=None, status=TOO_FEW_SAMPLES))
            continue
        if is_category:
            psi, ks, pvalue = categorical_psi(reference_values, current_values), None, None
        else:
            psi = numeric_psi(reference_values, current_values)
            test = ks_2samp(reference_values[~np.isnan(reference_values)], current_values[~np.isnan(current_values)])
            ks, pvalue = float(test.statistic), float(test.pvalue)
        drifted = psi >= policy.psi_threshold or (ks is not None and ks >= policy.ks_threshold)
        results.append(FeatureDrift(feature, *counts, psi=psi, ks=ks, ks_pvalue=pvalue, status=DRIFTED if drifted else OK))
    return results
