"""A project's data assets on Spark: the raw snapshot, the cleaned rows and the features, each written
as a new versioned Parquet folder that other runs read only once its blocking contract passed."""

from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, Config, MetadataValue, Output, asset
from dagster_pyspark import PySparkResource
from pydantic import Field
from pyspark.sql import DataFrame

from mlops_assets.platform.assets.common import SPARK_POOL, SPARK_RETRY_POLICY, ProjectKeys
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources.data_source import DataSourceResource
from mlops_assets.platform.resources.io_managers import COUNT_ROWS_BY, Versioned
from mlops_assets.platform.transforms import CleanedRows, read_source_csv, split_description

class SourceConfig(Config):
    location: str | None = Field(
        default=None,
        description="A CSV path or http(s) URL to ingest in this run; empty means the project's configured source.",
    )


def build_data_assets(project: ModelProject) -> list[AssetsDefinition]:
    keys = ProjectKeys(project.name)
    spark_asset = dict(
        group_name=project.name,
        kinds={"spark", "parquet"},
        owners=list(project.owners),
        io_manager_key="spark_parquet_io_manager",
        pool=SPARK_POOL,
        retry_policy=SPARK_RETRY_POLICY,
    )

    @asset(key=keys.raw, **spark_asset)
    def raw(
        context: AssetExecutionContext, config: SourceConfig, pyspark: PySparkResource, data_source: DataSourceResource
    ) -> Output[DataFrame]:
        """The source CSV exactly as it came, as an immutable Parquet snapshot.

        Every column is kept as the string the source had, so that a malformed value is caught by the
        raw contract with the value itself in hand, not lost to a silent cast. A URL source is
        downloaded once, verified against its sha256 and cached; a local path is read in place.
        """
        source = data_source.fetch(project.name, config.location)
        context.log.info(f"Reading {source.origin} (sha256 {source.sha256})")
        frame = read_source_csv(pyspark.spark_session, str(source.path))
        # The preview and the row count come with the written version (the IO manager reads its files).
        return Output(
            frame,
            metadata={"source": source.origin, "source_sha256": source.sha256, "source_columns": MetadataValue.json(frame.columns)},
        )

    @asset(
        key=keys.cleaned,
        ins={"raw": AssetIn(keys.raw)},
        description=_describe(project.clean, "Typed, repaired and de-duplicated rows, with a count of what each cleaning rule did."),
        **spark_asset,
    )
    def cleaned(raw: Versioned) -> Output[CleanedRows]:
        # Counted while the IO manager writes them: rows in and out and each rule's count come with the version.
        return Output(project.clean(raw.value), metadata={"raw_version": raw.version})

    @asset(
        key=keys.features,
        ins={"cleaned": AssetIn(keys.cleaned)},
        description=_describe(project.with_features, "Model features and a deterministic train / validation / test split."),
        metadata={COUNT_ROWS_BY: "split"},
        **spark_asset,
    )
    def features(context: AssetExecutionContext, cleaned: Versioned) -> Output[DataFrame]:
        frame = project.with_features(cleaned.value)
        derived = [name for name in frame.columns if name not in cleaned.value.columns and name != "split"]
        return Output(
            frame,
            metadata={
                # train_rows, validation_rows and test_rows are counted from the written files (COUNT_ROWS_BY).
                "split": split_description(),
                "derived_features": MetadataValue.json(derived),
                "cleaned_version": cleaned.version,
            },
        )

    return [raw, cleaned, features]


def _describe(function, headline: str) -> str:
    # The project's own words on its rules (its transform's docstring) describe the asset in the UI.
    details = (function.__doc__ or "").strip()
    return f"{headline}\n\n{details}" if details else headline
