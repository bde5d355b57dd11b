"""The single-node peer of the Spark data assets: the same cleaning and features with polars.

The feature formulas are the project's own (`derived_columns` over polars expressions); the split hash
is polars' own, which costs the same as Spark's xxhash64. Usage: polars_peer.py SOURCE.csv OUT_DIR
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from mlops_assets.projects.housing.features import DERIVED_FEATURES, derived_columns
from mlops_assets.projects.housing.domain import CATEGORY, NUMERIC_FEATURES, OPTIONAL_FEATURES, SOURCE_COLUMNS, TARGET, TARGET_CAP

POLARS_MATH = SimpleNamespace(
    sqrt=lambda column: column.sqrt(), least=pl.min_horizontal, as_float=lambda column: column.cast(pl.Float64)
)


def main(source: Path, out: Path) -> None:
    raw = pl.scan_csv(source, infer_schema=False)
    raw.sink_parquet(out / "raw.parquet")
    typed = pl.scan_parquet(out / "raw.parquet").select(
        pl.concat_str([pl.col(name).str.strip_chars().fill_null("") for name in SOURCE_COLUMNS], separator="|")
        .hash()
        .alias("row_id"),
        *[pl.col(name).str.strip_chars().cast(pl.Float64).alias(name) for name in (*NUMERIC_FEATURES, TARGET)],
        pl.col(CATEGORY).str.strip_chars().str.replace_all(r"\s+", " ").str.to_uppercase().alias(CATEGORY),
    )
    required = [name for name in (*NUMERIC_FEATURES, TARGET, CATEGORY) if name not in OPTIONAL_FEATURES]
    empty_block_group = (pl.col("households") == 0) | (pl.col("total_rooms") == 0) | (pl.col("population") == 0)
    cleaned = (
        typed.filter(pl.all_horizontal([pl.col(name).is_not_null() for name in required]) & ~empty_block_group)
        .with_columns(
            pl.when(pl.col("total_bedrooms") > pl.col("total_rooms")).then(None).otherwise(pl.col("total_bedrooms")).alias("total_bedrooms"),
            (pl.col(TARGET) >= TARGET_CAP).alias("target_capped"),
        )
        .unique(subset=["row_id"], keep="any")
    )
    cleaned.sink_parquet(out / "cleaned.parquet")
    derived = derived_columns(pl.col, POLARS_MATH)
    features = pl.scan_parquet(out / "cleaned.parquet").with_columns(
        *[derived[name].alias(name) for name in DERIVED_FEATURES],
        pl.when(pl.col("row_id").hash(seed=1) % 100 < 20).then(pl.lit("test")).otherwise(pl.lit("train")).alias("split"),
    )
    features.sink_parquet(out / "features.parquet")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
