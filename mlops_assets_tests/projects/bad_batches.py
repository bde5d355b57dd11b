"""Broken copies of the churn and iris reference CSVs, one kind of damage each, in the style of
`mlops_assets_tests/bad_data.py`: the damage, the check that must stop it, the column it must name and
a word of the rule it must name.

The reference file is read as text (every cell a string, blanks kept), so a damaged copy differs from
the reference only where the damage is: churn's blank TotalCharges stay the single space they are.
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd

# A damage returns the broken frame, or the broken file's text when the damage is to the file itself.
Damage = Callable[[pd.DataFrame], "pd.DataFrame | str"]
BadBatch = tuple[Damage, str, str | None, str]


def _set(column: str, rows: slice, value: str) -> Damage:
    def damage(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame.index[rows], column] = value
        return frame

    return damage


def _scaled(column: str, factor: float) -> Damage:
    def damage(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = (frame[column].astype(float) * factor).round(6).astype(str)
        return frame

    return damage


# project -> name -> (damage, the check that must stop it, the column it must name, a word of the rule it must name)
BAD_BATCHES: dict[str, dict[str, BadBatch]] = {
    "churn": {
        "non_numeric_monthly_charges": (
            _set("MonthlyCharges", slice(20, 24), "n/a"), "check_contract_raw", "MonthlyCharges", "str_matches"
        ),
        "unknown_contract": (_set("Contract", slice(100, 106), "Three year"), "check_contract_cleaned", "Contract", "isin"),
        "churn_label_not_yes_no": (_set("Churn", slice(0, 50), "1"), "check_contract_cleaned", "Churn", "isin"),
        "missing_column": (lambda f: f.drop(columns=["tenure"]), "check_contract_raw", "tenure", "column_in_dataframe"),
        "senior_citizen_not_a_flag": (_set("SeniorCitizen", slice(7, 9), "2"), "check_contract_cleaned", "SeniorCitizen", "isin"),
    },
    "iris": {
        "negative_petal_length": (_set("petal_length", slice(3, 6), "-1.4"), "check_contract_cleaned", "petal_length", "in_range"),
        "unknown_species": (_set("species", slice(60, 64), "sibirica"), "check_contract_cleaned", "species", "isin"),
        "header_only_file": (lambda f: f.iloc[0:0], "check_contract_raw", None, "row_count_at_least"),
        "lengths_in_millimetres": (_scaled("sepal_length", 10.0), "check_contract_cleaned", "sepal_length", "in_range"),
    },
}


def write_bad_batch(project: str, reference_csv: Path, name: str, folder: Path) -> Path:
    damage = BAD_BATCHES[project][name][0]
    path = folder / f"{project}_{name}.csv"
    broken = damage(pd.read_csv(reference_csv, dtype=str, keep_default_na=False))
    if isinstance(broken, str):
        path.write_text(broken)
    else:
        broken.to_csv(path, index=False)
    return path
