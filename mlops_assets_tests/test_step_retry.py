"""A Spark step that fails midway through writing its output is retried in its run, and what the
failed attempt left behind is never taken as good: the downstream step and the contract check read
the retry's complete version."""

from pathlib import Path

from dagster import AssetKey, DagsterEventType, OutputContext
from pyspark.sql import DataFrame

from mlops_assets.platform.resources import SparkParquetIOManager
from mlops_assets.platform.resources.versioned_store import MANIFEST_FILE, VersionedStore
from mlops_assets.platform.transforms import CleanedRows
from mlops_assets_tests.conftest import Platform, asset_metadata, check_results, materialized

FAILING_ASSET = "housing/cleaned"


class FailsOnceMidWrite(SparkParquetIOManager):
    """The project's IO manager, except that the first write of one asset dies halfway: some Parquet
    files are on disk, the manifest that would mark the version complete is not."""

    fail_asset: str
    failed_marker: str

    def handle_output(self, context: OutputContext, obj: DataFrame | CleanedRows) -> None:
        if context.asset_key.to_user_string() == self.fail_asset and not Path(self.failed_marker).exists():
            Path(self.failed_marker).touch()
            frame = obj.frame if isinstance(obj, CleanedRows) else obj
            frame.limit(100).write.parquet(str(self.store.new_version_dir(context.asset_key, context.run_id)))
            raise OSError("executor lost while writing Parquet")
        super().handle_output(context, obj)


def test_a_step_failing_midway_is_retried_and_its_partial_output_never_read(make_platform, tmp_path: Path):
    platform: Platform = make_platform("retried")
    resources = platform.resources()
    resources["spark_parquet_io_manager"] = FailsOnceMidWrite(
        store=resources["store"], pyspark=resources["pyspark"], fail_asset=FAILING_ASSET, failed_marker=str(tmp_path / "failed")
    )

    result = platform.materialize(selection=["housing/raw", "housing/cleaned", "housing/features"], resources=resources)

    assert result.success
    assert materialized(result) == {"housing/raw", "housing/cleaned", "housing/features"}
    assert all(check_results(result).values()), check_results(result)
    retried = [event for event in result.all_events if event.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert [event.step_key for event in retried] == [AssetKey.from_user_string(FAILING_ASSET).to_python_identifier()]

    store = VersionedStore(root=str(platform.settings.data_root))
    folders = sorted(path for path in store.asset_dir(AssetKey.from_user_string(FAILING_ASSET)).iterdir() if path.is_dir())
    partial, complete = folders
    assert not (partial / MANIFEST_FILE).exists() and not store.is_certified(partial)
    assert store.latest_certified(AssetKey.from_user_string(FAILING_ASSET)) == complete
    assert asset_metadata(result, FAILING_ASSET)["version"] == complete.name
    assert asset_metadata(result, FAILING_ASSET)["dagster/row_count"] > 20_000
    # The features were computed from the retry's complete version, not the 100 rows left behind.
    assert asset_metadata(result, "housing/features")["dagster/row_count"] == asset_metadata(result, FAILING_ASSET)["dagster/row_count"]
