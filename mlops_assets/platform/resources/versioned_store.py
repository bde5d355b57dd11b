"""Immutable, versioned outputs, so that a bad batch never clobbers the last good one.

Dagster runs blocking checks after an asset has written its output. Every materialization therefore
writes a new version folder, `<root>/<asset>/<UTC time>_<run id>/`, and a version becomes visible to
other runs only once the asset's blocking contract check certified it. Within a run, downstream steps
read that run's own version (they only run at all when its blocking check passed).
"""

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import AssetKey, ConfigurableResource

MANIFEST_FILE = "_MANIFEST.json"
CERTIFICATE_FILE = "_CERTIFIED.json"


class NoCertifiedVersionError(Exception):
    pass


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(payload, handle, indent=2, default=str)
    os.replace(handle.name, path)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


class VersionedStore(ConfigurableResource):
    """Where asset outputs live: one folder per asset, one immutable folder per materialization."""

    root: str

    def asset_dir(self, asset_key: AssetKey) -> Path:
        return Path(self.root).joinpath(*asset_key.path)

    def new_version_dir(self, asset_key: AssetKey, run_id: str) -> Path:
        """A fresh, not yet existing folder; a retried step gets a new one, never the half-written old one."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.asset_dir(asset_key).mkdir(parents=True, exist_ok=True)
        return self.asset_dir(asset_key) / f"{stamp}_{run_id}"

    def complete(self, version_dir: Path, manifest: dict[str, Any]) -> None:
        """Mark a version as fully written; folders without a manifest are leftovers of a failed write."""
        _write_json_atomically(version_dir / MANIFEST_FILE, manifest)

    def certify(self, version_dir: Path, *, check_name: str, run_id: str) -> None:
        _write_json_atomically(
            version_dir / CERTIFICATE_FILE,
            {"check": check_name, "run_id": run_id, "certified_at": datetime.now(UTC).isoformat()},
        )

    def manifest(self, version_dir: Path) -> dict[str, Any]:
        return _read_json(version_dir / MANIFEST_FILE)

    def is_certified(self, version_dir: Path) -> bool:
        return (version_dir / CERTIFICATE_FILE).exists()

    def _complete_versions(self, asset_key: AssetKey) -> list[Path]:
        folder = self.asset_dir(asset_key)
        if not folder.exists():
            return []
        return sorted(path for path in folder.iterdir() if (path / MANIFEST_FILE).exists())

    def run_version(self, asset_key: AssetKey, run_id: str) -> Path | None:
        written_by_run = [path for path in self._complete_versions(asset_key) if path.name.endswith(f"_{run_id}")]
        return written_by_run[-1] if written_by_run else None

    def latest_certified(self, asset_key: AssetKey) -> Path | None:
        certified = [path for path in self._complete_versions(asset_key) if self.is_certified(path)]
        return certified[-1] if certified else None

    def resolve(self, asset_key: AssetKey, run_id: str) -> Path:
        """The version a step of `run_id` reads: the run's own, else the newest certified one."""
        version_dir = self.run_version(asset_key, run_id) or self.latest_certified(asset_key)
        if version_dir is None:
            raise NoCertifiedVersionError(
                f"{asset_key.to_user_string()} has no version that passed its checks under {self.asset_dir(asset_key)}: "
                "materialize it first."
            )
        return version_dir
