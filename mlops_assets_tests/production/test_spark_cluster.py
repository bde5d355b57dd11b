"""The data assets on a real Spark standalone cluster give exactly what `local[*]` gives."""

from pathlib import Path

from dagster import AssetKey

from mlops_assets.platform.resources.versioned_store import VersionedStore
from mlops_assets_tests.conftest import materialize_in_a_process

DATA_ASSETS = ["housing/raw", "housing/cleaned", "housing/features"]


def materialize_data_assets(state_dir: Path, source: Path, spark_master: str) -> Path:
    """A separate process: a SparkSession's master is fixed for the life of its process."""
    materialize_in_a_process(state_dir, DATA_ASSETS, {"MLOPS_DATA_SOURCE": str(source), "MLOPS_SPARK_MASTER": spark_master})
    return state_dir / "data"


def test_the_data_assets_on_a_standalone_cluster_match_local(spark_cluster, spark, make_platform, reference_csv, tmp_path):
    cluster_root = materialize_data_assets(tmp_path / "cluster", reference_csv, spark_cluster.master_url)
    assert "mlops-assets" in spark_cluster.application_names(), "the run did not use the cluster"
    local = make_platform("local")
    assert local.materialize(selection=DATA_ASSETS).success
    local_root = local.settings.data_root

    for asset in DATA_ASSETS:
        cluster_version = VersionedStore(root=str(cluster_root)).latest_certified(AssetKey.from_user_string(asset))
        local_version = VersionedStore(root=str(local_root)).latest_certified(AssetKey.from_user_string(asset))
        assert cluster_version is not None and local_version is not None, asset
        on_cluster = spark.read.parquet(str(cluster_version))
        on_local = spark.read.parquet(str(local_version))
        assert on_cluster.schema == on_local.schema, asset
        assert on_cluster.count() == on_local.count() == 20_640, asset
        assert on_cluster.exceptAll(on_local).isEmpty() and on_local.exceptAll(on_cluster).isEmpty(), asset
