"""Broken copies of the reference CSV, one kind of damage each, written into a temporary folder."""

from collections.abc import Callable
from pathlib import Path

import pandas as pd

Damage = Callable[[pd.DataFrame], pd.DataFrame]


def _set(column: str, rows: slice, value: object) -> Damage:
    def damage(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object}) if isinstance(value, str) else frame.copy()
        frame.loc[frame.index[rows], column] = value
        return frame

    return damage


def _blank_most_of(column: str) -> Damage:
    def damage(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame.index[: int(len(frame) * 0.8)], column] = None
        return frame

    return damage


# name -> (damage, the check that must stop it, the column it must name, a word of the rule it must name)
BAD_BATCHES: dict[str, tuple[Damage, str, str | None, str]] = {
    "missing_column": (lambda f: f.drop(columns=["median_income"]), "check_contract_raw_housing", "median_income", "column_in_dataframe"),
    "non_numeric_value": (_set("total_rooms", slice(10, 13), "lots"), "check_contract_raw_housing", "total_rooms", "str_matches"),
    "out_of_range_coordinates": (_set("latitude", slice(0, 25), 52.5), "check_contract_cleaned_housing", "latitude", "in_range"),
    "negative_count": (_set("population", slice(100, 104), -12.0), "check_contract_cleaned_housing", "population", "in_range"),
    "unknown_category": (_set("ocean_proximity", slice(5, 9), "NEAR LAKE"), "check_contract_cleaned_housing", "ocean_proximity", "isin"),
    "mostly_null_column": (_blank_most_of("housing_median_age"), "check_contract_raw_housing", "housing_median_age", "null_fraction"),
    "header_only_file": (lambda f: f.iloc[0:0], "check_contract_raw_housing", None, "row_count_at_least"),
}


def write_bad_batch(reference_csv: Path, name: str, folder: Path) -> Path:
    damage = BAD_BATCHES[name][0]
    path = folder / f"{name}.csv"
    damage(pd.read_csv(reference_csv)).to_csv(path, index=False)
    return path
