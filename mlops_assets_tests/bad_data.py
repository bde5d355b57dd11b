"""Broken copies of the reference CSV, one kind of damage each, written into a temporary folder."""

from collections.abc import Callable
from pathlib import Path

import pandas as pd

TARGET_COLUMN = "median_house_value"

# A damage returns the broken frame, or the broken file's text when the damage is to the file itself.
Damage = Callable[[pd.DataFrame], "pd.DataFrame | str"]


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


def _with_repeated_rows(share: float) -> Damage:
    def damage(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([frame, frame.sample(frac=share, random_state=0)], ignore_index=True)

    return damage


def _truncated_after(rows: int) -> Damage:
    def damage(frame: pd.DataFrame) -> str:
        text = frame.head(rows).to_csv(index=False)
        return text[: len(text) - 15]  # cut in the middle of the last row, as an interrupted copy leaves it

    return damage


# name -> (damage, the check that must stop it, the column it must name, a word of the rule it must name)
BAD_BATCHES: dict[str, tuple[Damage, str, str | None, str]] = {
    "missing_column": (lambda f: f.drop(columns=["median_income"]), "check_contract_raw", "median_income", "column_in_dataframe"),
    "non_numeric_value": (_set("total_rooms", slice(10, 13), "lots"), "check_contract_raw", "total_rooms", "str_matches"),
    "out_of_range_coordinates": (_set("latitude", slice(0, 25), 52.5), "check_contract_cleaned", "latitude", "in_range"),
    "negative_count": (_set("population", slice(100, 104), -12.0), "check_contract_cleaned", "population", "in_range"),
    "unknown_category": (_set("ocean_proximity", slice(5, 9), "NEAR LAKE"), "check_contract_cleaned", "ocean_proximity", "isin"),
    "mostly_null_column": (_blank_most_of("housing_median_age"), "check_contract_raw", "housing_median_age", "null_fraction"),
    "header_only_file": (lambda f: f.iloc[0:0], "check_contract_raw", None, "row_count_at_least"),
    "renamed_column": (
        lambda f: f.rename(columns={"median_income": "income"}), "check_contract_raw", "median_income", "column_in_dataframe"
    ),
    "nan_and_inf": (_set("total_rooms", slice(10, 16), "inf"), "check_contract_raw", "total_rooms", "str_matches"),
    "nan_literal": (_set("households", slice(40, 43), "NaN"), "check_contract_raw", "households", "str_matches"),
    "misspelled_category": (_set("ocean_proximity", slice(5, 9), "NEAR BAYY"), "check_contract_cleaned", "ocean_proximity", "isin"),
    "target_all_null": (_set(TARGET_COLUMN, slice(None), None), "check_contract_raw", TARGET_COLUMN, "null_fraction"),
    "duplicated_rows": (_with_repeated_rows(0.2), "check_contract_raw", None, "duplicate_fraction"),
    "truncated_file": (_truncated_after(60), "check_contract_raw", None, "row_count_at_least"),
}


def write_bad_batch(reference_csv: Path, name: str, folder: Path) -> Path:
    damage = BAD_BATCHES[name][0]
    path = folder / f"{name}.csv"
    broken = damage(pd.read_csv(reference_csv))
    if isinstance(broken, str):
        path.write_text(broken)
    else:
        broken.to_csv(path, index=False)
    return path
