from dagster import AssetExecutionContext, MetadataValue, Output
from pyspark.sql import DataFrame

from mlops_assets.assets.common import spark_data_asset
from mlops_assets.ml.features import DERIVED_FEATURES
from mlops_assets.resources.io_managers import Versioned
from mlops_assets.transforms import HOLDOUT_PERCENT, HOLDOUT_SALT, with_features


@spark_data_asset()
def housing_features(context: AssetExecutionContext, cleaned_housing: Versioned) -> Output[DataFrame]:
    """Model features and a deterministic train/test split over the cleaned rows.

    The derived features (ratios per household and room, rotated coordinates, distances to the big
    cities, one column per `ocean_proximity` category) come from the same formulas the model's
    pipeline applies at training and serving time (`mlops_assets.ml.features`), so what is monitored
    here is what the model sees. The split hashes each row's id: the same row lands in the same split
    on every run and machine, so every model is evaluated on the same holdout.
    """
    features = with_features(cleaned_housing.value)
    split_counts = {row["split"]: row["count"] for row in features.groupBy("split").count().collect()}
    return Output(
        features,
        metadata={
            "train_rows": split_counts.get("train", 0),
            "test_rows": split_counts.get("test", 0),
            "holdout": f"{HOLDOUT_PERCENT}% by xxhash64('{HOLDOUT_SALT}', row_id)",
            "derived_features": MetadataValue.json(list(DERIVED_FEATURES)),
            "cleaned_version": cleaned_housing.version,
        },
    )
