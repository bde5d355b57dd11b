"""IO managers over the versioned store: Spark frames as Parquet folders, small records as JSON.

Both hand a step a `Versioned` value: the data plus the version it came from, so that lineage
(which data a model was trained on) is recorded from what was actually read, not from a guess.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableIOManager,
    InputContext,
    MetadataValue,
    OutputContext,
    ResourceDependency,
    TableColumn,
    TableSchema,
)
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame

from mlops_assets.platform.assets.common import markdown_table
from mlops_assets.platform.resources.versioned_store import VersionedStore
from mlops_assets.platform.transforms import PARQUET_WRITE_OPTIONS, CleanedRows, write_cleaned

RECORD_FILE = "record.json"
PREVIEW_ROWS = 5
# Definition metadata an asset sets to have its rows counted by the values of one column (features: "split").
COUNT_ROWS_BY = "mlops/count_rows_by"


@dataclass(frozen=True)
class Versioned:
    """A stored version of an asset: its value (a Spark DataFrame or a record) and where it came from."""

    value: Any
    path: str
    version: str
    digest: str


def _digest_files(files: list[Path]) -> str:
    sha = hashlib.sha256()
    for file in sorted(files):
        sha.update(file.name.encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
    return sha.hexdigest()


def _version_metadata(version_dir: Path, digest: str) -> dict[str, Any]:
    return {
        "path": MetadataValue.path(str(version_dir)),
        "version": version_dir.name,
        "digest": digest,
    }


@dataclass(frozen=True)
class WrittenParquet:
    row_count: int
    preview: list[dict[str, Any]]
    rows_by_value: dict[str, int]


def _written_parquet(files: list[Path], count_rows_by: str | None) -> WrittenParquet:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    row_count = sum(pq.read_metadata(file).num_rows for file in files)
    preview: list[dict[str, Any]] = []
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=PREVIEW_ROWS):
            preview.extend(batch.to_pylist()[: PREVIEW_ROWS - len(preview)])
            break
        if len(preview) >= PREVIEW_ROWS:
            break
    rows_by_value = {}
    if count_rows_by:
        counts = pc.value_counts(pq.read_table(files, columns=[count_rows_by]).column(count_rows_by).combine_chunks())
        rows_by_value = {str(entry["values"]): int(entry["counts"]) for entry in counts.to_pylist()}
    return WrittenParquet(row_count, preview, rows_by_value)


def _cleaning_metadata(counts: dict[str, int]) -> dict[str, Any]:
    rule_counts = {name: count for name, count in counts.items() if name not in ("rows_in", "rows_out")}
    return {
        "rows_in": counts["rows_in"],
        "rows_out": counts["rows_out"],
        **{f"rule/{name}": count for name, count in rule_counts.items()},
        "rules": MetadataValue.json(rule_counts),
    }


def _producing_run_id(context: InputContext) -> str:
    # The run that produced the input: this run, or the parent run when a re-execution skipped that step.
    return context.upstream_output.run_id if context.upstream_output is not None else context.step_context.run_id


class SparkParquetIOManager(ConfigurableIOManager):
    """Writes each Spark output to a new Parquet version folder and reads the version the run may see."""

    store: ResourceDependency[VersionedStore]
    pyspark: ResourceDependency[PySparkResource]

    def handle_output(self, context: OutputContext, obj: DataFrame | CleanedRows) -> None:
        version_dir = self.store.new_version_dir(context.asset_key, context.run_id)
        if isinstance(obj, CleanedRows):
            counts = write_cleaned(obj, version_dir)
            context.log.info(f"cleaning: {counts}")
            frame, cleaning = obj.frame, _cleaning_metadata(counts)
        else:
            obj.write.options(**PARQUET_WRITE_OPTIONS).parquet(str(version_dir))
            frame, cleaning = obj, {}
        # What is reported of the new version comes from its files (the Parquet footers, a few rows, one
        # column), read here: another Spark job each would cost more than the write itself on small data.
        files = sorted(version_dir.glob("*.parquet"))
        written = _written_parquet(files, context.definition_metadata.get(COUNT_ROWS_BY))
        digest = _digest_files(files)
        schema = frame.schema
        self.store.complete(
            version_dir,
            {
                "asset": context.asset_key.to_user_string(),
                "run_id": context.run_id,
                "written_at": datetime.now(UTC).isoformat(),
                "row_count": written.row_count,
                "digest": digest,
                "schema": json.loads(schema.json()),
            },
        )
        context.add_output_metadata(
            {
                **_version_metadata(version_dir, digest),
                "dagster/row_count": written.row_count,
                "dagster/column_schema": TableSchema(
                    columns=[TableColumn(name=field.name, type=field.dataType.simpleString()) for field in schema]
                ),
                "preview": markdown_table(written.preview),
                **{f"{value}_rows": count for value, count in written.rows_by_value.items()},
                **cleaning,
            }
        )

    def load_input(self, context: InputContext) -> Versioned:
        version_dir = self.store.resolve(context.asset_key, _producing_run_id(context))
        frame = self.pyspark.spark_session.read.parquet(str(version_dir))
        digest = self.store.manifest(version_dir)["digest"]
        context.add_input_metadata(_version_metadata(version_dir, digest))
        return Versioned(value=frame, path=str(version_dir), version=version_dir.name, digest=digest)


class JsonIOManager(ConfigurableIOManager):
    """Small records (model versions, metrics, deployment decisions), versioned like the data."""

    store: ResourceDependency[VersionedStore]

    def handle_output(self, context: OutputContext, obj: dict[str, Any]) -> None:
        version_dir = self.store.new_version_dir(context.asset_key, context.run_id)
        version_dir.mkdir(parents=True)
        record_file = version_dir / RECORD_FILE
        record_file.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
        digest = _digest_files([record_file])
        self.store.complete(
            version_dir,
            {"asset": context.asset_key.to_user_string(), "run_id": context.run_id, "digest": digest},
        )
        context.add_output_metadata(_version_metadata(version_dir, digest))

    def load_input(self, context: InputContext) -> Versioned:
        version_dir = self.store.resolve(context.asset_key, _producing_run_id(context))
        value = json.loads((version_dir / RECORD_FILE).read_text())
        digest = self.store.manifest(version_dir)["digest"]
        return Versioned(value=value, path=str(version_dir), version=version_dir.name, digest=digest)
