"""Model performance on live outcomes: the rows the serving app was asked, the outcomes callers sent
back for them, and how sure a figure is (a bootstrap over those rows).

Each version is judged on every row with an outcome, not only on the rows it answered: the logged
features are scored again by the champion and by the challenger, so the two are compared on the same
rows (a paired comparison: the rows' own difficulty cancels out, and a canary's small share still
counts for both). The versions are deterministic, so the champion's scores are the ones it served.
"""

from dataclasses import asdict, dataclass

import numpy as np

from mlops_assets.ml.tasks import Task

BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A metric on `rows` outcomes, with its bootstrap interval at `confidence`."""

    value: float
    low: float
    high: float
    rows: int
    confidence: float

    def as_record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """The challenger against the champion on the same rows: `improvement` is positive when the
    challenger is better (whatever the metric's direction), with its bootstrap interval."""

    metric: str
    champion: float
    challenger: float
    improvement: float
    low: float
    high: float
    rows: int
    confidence: float

    def as_record(self) -> dict:
        return asdict(self)


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _resamples(rows: int, rounds: int) -> np.ndarray:
    return np.random.default_rng(BOOTSTRAP_SEED).integers(0, rows, size=(rounds, rows))


def estimate(
    task: Task, model, outputs: np.ndarray, target: np.ndarray, *, rounds: int, confidence: float
) -> Estimate:
    """The primary metric of `outputs` against `target`, and its percentile bootstrap interval."""
    def metric(rows: np.ndarray) -> float:
        return task.score_outputs(model, outputs[rows], target[rows])[task.primary_metric]

    value = metric(np.arange(len(target)))
    low, high = _interval(np.array([metric(rows) for rows in _resamples(len(target), rounds)]), confidence)
    return Estimate(value, low, high, len(target), confidence)


def paired_comparison(
    task: Task,
    champion: tuple[object, np.ndarray],
    challenger: tuple[object, np.ndarray],
    target: np.ndarray,
    *,
    rounds: int,
    confidence: float,
) -> PairedComparison:
    """`champion` and `challenger` are (model, outputs on the same rows); each resample scores both."""
    sign = 1.0 if task.higher_is_better else -1.0

    def metrics(rows: np.ndarray) -> tuple[float, float]:
        return tuple(
            task.score_outputs(model, outputs[rows], target[rows])[task.primary_metric] for model, outputs in (champion, challenger)
        )

    champion_value, challenger_value = metrics(np.arange(len(target)))
    improvements = np.array(
        [sign * (theirs - ours) for ours, theirs in (metrics(rows) for rows in _resamples(len(target), rounds))]
    )
    low, high = _interval(improvements, confidence)
    return PairedComparison(
        task.primary_metric,
        champion_value,
        challenger_value,
        sign * (challenger_value - champion_value),
        low,
        high,
        len(target),
        confidence,
    )


def worse_than(task: Task, live: Estimate, holdout: float, tolerance: float) -> bool:
    """Whether even the better end of the live interval is worse than the holdout figure beyond
    `tolerance` (a fraction of it): evidence that the model got worse, not bad luck."""
    if task.higher_is_better:
        return live.high < holdout * (1 - tolerance)
    return live.low > holdout * (1 + tolerance)
