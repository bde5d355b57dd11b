from pathlib import Path

import pytest
from dagster import AssetKey

from mlops_assets.platform.resources.versioned_store import NoCertifiedVersionError, VersionedStore

KEY = AssetKey(["housing", "cleaned"])


def write_version(store: VersionedStore, run_id: str, *, complete: bool = True, certify: bool = False) -> Path:
    version = store.new_version_dir(KEY, run_id)
    version.mkdir()
    if complete:
        store.complete(version, {"digest": run_id})
    if certify:
        store.certify(version, check_name="check_contract_cleaned", run_id=run_id)
    return version


def test_a_run_reads_its_own_version_and_other_runs_the_newest_certified(tmp_path: Path):
    store = VersionedStore(root=str(tmp_path))
    good = write_version(store, "run-a", certify=True)
    bad = write_version(store, "run-b")  # written, but its check failed

    assert store.resolve(KEY, "run-b") == bad
    assert store.resolve(KEY, "run-c") == good
    assert store.latest_certified(KEY) == good


def test_a_half_written_version_is_never_read(tmp_path: Path):
    store = VersionedStore(root=str(tmp_path))
    good = write_version(store, "run-a", certify=True)
    write_version(store, "run-b", complete=False)

    assert store.resolve(KEY, "run-b") == good


def test_nothing_certified_is_a_clear_error(tmp_path: Path):
    store = VersionedStore(root=str(tmp_path))
    write_version(store, "run-a")

    with pytest.raises(NoCertifiedVersionError, match="housing/cleaned has no version that passed its checks"):
        store.resolve(KEY, "run-b")


def test_versions_never_share_a_folder(tmp_path: Path):
    store = VersionedStore(root=str(tmp_path))
    assert store.new_version_dir(KEY, "run-a") != store.new_version_dir(KEY, "run-a")
