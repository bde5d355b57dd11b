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

from mlops_assets.platform.resources.versioned_store import VersionedStore

RECORD_FILE = "record.json"


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


def _producing_run_id(context: InputContext) -> str:
    # The run that produced the input: this run, or the parent run when a re-execution skipped that step.
    return context.upstream_output.run_id if context.upstream_output is not None else context.step_context.run_id


class SparkParquetIOManager(ConfigurableIOManager):
    """Writes each Spark output to a new Parquet version folder and reads the version the run may see."""

    store: ResourceDependency[VersionedStore]
    pyspark: ResourceDependency[PySparkResource]

    def handle_output(self, context: OutputContext, obj: DataFrame) -> None:
        version_dir = self.store.new_version_dir(context.asset_key, context.run_id)
        obj.write.parquet(str(version_dir))
        written = self.pyspark.spark_session.read.parquet(str(version_dir))
        # Parquet footers hold the row count: this reads metadata, not the data.
        row_count = written.count()
        digest = _digest_files(list(version_dir.glob("*.parquet")))
        self.store.complete(
            version_dir,
            {
                "asset": context.asset_key.to_user_string(),
                "run_id": context.run_id,
                "written_at": datetime.now(UTC).isoformat(),
                "row_count": row_count,
                "digest": digest,
                "schema": json.loads(written.schema.json()),
            },
        )
        context.add_output_metadata(
            {
                **_version_metadata(version_dir, digest),
                "dagster/row_count": row_count,
                "dagster/column_schema": TableSchema(
                    columns=[TableColumn(name=field.name, type=field.dataType.simpleString()) for field in written.schema]
                ),
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
