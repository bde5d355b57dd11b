from dagster import AssetExecutionContext, Config, MetadataValue, Output
from pydantic import Field
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame

from mlops_assets.assets.common import markdown_table, spark_data_asset
from mlops_assets.resources.data_source import DataSourceResource
from mlops_assets.transforms import read_source_csv

PREVIEW_ROWS = 5


class SourceConfig(Config):
    location: str | None = Field(
        default=None,
        description="A CSV path or http(s) URL to ingest in this run; empty means the configured MLOPS_DATA_SOURCE.",
    )


@spark_data_asset()
def raw_housing(
    context: AssetExecutionContext, config: SourceConfig, pyspark: PySparkResource, data_source: DataSourceResource
) -> Output[DataFrame]:
    """The source CSV exactly as it came, as an immutable Parquet snapshot.

    Every column is kept as the string the source had, so that a malformed value is caught by the
    raw contract with the value itself in hand, not lost to a silent cast. A URL source is downloaded
    once, verified against its sha256 and cached; a local path is read in place.
    """
    source = data_source.fetch(config.location)
    context.log.info(f"Reading {source.origin} (sha256 {source.sha256})")
    frame = read_source_csv(pyspark.spark_session, str(source.path))
    preview = [row.asDict() for row in frame.limit(PREVIEW_ROWS).collect()]
    return Output(
        frame,
        metadata={
            "source": source.origin,
            "source_sha256": source.sha256,
            "source_columns": MetadataValue.json(frame.columns),
            "preview": markdown_table(preview),
        },
    )
