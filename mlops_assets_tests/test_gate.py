import pytest

from mlops_assets.ml.gate import decide


@pytest.mark.parametrize(
    ("candidate", "production", "passed"),
    [
        (45_000.0, None, True),  # first model, under the bound
        (48_000.0, None, False),  # first model, over the bound
        (45_000.0, 46_000.0, True),  # better than production
        (45_400.0, 45_000.0, True),  # worse, but within 1%
        (45_500.0, 45_000.0, False),  # worse beyond 1%
        (47_730.0, None, False),  # the bound itself is not below the bound
    ],
)
def test_the_gate_weighs_the_bound_and_the_regression(candidate, production, passed):
    decision = decide(candidate_rmse=candidate, production_rmse=production, max_rmse=47_730.0, max_regression=0.01)
    assert decision.passed is passed
    assert decision.reason


def test_a_nan_rmse_never_passes():
    assert not decide(candidate_rmse=float("nan"), production_rmse=None, max_rmse=47_730.0, max_regression=0.01).passed
