"""Fitting a project's variants and choosing one, on the validation split only (never the holdout).

Each variant is fit on the train split and scored on the validation split; the best on the task's
primary metric wins. On a small validation split several variants often score alike on a coarse
metric (accuracy counts whole rows): a tie goes to the lower validation loss, which still sees how
sure each model is, and only then to the first declared. What a variant learnt is measured by permutation
importance of its raw input columns on the validation split.
"""

import io
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.ml.tasks import Task

IMPORTANCE_REPEATS = 3
IMPORTANCE_SEED = 0
# Scorers that take the raw labels as they are (strings for classifiers), higher is better.
_IMPORTANCE_SCORING = {"regression": "neg_root_mean_squared_error", "binary": "neg_log_loss", "multiclass": "neg_log_loss"}
# The loss that breaks a tie on the primary metric, lower is better.
_TIE_BREAKING_LOSS = {"regression": "mae", "binary": "log_loss", "multiclass": "log_loss"}


@dataclass(frozen=True)
class VariantResult:
    name: str
    params: Mapping[str, Any]
    model: Any
    train_metrics: dict[str, float]
    validation_metrics: dict[str, float]
    training_seconds: float
    model_size_bytes: int
    importance: list[dict[str, float | str]]

    def summary(self, primary_metric: str) -> dict[str, Any]:
        return {
            "variant": self.name,
            f"validation_{primary_metric}": self.validation_metrics[primary_metric],
            f"train_{primary_metric}": self.train_metrics[primary_metric],
            "training_seconds": round(self.training_seconds, 2),
            "model_size_bytes": self.model_size_bytes,
        }


def fit_variant(
    name: str,
    params: Mapping[str, Any],
    build_model: Callable[[Mapping[str, Any]], Any],
    task: Task,
    train: tuple[pd.DataFrame, np.ndarray],
    validation: tuple[pd.DataFrame, np.ndarray],
) -> VariantResult:
    model = build_model(params)
    started = time.perf_counter()
    model.fit(*train)
    training_seconds = time.perf_counter() - started
    return VariantResult(
        name=name,
        params=dict(params),
        model=model,
        train_metrics=task.score(model, *train),
        validation_metrics=task.score(model, *validation),
        training_seconds=training_seconds,
        model_size_bytes=len(pickle.dumps(model)),
        importance=permutation_importance_table(model, task, *validation),
    )


def best_variant(results: list[VariantResult], task: Task) -> VariantResult:
    sign = 1.0 if task.higher_is_better else -1.0
    loss = _TIE_BREAKING_LOSS[task.name]
    # max() keeps the first of equals: the first declared variant wins a tie on both.
    return max(
        results,
        key=lambda result: (sign * result.validation_metrics[task.primary_metric], -result.validation_metrics.get(loss, 0.0)),
    )


def selection_reason(winner: VariantResult, results: list[VariantResult], task: Task) -> str:
    metric = task.primary_metric
    direction = "highest" if task.higher_is_better else "lowest"
    others = ", ".join(f"{r.name} {r.validation_metrics[metric]:,.4g}" for r in results if r is not winner) or "no other variant"
    reason = f"{winner.name}: {direction} validation {metric} ({winner.validation_metrics[metric]:,.4g}; {others})"
    tied = [r for r in results if r is not winner and r.validation_metrics[metric] == winner.validation_metrics[metric]]
    if tied:
        loss = _TIE_BREAKING_LOSS[task.name]
        losses = ", ".join(f"{r.name} {r.validation_metrics.get(loss, float('nan')):.4g}" for r in [winner, *tied])
        reason += f"; tied, the lowest validation {loss} wins ({losses})"
    return reason


def permutation_importance_table(model: Any, task: Task, features: pd.DataFrame, target: np.ndarray) -> list[dict]:
    """How much the validation score drops when one raw column is shuffled, most important first."""
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        model,
        features,
        target,
        scoring=_IMPORTANCE_SCORING[task.name],
        n_repeats=IMPORTANCE_REPEATS,
        random_state=IMPORTANCE_SEED,
        n_jobs=1,
    )
    rows = [
        {"feature": column, "importance": float(mean), "std": float(std)}
        for column, mean, std in zip(features.columns, result.importances_mean, result.importances_std)
    ]
    return sorted(rows, key=lambda row: -row["importance"])


def importance_plot_png(table: list[dict], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table[:20][::-1]
    figure, axis = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2), dpi=80)
    axis.barh([row["feature"] for row in shown], [row["importance"] for row in shown], xerr=[row["std"] for row in shown])
    axis.set_xlabel("drop in validation score when shuffled")
    axis.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
