"""The deployment gate, for a metric where lower is better (RMSE) and one where higher is better (ROC AUC)."""

import math

import pytest

from mlops_assets.ml.gate import GateRule, decide

RMSE = GateRule(metric="rmse", higher_is_better=False, bound=47_730.0, max_regression=0.01, slice_tolerance=0.05, min_slice_rows=30)
AUC = GateRule(metric="roc_auc", higher_is_better=True, bound=0.80, max_regression=0.01, slice_tolerance=0.05, min_slice_rows=30)


@pytest.mark.parametrize(
    ("candidate", "production", "passed"),
    [
        (45_000.0, None, True),  # first model, under the bound
        (48_000.0, None, False),  # first model, over the bound
        (45_000.0, 46_000.0, True),  # better than production
        (45_400.0, 45_000.0, True),  # worse, but within 1%
        (45_500.0, 45_000.0, False),  # worse beyond 1%
        (47_730.0, None, False),  # the bound itself is not below the bound
        (math.nan, None, False),  # a broken metric never passes
    ],
)
def test_the_gate_weighs_the_bound_and_the_regression_when_lower_is_better(candidate, production, passed):
    decision = decide(RMSE, candidate={"rmse": candidate}, production=None if production is None else {"rmse": production})
    assert decision.passed is passed
    assert decision.reason


@pytest.mark.parametrize(
    ("candidate", "production", "passed"),
    [
        (0.85, None, True),
        (0.79, None, False),
        (0.846, 0.85, True),  # worse, within 1% of 0.85
        (0.84, 0.85, False),  # worse beyond 1%
        (0.90, 0.85, True),
    ],
)
def test_the_gate_weighs_the_bound_and_the_regression_when_higher_is_better(candidate, production, passed):
    decision = decide(AUC, candidate={"roc_auc": candidate}, production=None if production is None else {"roc_auc": production})
    assert decision.passed is passed


def slices(metric: str, **values: tuple[float, int]) -> list[dict]:
    return [{"slice": name, metric: value, "rows": rows} for name, (value, rows) in values.items()]


def test_a_candidate_better_overall_but_worse_on_a_slice_is_refused():
    decision = decide(
        AUC,
        candidate={"roc_auc": 0.86},
        production={"roc_auc": 0.85},
        candidate_slices=slices("roc_auc", overall=(0.86, 1400), **{"Month-to-month": (0.70, 800), "Two year": (0.90, 300)}),
        production_slices=slices("roc_auc", overall=(0.85, 1400), **{"Month-to-month": (0.78, 800), "Two year": (0.88, 300)}),
    )
    assert not decision.passed
    assert "Month-to-month" in decision.reason and "slice tolerance" in decision.reason


def test_a_slice_too_small_to_judge_does_not_block():
    decision = decide(
        RMSE,
        candidate={"rmse": 40_000.0},
        production={"rmse": 40_100.0},
        candidate_slices=slices("rmse", ISLAND=(200_000.0, 2), INLAND=(29_000.0, 1200)),
        production_slices=slices("rmse", ISLAND=(90_000.0, 2), INLAND=(29_100.0, 1200)),
    )
    assert decision.passed, decision.reason
