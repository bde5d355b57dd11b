"""Regression: RMSE, MAE and R², overall and per slice, and the residual plot."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.ml.tasks import plots
from mlops_assets.ml.tasks.base import CostMatrix, Evaluation, slice_rows


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R² is NaN, not sklearn's 0 or 1, when the actual values do not vary: there is nothing to explain."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    varies = len(actual) > 1 and bool(np.any(actual != actual[0]))
    return {
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)) if varies else float("nan"),
    }


@dataclass(frozen=True)
class RegressionTask:
    name: str = field(default="regression", init=False)
    primary_metric: str = field(default="rmse", init=False)
    higher_is_better: bool = field(default=False, init=False)

    def score(self, model, features: pd.DataFrame, target: np.ndarray) -> dict[str, float]:
        return self.score_outputs(model, self.outputs(model, features), target)

    def outputs(self, model, features: pd.DataFrame) -> np.ndarray:
        return model.predict(features)

    def score_outputs(self, model, outputs: np.ndarray, target: np.ndarray) -> dict[str, float]:
        return regression_metrics(np.asarray(target, dtype=np.float64), outputs)

    def choose_decision(self, model, features: pd.DataFrame, target: np.ndarray, costs: CostMatrix | None) -> dict:
        return {}

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
    ) -> Evaluation:
        actual = np.asarray(target, dtype=float)
        predicted = np.asarray(model.predict(features), dtype=float)
        overall = regression_metrics(actual, predicted)
        return Evaluation(
            metrics=overall,
            slices=slice_rows(
                overall, len(actual), slice_values, lambda rows: regression_metrics(actual[rows], predicted[rows])
            ),
            plots={"residuals.png": plots.residuals_png(actual, predicted, title)},
            tables={},
            decision={},
        )
