"""The deployment gate: when a candidate may replace the production model, judged on the same holdout
by the project's primary metric, overall and per slice."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateRule:
    metric: str
    higher_is_better: bool
    bound: float
    max_regression: float
    slice_tolerance: float
    min_slice_rows: int

    def worse(self, value: float, reference: float, tolerance: float) -> bool:
        """`value` worse than `reference` by more than `tolerance`, a fraction of the reference."""
        if self.higher_is_better:
            return value < reference - abs(reference) * tolerance
        return value > reference + abs(reference) * tolerance


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"


def decide(
    rule: GateRule,
    *,
    candidate: Mapping[str, float],
    production: Mapping[str, float] | None,
    candidate_slices: Sequence[Mapping] = (),
    production_slices: Sequence[Mapping] = (),
) -> GateDecision:
    """Pass when the candidate's holdout metric is past the absolute bound, no more than
    `max_regression` worse than production's on the same holdout, and no slice with enough rows on
    both sides is worse than production's beyond `slice_tolerance`."""
    metric, value = rule.metric, candidate[rule.metric]
    past = "above" if rule.higher_is_better else "below"
    within_bound = math.isfinite(value) and (value > rule.bound if rule.higher_is_better else value < rule.bound)
    if not within_bound:
        return GateDecision(False, f"holdout {metric} {_number(value)} is not {past} the bound {_number(rule.bound)}")
    if production is None or not math.isfinite(production.get(metric, math.nan)):
        return GateDecision(True, f"holdout {metric} {_number(value)} is {past} the bound {_number(rule.bound)}; no production model yet")
    reference = production[metric]
    if rule.worse(value, reference, rule.max_regression):
        return GateDecision(
            False,
            f"holdout {metric} {_number(value)} is worse than production's {_number(reference)} "
            f"beyond the {rule.max_regression:.1%} tolerance",
        )
    production_by_slice = {row["slice"]: row for row in production_slices}
    for row in candidate_slices:
        theirs = production_by_slice.get(row["slice"])
        if row["slice"] == "overall" or theirs is None or min(row["rows"], theirs["rows"]) < rule.min_slice_rows:
            continue
        mine, reference_slice = row.get(metric, math.nan), theirs.get(metric, math.nan)
        if math.isfinite(mine) and math.isfinite(reference_slice) and rule.worse(mine, reference_slice, rule.slice_tolerance):
            return GateDecision(
                False,
                f"slice '{row['slice']}': {metric} {_number(mine)} is worse than production's {_number(reference_slice)} "
                f"beyond the {rule.slice_tolerance:.1%} slice tolerance",
            )
    return GateDecision(
        True,
        f"holdout {metric} {_number(value)} is {past} the bound {_number(rule.bound)} and within {rule.max_regression:.1%} "
        f"of production's {_number(reference)}, and no slice regressed beyond {rule.slice_tolerance:.1%}",
    )
