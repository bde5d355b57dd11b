"""Fetching a project's raw CSV: a local path as is, an http(s) URL downloaded once, verified and cached."""

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from dagster import ConfigurableResource

DOWNLOAD_TIMEOUT_SECONDS = 60


class SourceChecksumError(Exception):
    pass


class SourceUnavailableError(Exception):
    pass


@dataclass(frozen=True)
class LocalSource:
    path: Path
    sha256: str
    origin: str


def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _verify(path: Path, origin: str, expected_sha256: str | None) -> str:
    actual = sha256_of(path)
    if expected_sha256 is not None and actual != expected_sha256:
        raise SourceChecksumError(f"{origin} has sha256 {actual}, expected {expected_sha256}")
    return actual


def _download(url: str, cache_dir: Path, expected_sha256: str | None) -> Path:
    cache_key = expected_sha256 or hashlib.sha256(url.encode()).hexdigest()
    cached = cache_dir / f"{cache_key}-{Path(urlparse(url).path).name or 'source.csv'}"
    if cached.exists() and (expected_sha256 is None or sha256_of(cached) == expected_sha256):
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".part") as handle:
                shutil.copyfileobj(response, handle)
    except OSError as error:
        raise SourceUnavailableError(
            f"could not download {url}: {error}. Without network, point MLOPS_DATA_DIR at a folder of local copies "
            "(or MLOPS_<PROJECT>_SOURCE at one CSV)."
        ) from error
    # Verify before the file takes its cache name, so a bad download is never mistaken for a good one.
    try:
        _verify(Path(handle.name), url, expected_sha256)
    except SourceChecksumError:
        os.unlink(handle.name)
        raise
    os.replace(handle.name, cached)
    return cached


def fetch_source(source: str, *, cache_dir: Path, expected_sha256: str | None) -> LocalSource:
    """A local copy of `source` and its checksum; raises if a known checksum does not match."""
    if urlparse(source).scheme in ("http", "https"):
        path = _download(source, cache_dir, expected_sha256)
    else:
        path = Path(source.removeprefix("file://")).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"the source {source} is {path}, which is not a file")
    return LocalSource(path=path, sha256=_verify(path, source, expected_sha256), origin=source)


class DataSourceResource(ConfigurableResource):
    """Each project's raw CSV: a local path or an http(s) URL, and the sha256 it must have (empty: any)."""

    locations: dict[str, str]
    checksums: dict[str, str] = {}
    cache_dir: str

    def fetch(self, project: str, location: str | None = None) -> LocalSource:
        """A local copy of `location` (a run's own source), or of the project's configured one. The
        configured checksum applies to the configured source only: a new drop has a checksum of its own."""
        configured = self.locations[project]
        if not configured and location is None:
            raise SourceUnavailableError(
                f"project {project} has no public copy to download: set MLOPS_{project.upper()}_SOURCE to its CSV"
            )
        if location is not None and location != configured:
            return fetch_source(location, cache_dir=Path(self.cache_dir), expected_sha256=None)
        return fetch_source(configured, cache_dir=Path(self.cache_dir), expected_sha256=self.checksums.get(project) or None)
