"""Churn's and iris's cleaning rules on hand-made rows, on real Spark."""

from pathlib import Path

import pandas as pd

from mlops_assets.platform.transforms import write_cleaned
from mlops_assets_tests.conftest import PROJECTS, REFERENCE_DATA_DIR


def reference_rows(project: str, count: int) -> list[dict[str, str]]:
    frame = pd.read_csv(REFERENCE_DATA_DIR / PROJECTS[project].source.file_name, dtype=str, keep_default_na=False, nrows=count)
    return frame.to_dict("records")


def test_churn_cleaning_respells_repairs_and_deduplicates(spark, tmp_path: Path):
    project = PROJECTS["churn"]
    first, second, third = reference_rows("churn", 3)
    respelled = {**first, "InternetService": "fiber  OPTIC ", "Contract": "one year", "Churn": " yes"}
    first_month = {**second, "tenure": "0", "TotalCharges": " "}
    rows = [respelled, first_month, third, dict(third)]
    raw = spark.createDataFrame(pd.DataFrame(rows, columns=list(rows[0])))

    stats = write_cleaned(project.clean(raw), tmp_path / "cleaned")
    cleaned = spark.read.parquet(str(tmp_path / "cleaned"))

    assert stats == {
        "rows_in": 4,
        "category_spelling_normalised": 1,
        "missing_required_value_dropped": 0,
        "total_charges_missing_repaired": 1,
        "rows_out": 3,
        "duplicate_dropped": 1,
    }
    by_id = {row["customerID"]: row for row in cleaned.collect()}
    assert (by_id[first["customerID"]]["InternetService"], by_id[first["customerID"]]["Contract"]) == ("Fiber optic", "One year")
    assert by_id[first["customerID"]]["Churn"] == "Yes"
    assert by_id[second["customerID"]]["TotalCharges"] == 0.0


def test_iris_cleaning_respells_species_and_drops_the_repeated_row(spark, tmp_path: Path):
    project = PROJECTS["iris"]
    first, second = reference_rows("iris", 2)
    rows = [{**first, "species": " Iris-Setosa"}, second, dict(second), {**second, "petal_width": ""}]
    raw = spark.createDataFrame(pd.DataFrame(rows, columns=list(rows[0])))

    stats = write_cleaned(project.clean(raw), tmp_path / "cleaned")
    cleaned = spark.read.parquet(str(tmp_path / "cleaned"))

    assert stats == {
        "rows_in": 4,
        "species_spelling_normalised": 1,
        "missing_required_value_dropped": 1,
        "rows_out": 2,
        "duplicate_dropped": 1,
    }
    assert {row["species"] for row in cleaned.collect()} == {"setosa"}
