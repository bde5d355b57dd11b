"""Fetching the source: a local path, and a real HTTP download from a server on loopback."""

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from mlops_assets.platform.resources.data_source import SourceChecksumError, SourceUnavailableError, fetch_source


@pytest.fixture
def served_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_local_path_is_read_in_place_with_its_checksum(tmp_path: Path):
    csv = tmp_path / "housing.csv"
    csv.write_text("a,b\n1,2\n")
    source = fetch_source(str(csv), cache_dir=tmp_path / "cache", expected_sha256=None)
    assert source.path == csv
    assert source.sha256 == hashlib.sha256(csv.read_bytes()).hexdigest()


def test_a_url_is_downloaded_verified_and_cached(tmp_path: Path, served_folder):
    folder, url = served_folder
    content = b"a,b\n1,2\n"
    (folder / "housing.csv").write_bytes(content)
    expected = hashlib.sha256(content).hexdigest()

    first = fetch_source(f"{url}/housing.csv", cache_dir=tmp_path / "cache", expected_sha256=expected)
    (folder / "housing.csv").unlink()  # a second fetch must not need the server
    second = fetch_source(f"{url}/housing.csv", cache_dir=tmp_path / "cache", expected_sha256=expected)

    assert first.path == second.path
    assert first.path.read_bytes() == content


def test_a_download_with_the_wrong_checksum_is_refused_and_not_cached(tmp_path: Path, served_folder):
    folder, url = served_folder
    (folder / "housing.csv").write_bytes(b"tampered\n")

    with pytest.raises(SourceChecksumError, match="expected"):
        fetch_source(f"{url}/housing.csv", cache_dir=tmp_path / "cache", expected_sha256="0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_local_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not a file"):
        fetch_source(str(tmp_path / "nope.csv"), cache_dir=tmp_path, expected_sha256=None)


def test_an_unreachable_url_says_how_to_work_offline(tmp_path: Path, served_folder):
    _, url = served_folder

    with pytest.raises(SourceUnavailableError, match="point MLOPS_DATA_DIR at a folder of local copies"):
        fetch_source(f"{url}/missing.csv", cache_dir=tmp_path / "cache", expected_sha256=None)
