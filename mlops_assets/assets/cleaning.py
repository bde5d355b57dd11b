from dagster import AssetExecutionContext, MetadataValue, Output
from pyspark.sql import DataFrame

from mlops_assets.assets.common import spark_data_asset
from mlops_assets.resources.io_managers import Versioned
from mlops_assets.transforms import clean


@spark_data_asset()
def cleaned_housing(context: AssetExecutionContext, raw_housing: Versioned) -> Output[DataFrame]:
    """Typed, repaired and de-duplicated rows, with a count of what each cleaning rule did.

    Rules: category spelling normalised (case, spaces); rows missing a required value dropped; a
    `total_bedrooms` above `total_rooms` cleared (it is impossible, so treated as unknown); block groups
    with no rooms, people or households dropped (their ratios are undefined); duplicate rows dropped;
    capped targets flagged. A missing `total_bedrooms` (207 rows in the reference data) is kept as
    missing: the model imputes it, the same way at training and at serving time. Values no rule can
    repair (coordinates outside California, negative counts, unknown categories) are left for the
    contract check to stop the batch.
    """
    cleaned, stats = clean(raw_housing.value)
    rule_counts = {name: count for name, count in stats.items() if name not in ("rows_in", "rows_out")}
    context.log.info(f"cleaning rules: {rule_counts}")
    return Output(
        cleaned,
        metadata={
            "rows_in": stats["rows_in"],
            "rows_out": stats["rows_out"],
            **{f"rule/{name}": count for name, count in rule_counts.items()},
            "rules": MetadataValue.json(rule_counts),
            "raw_version": raw_housing.version,
        },
    )
