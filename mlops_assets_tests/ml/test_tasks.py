"""Evaluation per task kind, on synthetic data and scikit-learn's bundled data sets: no Spark, MLflow or Dagster."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlops_assets.ml.tasks import (
    MULTICLASS,
    REGRESSION,
    BinaryTask,
    CostMatrix,
    Evaluation,
    MulticlassTask,
    RegressionTask,
    Task,
    task_named,
)

# Undefined ratios must come out as NaN, silently: a warning here means a metric hit 0/0 unguarded.
pytestmark = [
    pytest.mark.filterwarnings("error::sklearn.exceptions.UndefinedMetricWarning"),
    pytest.mark.filterwarnings("error::RuntimeWarning"),
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Churn: an offer (cost 50) keeps a leaving customer worth 200; a customer who leaves unnoticed costs 200.
CHURN_COSTS = CostMatrix(true_positive=150.0, false_positive=-50.0, false_negative=-200.0, true_negative=0.0)


def assert_finite_or_nan(metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
        assert type(value) is float, f"{name} is a {type(value).__name__}"
        assert math.isnan(value) or math.isfinite(value), name


def assert_pngs(plots: dict[str, bytes], names: set[str]) -> None:
    assert set(plots) == names
    for name, image in plots.items():
        assert image.startswith(PNG_SIGNATURE), name


def split(features: pd.DataFrame, target: np.ndarray, *extra: np.ndarray, stratify: bool = True):
    """Half for training, a quarter each for validation and holdout."""
    first = train_test_split(
        features, target, *extra, test_size=0.5, random_state=0, stratify=target if stratify else None
    )
    train, rest = first[0::2], first[1::2]
    second = train_test_split(*rest, test_size=0.5, random_state=0, stratify=rest[1] if stratify else None)
    return train, second[0::2], second[1::2]


class FixedPredictions:
    """A stand-in regressor predicting the 'prediction' column, for worked examples."""

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return features["prediction"].to_numpy()


# ---------------------------------------------------------------- task kinds and costs


def test_each_task_kind_names_its_primary_metric_and_which_way_is_better():
    binary = task_named("binary", positive_label="Yes")
    assert (REGRESSION.name, REGRESSION.primary_metric, REGRESSION.higher_is_better) == ("regression", "rmse", False)
    assert (binary.name, binary.primary_metric, binary.higher_is_better) == ("binary", "roc_auc", True)
    assert (MULTICLASS.name, MULTICLASS.primary_metric, MULTICLASS.higher_is_better) == ("multiclass", "accuracy", True)
    assert task_named("regression") == REGRESSION == RegressionTask()
    assert task_named("multiclass") == MULTICLASS == MulticlassTask()
    assert binary == BinaryTask(positive_label="Yes") and binary.positive_label == "Yes"
    assert all(isinstance(task, Task) for task in (REGRESSION, binary, MULTICLASS))


def test_an_unknown_task_kind_or_a_binary_task_without_its_positive_label_is_refused():
    with pytest.raises(ValueError, match="ranking"):
        task_named("ranking")
    with pytest.raises(TypeError):
        task_named("binary")
    with pytest.raises(TypeError):
        task_named("regression", positive_label="Yes")


def test_a_cost_matrix_values_outcome_counts_and_describes_itself():
    assert CHURN_COSTS.value(true_positive=2, false_positive=1, false_negative=1, true_negative=10) == 300 - 50 - 200
    counts = {name: np.array([1, 0]) for name in ("true_positive", "false_positive", "false_negative", "true_negative")}
    assert list(CHURN_COSTS.value(**counts)) == [150 - 50 - 200, 0]
    assert all(amount in CHURN_COSTS.describe() for amount in ("+150", "-50", "-200"))
    with pytest.raises(ValueError, match="false negative"):
        CostMatrix(true_positive=1.0, false_positive=0.0, false_negative=float("nan"), true_negative=0.0)


# ---------------------------------------------------------------- regression


@pytest.fixture(scope="module")
def diabetes():
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    target = target.to_numpy()
    (train_x, train_y), _, (holdout_x, holdout_y) = split(features, target, stratify=False)
    return LinearRegression().fit(train_x, train_y), holdout_x, holdout_y


def test_regression_metrics_on_a_worked_example():
    rows = pd.DataFrame({"prediction": [1.0, 2.0, 5.0]})
    metrics = REGRESSION.score(FixedPredictions(), rows, np.array([1.0, 2.0, 3.0]))
    # Errors 0, 0, 2 around a mean of 2 (total sum of squares 2).
    assert metrics == pytest.approx({"rmse": math.sqrt(4 / 3), "mae": 2 / 3, "r2": 1 - 4 / 2})


def test_regression_metrics_match_sklearn(diabetes):
    model, features, target = diabetes
    predicted = model.predict(features)
    evaluation = REGRESSION.evaluate(model, features, target, slice_values=None, decision={}, costs=None, title="t")
    assert evaluation.metrics == pytest.approx(
        {
            "rmse": math.sqrt(sk.mean_squared_error(target, predicted)),
            "mae": sk.mean_absolute_error(target, predicted),
            "r2": model.score(features, target),
        },
        rel=1e-12,
    )
    assert REGRESSION.score(model, features, target) == evaluation.metrics
    assert evaluation.slices == [{"slice": "overall", "rows": len(target), **evaluation.metrics}]
    assert_pngs(evaluation.plots, {"residuals.png"})
    assert evaluation.decision == {} and evaluation.tables == {}
    assert REGRESSION.choose_decision(model, features, target, CHURN_COSTS) == {}


def test_regression_slices_add_up_and_each_holds_the_metrics_of_its_own_rows(diabetes):
    model, features, target = diabetes
    age_band = np.where(features["age"] > 0, "older", "younger").astype(object)
    age_band[0] = None
    evaluation = REGRESSION.evaluate(model, features, target, slice_values=age_band, decision={}, costs=None, title="t")
    overall, *slices = evaluation.slices
    assert overall == {"slice": "overall", "rows": len(target), **evaluation.metrics}
    assert [row["slice"] for row in slices] == ["missing", "older", "younger"]
    assert sum(row["rows"] for row in slices) == len(target)
    for row in slices[1:]:
        rows = age_band == row["slice"]
        own_metrics = REGRESSION.score(model, features[rows], target[rows])
        assert row == {"slice": row["slice"], "rows": rows.sum(), **own_metrics}
    # One row explains nothing: R² is undefined there, the errors are not.
    assert slices[0]["rows"] == 1 and math.isnan(slices[0]["r2"]) and slices[0]["rmse"] == slices[0]["mae"]


# ---------------------------------------------------------------- binary


@pytest.fixture(scope="module")
def churn():
    """Imbalanced and noisy: about one customer in seven leaves ('Yes')."""
    values, labels = make_classification(
        n_samples=3000, n_features=6, n_informative=4, weights=[0.85], flip_y=0.03, class_sep=0.7, random_state=7
    )
    features = pd.DataFrame(values, columns=[f"usage_{index}" for index in range(6)])
    target = np.where(labels == 1, "Yes", "No")
    plan = np.random.default_rng(7).choice(["basic", "family", "premium"], size=len(target))
    train, validation, holdout = split(features, target, plan)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(train[0], train[1])
    return model, validation, holdout


CHURN = BinaryTask(positive_label="Yes")


@pytest.fixture(scope="module")
def churn_evaluation(churn):
    model, validation, (features, target, plan) = churn
    decision = CHURN.choose_decision(model, validation[0], validation[1], CHURN_COSTS)
    evaluation = CHURN.evaluate(
        model, features, target, slice_values=plan, decision=decision, costs=CHURN_COSTS, title="churn"
    )
    return decision, evaluation


def test_a_perfect_classifier_scores_auc_1_and_its_threshold_separates_the_classes():
    generator = np.random.default_rng(3)
    usage = np.concatenate([generator.uniform(0.0, 0.4, 400), generator.uniform(0.6, 1.0, 400)])
    features = pd.DataFrame({"usage": usage})
    target = np.where(usage > 0.5, "Yes", "No")
    (train_x, train_y), (validation_x, validation_y), (holdout_x, holdout_y) = split(features, target)
    model = DecisionTreeClassifier(max_depth=1).fit(train_x, train_y)

    decision = CHURN.choose_decision(model, validation_x, validation_y, costs=None)
    scores = CHURN.positive_scores(model, holdout_x)
    assert scores[holdout_y == "Yes"].min() >= decision["threshold"] > scores[holdout_y == "No"].max()
    evaluation = CHURN.evaluate(
        model, holdout_x, holdout_y, slice_values=None, decision=decision, costs=None, title="perfect"
    )
    for metric in ("roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy"):
        assert evaluation.metrics[metric] == 1.0, metric


def test_binary_metrics_match_sklearn_at_the_given_threshold(churn):
    model, _, (features, target, _) = churn
    decision = {"threshold": 0.3, "positive_label": "Yes"}
    evaluation = CHURN.evaluate(model, features, target, slice_values=None, decision=decision, costs=None, title="t")
    actual = target == "Yes"
    scores = model.predict_proba(features)[:, list(model.classes_).index("Yes")]
    flagged = scores >= 0.3
    assert evaluation.metrics == pytest.approx(
        {
            "roc_auc": sk.roc_auc_score(actual, scores),
            "pr_auc": sk.average_precision_score(actual, scores),
            "log_loss": sk.log_loss(actual, scores),
            "brier": sk.brier_score_loss(actual, scores),
            "precision": sk.precision_score(actual, flagged),
            "recall": sk.recall_score(actual, flagged),
            "f1": sk.f1_score(actual, flagged),
            "accuracy": sk.accuracy_score(actual, flagged),
        },
        rel=1e-12,
    )
    assert evaluation.decision == decision
    assert CHURN.score(model, features, target) == {
        name: evaluation.metrics[name] for name in ("roc_auc", "pr_auc", "log_loss", "brier")
    }
    # Nothing about business value without costs.
    assert_pngs(evaluation.plots, {"confusion_matrix.png", "roc_curve.png", "pr_curve.png", "calibration.png"})
    assert set(evaluation.tables) == {"confusion_matrix"}


def test_the_confusion_matrix_table_counts_raw_labels_at_the_threshold(churn, churn_evaluation):
    model, _, (features, target, _) = churn
    decision, evaluation = churn_evaluation
    flagged = np.where(CHURN.positive_scores(model, features) >= decision["threshold"], "Yes", "No")
    expected = sk.confusion_matrix(target, flagged, labels=["Yes", "No"])
    table = {(row["actual"], row["predicted"]): row["rows"] for row in evaluation.tables["confusion_matrix"]}
    assert table == {
        ("Yes", "Yes"): expected[0, 0],
        ("Yes", "No"): expected[0, 1],
        ("No", "Yes"): expected[1, 0],
        ("No", "No"): expected[1, 1],
    }
    tp, fn, fp, tn = expected.ravel()
    value = 150.0 * tp - 50.0 * fp - 200.0 * fn
    assert evaluation.metrics["business_value"] == value
    assert evaluation.metrics["business_value_per_row"] == pytest.approx(value / len(target))


def test_the_decision_is_made_on_validation_the_f1_threshold_and_the_business_threshold(churn, churn_evaluation):
    model, (features, target, _), _ = churn
    decision, evaluation = churn_evaluation
    assert set(decision) == {"threshold", "business_threshold", "positive_label"}
    assert decision["positive_label"] == "Yes" and evaluation.decision == decision
    actual = target == "Yes"
    scores = CHURN.positive_scores(model, features)

    def f1_at(threshold: float) -> float:
        return sk.f1_score(actual, scores >= threshold)

    def value_at(threshold: float) -> float:
        tn, fp, fn, tp = sk.confusion_matrix(actual, scores >= threshold).ravel()
        return CHURN_COSTS.value(true_positive=tp, false_positive=fp, false_negative=fn, true_negative=tn)

    candidates = np.linspace(0, 1, 101)
    assert f1_at(decision["threshold"]) >= max(f1_at(threshold) for threshold in candidates)
    assert value_at(decision["business_threshold"]) >= max(value_at(threshold) for threshold in candidates)


def test_when_missing_a_churner_costs_more_than_an_offer_the_business_threshold_beats_one_half(churn, churn_evaluation):
    model, _, (features, target, _) = churn
    decision, _ = churn_evaluation
    assert decision["business_threshold"] < 0.5
    at_one_half = dict(decision, threshold=0.5)
    metrics = CHURN.evaluate(
        model, features, target, slice_values=None, decision=at_one_half, costs=CHURN_COSTS, title="t"
    ).metrics
    # Measured on the holdout, which took no part in the choice.
    assert metrics["business_value_at_business_threshold"] > metrics["business_value"]
    assert metrics["business_value_per_row_at_business_threshold"] > metrics["business_value_per_row"]


def test_the_business_value_table_has_a_coarse_grid_the_decisions_and_the_holdouts_own_best(churn, churn_evaluation):
    model, _, (features, target, _) = churn
    decision, evaluation = churn_evaluation
    table = evaluation.tables["business_value_by_threshold"]
    grid = [row for row in table if row["point"] == "grid"]
    assert [row["threshold"] for row in grid] == pytest.approx(np.arange(21) * 0.05)
    assert [row["threshold"] for row in table] == sorted(row["threshold"] for row in table)
    named = {row["point"]: row for row in table if row["point"] != "grid"}
    assert set(named) == {"threshold", "business_threshold", "best_on_these_rows"}
    assert named["threshold"]["business_value"] == evaluation.metrics["business_value"]
    assert named["business_threshold"]["business_value"] == evaluation.metrics["business_value_at_business_threshold"]
    assert named["best_on_these_rows"]["business_value"] == max(row["business_value"] for row in table)
    scores = CHURN.positive_scores(model, features)
    for row in table:
        flagged = np.where(scores >= row["threshold"], "Yes", "No")
        tn, fp, fn, tp = sk.confusion_matrix(target, flagged, labels=["No", "Yes"]).ravel()
        counted = (row["true_positive"], row["false_positive"], row["false_negative"], row["true_negative"])
        assert counted == (tp, fp, fn, tn)
        assert row["business_value_per_row"] == pytest.approx(row["business_value"] / len(target))
    assert_pngs(
        evaluation.plots,
        {"confusion_matrix.png", "roc_curve.png", "pr_curve.png", "calibration.png", "business_value.png"},
    )


def test_binary_slices_add_up_to_the_overall_rows_and_business_value(churn_evaluation):
    _, evaluation = churn_evaluation
    overall, *slices = evaluation.slices
    assert overall == {"slice": "overall", "rows": overall["rows"], **evaluation.metrics}
    assert [row["slice"] for row in slices] == ["basic", "family", "premium"]
    assert sum(row["rows"] for row in slices) == overall["rows"]
    for metric in ("business_value", "business_value_at_business_threshold"):
        assert sum(row[metric] for row in slices) == pytest.approx(overall[metric])
    assert all(row.keys() == overall.keys() for row in slices)
    assert_finite_or_nan(evaluation.metrics)


def test_a_slice_of_one_class_has_no_auc_but_still_its_other_metrics(churn, churn_evaluation):
    model, _, (features, target, _) = churn
    decision, _ = churn_evaluation
    stayed_only = np.where(target == "No", "stayed", "left")
    evaluation = CHURN.evaluate(
        model, features, target, slice_values=stayed_only, decision=decision, costs=CHURN_COSTS, title="t"
    )
    stayed = next(row for row in evaluation.slices if row["slice"] == "stayed")
    assert math.isnan(stayed["roc_auc"]) and math.isnan(stayed["pr_auc"]) and math.isnan(stayed["recall"])
    assert math.isfinite(stayed["log_loss"]) and math.isfinite(stayed["accuracy"]) and stayed["business_value"] <= 0
    only_stayers = target == "No"
    one_class = CHURN.evaluate(
        model, features[only_stayers], target[only_stayers], slice_values=None, decision=decision, costs=None, title="t"
    )
    assert math.isnan(one_class.metrics["roc_auc"])
    assert "roc_curve.png" not in one_class.plots and "calibration.png" in one_class.plots


def test_a_binary_task_refuses_what_it_cannot_decide_or_apply(churn):
    model, (features, target, _), _ = churn
    with pytest.raises(ValueError, match="one class"):
        CHURN.choose_decision(model, features[target == "No"], target[target == "No"], CHURN_COSTS)
    with pytest.raises(ValueError, match="choose_decision"):
        CHURN.evaluate(model, features, target, slice_values=None, decision={}, costs=None, title="t")
    with pytest.raises(ValueError, match="'Churned'"):
        BinaryTask(positive_label="Churned").score(model, features, target)


# ---------------------------------------------------------------- multiclass


@pytest.fixture(scope="module")
def iris():
    data = load_iris(as_frame=True)
    target = data.target_names[data.target.to_numpy()]
    (train_x, train_y), _, (holdout_x, holdout_y) = split(data.data, target)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05)).fit(train_x, train_y)
    evaluation = MULTICLASS.evaluate(
        model, holdout_x, holdout_y, slice_values=holdout_y, decision={}, costs=None, title="iris"
    )
    return model, holdout_x, holdout_y, evaluation


def test_multiclass_metrics_match_sklearn(iris):
    model, features, target, evaluation = iris
    predicted = model.predict(features)
    precision, recall, _, _ = sk.precision_recall_fscore_support(target, predicted, labels=model.classes_)
    expected = {
        "accuracy": sk.accuracy_score(target, predicted),
        "macro_f1": sk.f1_score(target, predicted, average="macro"),
        "log_loss": sk.log_loss(target, model.predict_proba(features)),
    }
    for index, label in enumerate(model.classes_):
        expected[f"precision/{label}"] = precision[index]
        expected[f"recall/{label}"] = recall[index]
    assert evaluation.metrics == pytest.approx(expected, rel=1e-12)
    assert evaluation.metrics["accuracy"] < 1.0, "a perfect model would not tell the per-class numbers apart"
    assert MULTICLASS.score(model, features, target) == {
        name: evaluation.metrics[name] for name in ("accuracy", "macro_f1", "log_loss")
    }
    per_class = {row["class"]: row for row in evaluation.tables["per_class"]}
    assert list(per_class) == ["setosa", "versicolor", "virginica"]
    assert {label: row["support"] for label, row in per_class.items()} == {
        label: int((target == label).sum()) for label in model.classes_
    }
    assert all(per_class[label]["recall"] == evaluation.metrics[f"recall/{label}"] for label in per_class)


def test_the_multiclass_confusion_matrix_counts_every_row_once(iris):
    _, _, target, evaluation = iris
    table = evaluation.tables["confusion_matrix"]
    assert len(table) == 9 and sum(row["rows"] for row in table) == len(target)
    correct = sum(row["rows"] for row in table if row["actual"] == row["predicted"])
    assert correct / len(target) == pytest.approx(evaluation.metrics["accuracy"])
    assert_pngs(evaluation.plots, {"confusion_matrix.png"})
    assert evaluation.decision == {} and MULTICLASS.choose_decision(None, None, None, None) == {}


def test_a_multiclass_slice_of_one_species_keeps_every_metric_key(iris):
    _, _, target, evaluation = iris
    overall, *slices = evaluation.slices
    assert [row["slice"] for row in slices] == ["setosa", "versicolor", "virginica"]
    assert sum(row["rows"] for row in slices) == overall["rows"] == len(target)
    for row in slices:
        assert row.keys() == overall.keys()
        assert_finite_or_nan({key: value for key, value in row.items() if key not in ("slice", "rows")})
        # Only one species is present: the recall of the others is undefined, its own is defined.
        others = {f"recall/{label}" for label in ("setosa", "versicolor", "virginica")} - {f"recall/{row['slice']}"}
        assert all(math.isnan(row[key]) for key in others)
        assert math.isfinite(row[f"recall/{row['slice']}"]) and math.isfinite(row["log_loss"])


def test_an_evaluation_is_immutable(iris):
    evaluation = iris[3]
    assert isinstance(evaluation, Evaluation)
    with pytest.raises(AttributeError):
        evaluation.metrics = {}
