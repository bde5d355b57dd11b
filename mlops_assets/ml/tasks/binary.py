"""Binary classification: threshold-free scores, thresholds chosen on validation, and their business value.

A row is predicted positive when its positive-class probability is at or above the threshold, the
convention of sklearn's curves, so the thresholds chosen are validation scores themselves."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.ml.tasks import plots
from mlops_assets.ml.tasks.base import CostMatrix, Evaluation, slice_rows

NAN = float("nan")
THRESHOLD_GRID = np.round(np.arange(21) * 0.05, 2)
PLOTTED_THRESHOLDS = np.linspace(0.0, 1.0, 201)
OUTCOMES = ("true_positive", "false_positive", "false_negative", "true_negative")
HINDSIGHT = "best_on_these_rows"
PLOT_LABELS = {
    "threshold": "threshold (F1 on validation)",
    "business_threshold": "business threshold (validation)",
    HINDSIGHT: "best on these rows (hindsight)",
}


def both_classes(actual: np.ndarray) -> bool:
    return bool(actual.any()) and not bool(actual.all())


def threshold_free_metrics(actual: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """`actual`: True for the positive class; `scores`: its predicted probability. The AUCs are NaN on
    rows of one class, where ranking positives above negatives means nothing."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    ranked = both_classes(actual)
    return {
        "roc_auc": float(roc_auc_score(actual, scores)) if ranked else NAN,
        "pr_auc": float(average_precision_score(actual, scores)) if ranked else NAN,
        "log_loss": float(log_loss(actual, scores, labels=[False, True])),
        "brier": float(brier_score_loss(actual, scores, pos_label=True)),
    }


def thresholded_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    undefined = {"pos_label": True, "zero_division": np.nan}
    return {
        "precision": float(precision_score(actual, predicted, **undefined)),
        "recall": float(recall_score(actual, predicted, **undefined)),
        "f1": float(f1_score(actual, predicted, **undefined)),
        "accuracy": float(accuracy_score(actual, predicted)),
    }


