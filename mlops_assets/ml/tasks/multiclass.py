"""Multiclass classification: accuracy, macro F1, log loss, and precision and recall per class.

The predicted class is the most probable one, and every metric counts the model's classes, so a
slice lacking a class has the same metric keys, NaN where that class leaves a ratio undefined."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.ml.tasks import plots
from mlops_assets.ml.tasks.base import CostMatrix, Evaluation, slice_rows


def multiclass_metrics(actual: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    predicted = classes[np.argmax(probabilities, axis=1)]
    return {
        "accuracy": float(accuracy_score(actual, predicted)),
        # A class neither present nor predicted has no F1 and is left out of the mean instead of counting 0.
        "macro_f1": float(f1_score(actual, predicted, labels=classes, average="macro", zero_division=np.nan)),
        "log_loss": float(log_loss(actual, probabilities, labels=classes)),
    }


def per_class_metrics(actual: np.ndarray, predicted: np.ndarray, classes: np.ndarray) -> list[dict]:
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        actual, predicted, labels=classes, zero_division=np.nan
    )
    return [
        {
            "class": str(label),
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
        }
        for index, label in enumerate(classes)
    ]


@dataclass(frozen=True)
class MulticlassTask:
    name: str = field(default="multiclass", init=False)
    primary_metric: str = field(default="accuracy", init=False)
    higher_is_better: bool = field(default=True, init=False)

    def score(self, model, features: pd.DataFrame, target: np.ndarray) -> dict[str, float]:
        return self.score_outputs(model, self.outputs(model, features), target)

    def outputs(self, model, features: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(features)

    def score_outputs(self, model, outputs: np.ndarray, target: np.ndarray) -> dict[str, float]:
        return multiclass_metrics(np.asarray(target), outputs, np.asarray(model.classes_))

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
        from sklearn.metrics import confusion_matrix

        actual = np.asarray(target)
        classes = np.asarray(model.classes_)
        probabilities = model.predict_proba(features)
        predicted = classes[np.argmax(probabilities, axis=1)]

        def metrics_of(rows: np.ndarray | slice) -> dict[str, float]:
            metrics = multiclass_metrics(actual[rows], probabilities[rows], classes)
            for row in per_class_metrics(actual[rows], predicted[rows], classes):
                metrics[f"precision/{row['class']}"] = row["precision"]
                metrics[f"recall/{row['class']}"] = row["recall"]
            return metrics

        overall = metrics_of(slice(None))
        matrix = confusion_matrix(actual, predicted, labels=classes)
        labels = [str(label) for label in classes]
        return Evaluation(
            metrics=overall,
            slices=slice_rows(overall, len(actual), slice_values, metrics_of),
            plots={"confusion_matrix.png": plots.confusion_matrix_png(matrix, labels, title)},
            tables={
                "per_class": per_class_metrics(actual, predicted, classes),
                "confusion_matrix": [
                    {"actual": truth, "predicted": guess, "rows": int(matrix[row, column])}
                    for row, truth in enumerate(labels)
                    for column, guess in enumerate(labels)
                ],
            },
            decision={},
        )
