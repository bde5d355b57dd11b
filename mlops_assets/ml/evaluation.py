"""Holdout metrics, overall and per `ocean_proximity` slice, and the residual plot."""

import io

import numpy as np
import pandas as pd

from mlops_assets.ml.housing import CATEGORY


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    errors = predicted - actual
    total = float(np.sum((actual - actual.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "r2": 1.0 - float(np.sum(errors**2)) / total if total > 0 else float("nan"),
    }


def metrics_table(holdout: pd.DataFrame, actual: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """One row for the whole holdout ('overall') and one per category present in it."""
    rows = [{"slice": "overall", "rows": len(actual), **regression_metrics(actual, predicted)}]
    categories = holdout[CATEGORY].to_numpy()
    for category in sorted(set(categories)):
        mask = categories == category
        rows.append({"slice": category, "rows": int(mask.sum()), **regression_metrics(actual[mask], predicted[mask])})
    return pd.DataFrame(rows)


def residual_plot_png(actual: np.ndarray, predicted: np.ndarray, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=90)
    axis.scatter(predicted, actual - predicted, s=4, alpha=0.35)
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xlabel("predicted median house value (USD)")
    axis.set_ylabel("actual - predicted (USD)")
    axis.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
