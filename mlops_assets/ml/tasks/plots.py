"""PNG renderers for evaluation plots; they draw what they are given and compute nothing.

Each figure gets its own Agg canvas instead of going through pyplot: no process-wide backend switch,
no global figure registry to leak into, and safe when several evaluations run in threads."""

import io

import numpy as np

FIGURE_SIZE = (6, 4)
DPI = 80


def _figure_and_axis():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def residuals_png(actual: np.ndarray, predicted: np.ndarray, title: str) -> bytes:
    figure, axis = _figure_and_axis()
    axis.scatter(predicted, actual - predicted, s=4, alpha=0.35)
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual - predicted")
    axis.set_title(title)
    return _png(figure)


def confusion_matrix_png(matrix: np.ndarray, labels: list[str], title: str) -> bytes:
    """`matrix[i, j]`: rows whose actual label is labels[i] and predicted label labels[j]."""
    figure, axis = _figure_and_axis()
    axis.imshow(matrix, cmap="Blues")
    ticks = range(len(labels))
    axis.set_xticks(ticks, labels=labels, rotation=30 if len(labels) > 3 else 0)
    axis.set_yticks(ticks, labels=labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    darkest = matrix.max() if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > darkest / 2 else "black"
        axis.text(column, row, f"{count:,}", ha="center", va="center", color=color)
    axis.set_title(title)
    return _png(figure)


def roc_curve_png(
    false_positive_rate: np.ndarray,
    true_positive_rate: np.ndarray,
    roc_auc: float,
    operating_point: tuple[float, float],
    title: str,
) -> bytes:
    """`operating_point`: (false positive rate, true positive rate) at the decision threshold."""
    figure, axis = _figure_and_axis()
    axis.plot(false_positive_rate, true_positive_rate, label=f"ROC AUC {roc_auc:.3f}")
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--", label="chance")
    axis.plot(*operating_point, "o", color="black", label="decision threshold")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.legend(loc="lower right")
    axis.set_title(title)
    return _png(figure)


def precision_recall_png(
    recall: np.ndarray,
    precision: np.ndarray,
    pr_auc: float,
    prevalence: float,
    operating_point: tuple[float, float],
    title: str,
) -> bytes:
    """`operating_point`: (recall, precision) at the decision threshold; `prevalence` is what chance scores."""
    figure, axis = _figure_and_axis()
    axis.step(recall, precision, where="post", label=f"average precision {pr_auc:.3f}")
    axis.axhline(prevalence, color="grey", linewidth=0.8, linestyle="--", label="chance")
    axis.plot(*operating_point, "o", color="black", label="decision threshold")
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_ylim(0, 1.02)
    axis.legend(loc="lower left")
    axis.set_title(title)
    return _png(figure)


def calibration_png(mean_predicted: np.ndarray, observed_fraction: np.ndarray, title: str) -> bytes:
    figure, axis = _figure_and_axis()
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--", label="perfectly calibrated")
    axis.plot(mean_predicted, observed_fraction, "o-", label="model")
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed fraction of positives")
    axis.legend(loc="upper left")
    axis.set_title(title)
    return _png(figure)


def business_value_png(
    thresholds: np.ndarray, values: np.ndarray, marked_thresholds: dict[str, float], title: str
) -> bytes:
    """Total value against threshold, with a vertical line per named threshold."""
    figure, axis = _figure_and_axis()
    axis.plot(thresholds, values, color="black", linewidth=1.2)
    for index, (name, threshold) in enumerate(marked_thresholds.items()):
        axis.axvline(threshold, color=f"C{index}", linestyle="--", linewidth=1, label=f"{name} ({threshold:.3f})")
    axis.axhline(0.0, color="grey", linewidth=0.6)
    axis.set_xlabel("threshold on the positive probability")
    axis.set_ylabel("business value")
    axis.set_xlim(0, 1)
    if marked_thresholds:
        axis.legend(loc="best", fontsize="small")
    axis.set_title(title)
    return _png(figure)
