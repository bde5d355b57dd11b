"""The new-data sensor on a real instance: one run per new content, never twice."""

import os
import shutil
import time
from pathlib import Path

import pytest
from dagster import SensorResult, build_sensor_context

from mlops_assets.platform.automation.new_data import SOURCE_FILE_TAG, SOURCE_SHA256_TAG, LandingFolder, build_new_data_sensor
from mlops_assets.platform.resources.data_source import sha256_of
from mlops_assets_tests.conftest import instance_under

new_data_sensor = build_new_data_sensor("housing")


@pytest.fixture
def instance(tmp_path: Path):
    instance = instance_under(tmp_path / "dagster_home")
    yield instance
    instance.dispose()


def tick(instance, landing: LandingFolder, cursor: str | None) -> SensorResult:
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"landing": landing})
    return new_data_sensor(context)


def settled(path: Path) -> Path:
    past = time.time() - 120
    os.utime(path, (past, past))
    return path


def test_a_new_file_requests_one_run_on_that_file_and_the_same_content_never_again(
    instance, tmp_path: Path, reference_csv: Path
):
    landing = LandingFolder(path=str(tmp_path / "landing"), settle_seconds=10)
    landing.folder("housing").mkdir(parents=True)
    drop = settled(Path(shutil.copy(reference_csv, landing.folder("housing") / "2026-01-14.csv")))

    first = tick(instance, landing, cursor=None)

    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.run_key == sha256_of(reference_csv)
    assert request.run_config == {"ops": {"housing__raw": {"config": {"location": str(drop)}}}}
    assert request.tags[SOURCE_FILE_TAG] == str(drop)
    assert request.tags[SOURCE_SHA256_TAG] == request.run_key

    # The same tick again, the same content renamed, copied or touched: nothing new to run.
    assert tick(instance, landing, first.cursor).run_requests == []
    settled(Path(shutil.copy(drop, landing.folder("housing") / "copy-of-it.csv")))
    drop = settled(Path(shutil.move(drop, landing.folder("housing") / "renamed.csv")))
    again = tick(instance, landing, first.cursor)
    assert again.run_requests == []
    assert "no new CSV content" in again.skip_reason.skip_message

    # New content is new data, under any name.
    changed = landing.folder("housing") / "2026-01-15.csv"
    changed.write_text(drop.read_text().replace("NEAR BAY", "NEAR OCEAN", 1))
    settled(changed)
    third = tick(instance, landing, again.cursor)
    assert [r.run_key for r in third.run_requests] == [sha256_of(changed)]

    # A new evaluation (a restarted daemon) reads only the stored cursor text: it still knows both.
    assert tick(instance, landing, third.cursor).run_requests == []


def test_a_file_still_being_written_waits(instance, tmp_path: Path, reference_csv: Path):
    landing = LandingFolder(path=str(tmp_path / "landing"), settle_seconds=60)
    landing.folder("housing").mkdir(parents=True)
    shutil.copy(reference_csv, landing.folder("housing") / "upload.csv.part")
    fresh = Path(shutil.copy(reference_csv, landing.folder("housing") / "fresh.csv"))

    waiting = tick(instance, landing, cursor=None)
    assert waiting.run_requests == []

    settled(fresh)
    ready = tick(instance, landing, waiting.cursor)
    assert [r.tags[SOURCE_FILE_TAG] for r in ready.run_requests] == [str(fresh)]


def test_the_landing_folder_is_created_for_the_first_drop(instance, tmp_path: Path):
    landing = LandingFolder(path=str(tmp_path / "not" / "yet"), settle_seconds=0)
    result = tick(instance, landing, cursor=None)
    assert result.run_requests == []
    assert landing.folder("housing").is_dir()