def outcome_counts(actual: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Counts of each outcome at every threshold at once; sklearn's curves give rates, not counts, and
    cannot count rows of one class."""
    positive_scores = np.sort(scores[actual])
    negative_scores = np.sort(scores[~actual])
    true_positive = len(positive_scores) - np.searchsorted(positive_scores, thresholds, side="left")
    false_positive = len(negative_scores) - np.searchsorted(negative_scores, thresholds, side="left")
    return {
        "true_positive": true_positive,
        "false_positive": false_positive,
        "false_negative": len(positive_scores) - true_positive,
        "true_negative": len(negative_scores) - false_positive,
    }


def business_metrics(
    actual: np.ndarray, predicted: np.ndarray, costs: CostMatrix, suffix: str = ""
) -> dict[str, float]:
    from sklearn.metrics import confusion_matrix

    true_negative, false_positive, false_negative, true_positive = confusion_matrix(
        actual, predicted, labels=[False, True]
    ).ravel()
    value = float(
        costs.value(
            true_positive=true_positive,
            false_positive=false_positive,
            false_negative=false_negative,
            true_negative=true_negative,
        )
    )
    return {f"business_value{suffix}": value, f"business_value_per_row{suffix}": value / len(actual)}


def best_business_threshold(actual: np.ndarray, scores: np.ndarray, costs: CostMatrix) -> tuple[float, float]:
    """(threshold, total value) maximising the value on these rows; the lowest such threshold on a tie.
    One candidate lies above every score: flagging no row at all may be the best there is."""
    candidates = np.append(np.unique(scores), np.nextafter(scores.max(), np.inf))
    values = costs.value(**outcome_counts(actual, scores, candidates))
    best = int(np.argmax(values))
    return float(candidates[best]), float(values[best])


def f1_threshold(actual: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(actual, scores)
    # The curve's last point (precision 1, recall 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return float(thresholds[int(np.argmax(f1))])


@dataclass(frozen=True)
class BinaryTask:
    positive_label: str
    name: str = field(default="binary", init=False)
    primary_metric: str = field(default="roc_auc", init=False)
    higher_is_better: bool = field(default=True, init=False)

    def labels(self, model) -> tuple[str, str]:
        """(positive, negative) among the model's classes."""
        classes = list(model.classes_)
        if len(classes) != 2 or self.positive_label not in classes:
            raise ValueError(
                f"a binary task with positive label {self.positive_label!r} needs a model of two classes "
                f"including it, not {classes}"
            )
        negative = classes[1 - classes.index(self.positive_label)]
        return self.positive_label, negative

    def positive_scores(self, model, features: pd.DataFrame) -> np.ndarray:
        self.labels(model)
        return model.predict_proba(features)[:, list(model.classes_).index(self.positive_label)]

    def is_positive(self, target: np.ndarray) -> np.ndarray:
        return np.asarray(target) == self.positive_label

    def score(self, model, features: pd.DataFrame, target: np.ndarray) -> dict[str, float]:
        return self.score_outputs(model, self.outputs(model, features), target)

    def outputs(self, model, features: pd.DataFrame) -> np.ndarray:
        return self.positive_scores(model, features)

    def score_outputs(self, model, outputs: np.ndarray, target: np.ndarray) -> dict[str, float]:
        return threshold_free_metrics(self.is_positive(target), outputs)

    def choose_decision(self, model, features: pd.DataFrame, target: np.ndarray, costs: CostMatrix | None) -> dict:
        """{"threshold": maximising F1, "business_threshold": maximising the value (only with costs),
        "positive_label": ...}, all decided on these rows, which should be the validation split."""
        actual = self.is_positive(target)
        if not both_classes(actual):
            raise ValueError("cannot choose a threshold on rows of one class only")
        scores = self.positive_scores(model, features)
        decision: dict = {"threshold": f1_threshold(actual, scores)}
        if costs is not None:
            decision["business_threshold"] = best_business_threshold(actual, scores, costs)[0]
        decision["positive_label"] = self.positive_label
        return decision

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
        """Metrics at decision["threshold"]; with costs, the business value there and at
        decision["business_threshold"] when decided. Without costs no business metric, table or plot."""
        if "threshold" not in decision:
            raise ValueError("the decision holds no threshold: choose it with choose_decision on the validation split")
        threshold = float(decision["threshold"])
        business_threshold = decision.get("business_threshold") if costs is not None else None
        positive, negative = self.labels(model)
        actual = self.is_positive(target)
        scores = self.positive_scores(model, features)

        def metrics_of(rows: np.ndarray | slice) -> dict[str, float]:
            predicted = scores[rows] >= threshold
            metrics = threshold_free_metrics(actual[rows], scores[rows]) | thresholded_metrics(actual[rows], predicted)
            if costs is not None:
                metrics |= business_metrics(actual[rows], predicted, costs)
                if business_threshold is not None:
                    at_business_threshold = scores[rows] >= business_threshold
                    metrics |= business_metrics(actual[rows], at_business_threshold, costs, "_at_business_threshold")
            return metrics

        overall = metrics_of(slice(None))
        plotted, tables = self._curves(actual, scores, threshold, positive, negative, title)
        if costs is not None:
            decided = {"threshold": threshold}
            if business_threshold is not None:
                decided["business_threshold"] = float(business_threshold)
            table, hindsight = self._business_value_table(actual, scores, costs, decided)
            tables["business_value_by_threshold"] = table
            values = costs.value(**outcome_counts(actual, scores, PLOTTED_THRESHOLDS))
            marked = {PLOT_LABELS[point]: value for point, value in (decided | {HINDSIGHT: hindsight}).items()}
            plotted["business_value.png"] = plots.business_value_png(PLOTTED_THRESHOLDS, values, marked, title)
        return Evaluation(
            metrics=overall,
            slices=slice_rows(overall, len(actual), slice_values, metrics_of),
            plots=plotted,
            tables=tables,
            decision=dict(decision),
        )

    @staticmethod
    def _curves(
        actual: np.ndarray, scores: np.ndarray, threshold: float, positive: str, negative: str, title: str
    ) -> tuple[dict[str, bytes], dict[str, list[dict]]]:
        """Confusion matrix and calibration always; ROC and precision-recall only when both classes occur."""
        from sklearn.calibration import calibration_curve
        from sklearn.metrics import auc, average_precision_score, confusion_matrix, precision_recall_curve, roc_curve

        predicted = scores >= threshold
        # Negative first, as sklearn lays out a binary confusion matrix.
        matrix = confusion_matrix(actual, predicted, labels=[False, True])
        names = {False: str(negative), True: str(positive)}
        confusion_table = [
            {"actual": names[truth], "predicted": names[guess], "rows": int(matrix[int(truth), int(guess)])}
            for truth in (True, False)
            for guess in (True, False)
        ]
        observed_fraction, mean_predicted = calibration_curve(actual, scores, n_bins=10)
        plotted = {
            "confusion_matrix.png": plots.confusion_matrix_png(matrix, [names[False], names[True]], title),
            "calibration.png": plots.calibration_png(mean_predicted, observed_fraction, title),
        }
        if both_classes(actual):
            true_positive = int(matrix[1, 1])
            false_positive_rate, true_positive_rate, _ = roc_curve(actual, scores)
            plotted["roc_curve.png"] = plots.roc_curve_png(
                false_positive_rate,
                true_positive_rate,
                float(auc(false_positive_rate, true_positive_rate)),
                (matrix[0, 1] / matrix[0].sum(), true_positive / matrix[1].sum()),
                title,
            )
            precision, recall, _ = precision_recall_curve(actual, scores)
            flagged = int(matrix[:, 1].sum())
            plotted["pr_curve.png"] = plots.precision_recall_png(
                recall,
                precision,
                float(average_precision_score(actual, scores)),
                float(actual.mean()),
                (true_positive / matrix[1].sum(), true_positive / flagged if flagged else 1.0),
                title,
            )
        return plotted, {"confusion_matrix": confusion_table}

    @staticmethod
    def _business_value_table(
        actual: np.ndarray, scores: np.ndarray, costs: CostMatrix, decided: dict[str, float]
    ) -> tuple[list[dict], float]:
        """A 0.05 grid, the decided thresholds, and the best threshold on these rows themselves: shown
        to measure what the validation choice left on the table, never to decide with."""
        hindsight_threshold, _ = best_business_threshold(actual, scores, costs)
        points = [("grid", float(threshold)) for threshold in THRESHOLD_GRID]
        points += list(decided.items()) + [(HINDSIGHT, hindsight_threshold)]
        points.sort(key=lambda point: point[1])
        counts = outcome_counts(actual, scores, np.array([threshold for _, threshold in points]))
        values = costs.value(**counts)
        table = [
            {
                "threshold": threshold,
                "point": point,
                **{outcome: int(counts[outcome][index]) for outcome in OUTCOMES},
                "business_value": float(values[index]),
                "business_value_per_row": float(values[index]) / len(actual),
            }
            for index, (point, threshold) in enumerate(points)
        ]
        return table, hindsight_threshold
