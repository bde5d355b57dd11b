"""What every task kind shares: the evaluation it returns, the task protocol, the value of outcomes, slices."""

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

OVERALL = "overall"
MISSING_SLICE = "missing"


@dataclass(frozen=True)
class CostMatrix:
    """Value per row of each outcome of a yes/no decision, in money units, negative for a cost.

    For churn, with a retention offer made to every customer predicted to leave: a true positive is a
    customer kept (their value minus the offer), a false positive an offer wasted on a customer who
    would have stayed, a false negative a customer lost, a true negative nothing at all."""

    true_positive: float
    false_positive: float
    false_negative: float
    true_negative: float

    def __post_init__(self) -> None:
        for outcome, value in self.as_dict().items():
            if not math.isfinite(value):
                raise ValueError(f"the value of a {outcome.replace('_', ' ')} must be a finite number, not {value!r}")

    def as_dict(self) -> dict[str, float]:
        return {field.name: float(getattr(self, field.name)) for field in fields(self)}

    def value(self, *, true_positive, false_positive, false_negative, true_negative):
        """Total value of these outcome counts: numbers, or arrays of counts (one per threshold)."""
        return (
            true_positive * self.true_positive
            + false_positive * self.false_positive
            + false_negative * self.false_negative
            + true_negative * self.true_negative
        )

    def describe(self) -> str:
        outcomes = ", ".join(f"{outcome.replace('_', ' ')} {value:+,g}" for outcome, value in self.as_dict().items())
        return f"value per row: {outcomes}"


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    slices: list[dict]
    plots: dict[str, bytes]
    tables: dict[str, list[dict]]
    decision: dict[str, float | str]


@runtime_checkable
class Task(Protocol):
    name: str
    primary_metric: str
    higher_is_better: bool

    def score(self, model, features: pd.DataFrame, target: np.ndarray) -> dict[str, float]:
        """Quick metrics of a fitted estimator (train and validation metrics, variant selection),
        primary_metric among them."""
        ...

    def outputs(self, model, features: pd.DataFrame) -> np.ndarray:
        """What `score` judges the model by: values, the positive class's scores, or every class's probabilities."""
        ...

    def score_outputs(self, model, outputs: np.ndarray, target: np.ndarray) -> dict[str, float]:
        """`score` from outputs computed once (`model` names the classes): resampling them costs no prediction."""
        ...

    def choose_decision(self, model, features: pd.DataFrame, target: np.ndarray, costs: CostMatrix | None) -> dict:
        """What evaluate will apply, decided on the validation split, never on the holdout."""
        ...

    def evaluate(
        self,
        model,
        features: pd.DataFrame,
        target: np.ndarray,
        *,
        slice_values: np.ndarray | None,
        decision: dict,
        costs: CostMatrix | None,
        title: str,
    ) -> Evaluation: ...


def slice_rows(
    overall: dict[str, float],
    row_count: int,
    slice_values: np.ndarray | None,
    metrics_of: Callable[[np.ndarray], dict[str, float]],
) -> list[dict]:
    """The overall row, then one row per slice value present, sorted; `metrics_of` takes a row mask.
    Values are reported as text, a missing value as 'missing', so that the table has one column type."""
    rows = [{"slice": OVERALL, "rows": row_count, **overall}]
    if slice_values is None:
        return rows
    labels = pd.Series(np.asarray(slice_values, dtype=object), dtype=object)
    if len(labels) != row_count:
        raise ValueError(f"{len(labels)} slice values for {row_count} rows")
    labels = labels.where(labels.notna(), MISSING_SLICE).astype(str).to_numpy()
    for label in sorted(set(labels)):
        mask = labels == label
        rows.append({"slice": label, "rows": int(mask.sum()), **metrics_of(mask)})
    return rows
