"""The deployment gate: when a candidate may replace the production model."""

from dataclasses import dataclass


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


def decide(
    *, candidate_rmse: float, production_rmse: float | None, max_rmse: float, max_regression: float
) -> GateDecision:
    """Pass when the candidate's holdout RMSE is within the absolute bound and no more than
    `max_regression` (a fraction) worse than production's on the same holdout."""
    if not candidate_rmse < max_rmse:
        return GateDecision(False, f"holdout RMSE {candidate_rmse:,.0f} is not below the bound {max_rmse:,.0f}")
    if production_rmse is None:
        return GateDecision(True, f"holdout RMSE {candidate_rmse:,.0f} is below the bound {max_rmse:,.0f}; no production model yet")
    allowed = production_rmse * (1.0 + max_regression)
    if candidate_rmse > allowed:
        return GateDecision(
            False,
            f"holdout RMSE {candidate_rmse:,.0f} is worse than production's {production_rmse:,.0f} "
            f"beyond the {max_regression:.1%} tolerance",
        )
    return GateDecision(
        True,
        f"holdout RMSE {candidate_rmse:,.0f} is below the bound {max_rmse:,.0f} and within {max_regression:.1%} "
        f"of production's {production_rmse:,.0f}",
    )
