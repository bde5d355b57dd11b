"""New data: a CSV dropped into the landing folder starts a refresh of the whole graph on that file.

Idempotent twice over. The run key is the file's sha256, and Dagster never launches two runs with one
key for a sensor; the cursor, which Dagster stores with the sensor and so survives daemon restarts,
remembers every content already requested, so a copy, a rename or a touched file is not run again.
The cursor also remembers each file's size and mtime with its checksum: a tick hashes only files
that are new or changed.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    ConfigurableResource,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from pydantic import Field

from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.automation.jobs import refresh_job_name
from mlops_assets.platform.resources.data_source import sha256_of

SOURCE_FILE_TAG = "mlops/source_file"
SOURCE_SHA256_TAG = "mlops/source_sha256"
# Enough to recognise any recent drop again; the run key still guards anything older.
REMEMBERED_DIGESTS = 1000
POLL_SECONDS = 30
# Names a writer uses while a file is still being written.
UNFINISHED_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")


class LandingFolder(ConfigurableResource):
    """Where new CSV drops arrive: one folder per project under MLOPS_LANDING_DIR."""

    path: str = Field(description="The folder holding each project's landing folder (`<path>/<project>`), created when missing.")
    settle_seconds: float = Field(
        default=10.0,
        ge=0,
        description="A file must be unmodified this long before it is picked up, so that a half-copied file is not read.",
    )

    def folder(self, project_name: str) -> Path:
        return Path(self.path) / project_name

    def settled_csv_files(self, project_name: str, now: float) -> list[Path]:
        """CSV files at the top of the project's folder, complete by name and age, oldest first."""
        folder = self.folder(project_name)
        folder.mkdir(parents=True, exist_ok=True)
        candidates = [
            path
            for path in folder.iterdir()
            if path.is_file()
            and path.suffix.lower() == ".csv"
            and not path.name.startswith((".", "_"))
            and not path.name.lower().endswith(UNFINISHED_SUFFIXES)
        ]
        settled = [path for path in candidates if now - path.stat().st_mtime >= self.settle_seconds]
        return sorted(settled, key=lambda path: (path.stat().st_mtime_ns, path.name))


@dataclass
class LandingCursor:
    """The sensor's memory: contents already requested, and the checksum of each file last seen."""

    digests: list[str] = field(default_factory=list)
    files: dict[str, list] = field(default_factory=dict)  # name -> [size, mtime_ns, sha256]

    @classmethod
    def parse(cls, raw: str | None) -> "LandingCursor":
        if not raw:
            return cls()
        state = json.loads(raw)
        return cls(digests=list(state.get("digests", [])), files=dict(state.get("files", {})))

    def dump(self) -> str:
        return json.dumps({"digests": self.digests[-REMEMBERED_DIGESTS:], "files": self.files}, sort_keys=True)

    def digest_of(self, path: Path) -> str:
        stat = path.stat()
        known = self.files.get(path.name)
        if known is not None and known[:2] == [stat.st_size, stat.st_mtime_ns]:
            return known[2]
        digest = sha256_of(path)
        self.files[path.name] = [stat.st_size, stat.st_mtime_ns, digest]
        return digest

    def claim(self, digest: str) -> bool:
        """True the first time a content is seen."""
        if digest in self.digests:
            return False
        self.digests.append(digest)
        return True


def refresh_request(project_name: str, path: Path, digest: str) -> RunRequest:
    raw_step = ProjectKeys(project_name).raw.to_python_identifier()
    return RunRequest(
        run_key=digest,
        run_config={"ops": {raw_step: {"config": {"location": str(path)}}}},
        tags={SOURCE_FILE_TAG: str(path), SOURCE_SHA256_TAG: digest},
    )


def build_new_data_sensor(project_name: str) -> SensorDefinition:
    @sensor(
        name=f"{project_name}_new_data",
        job_name=refresh_job_name(project_name),
        minimum_interval_seconds=POLL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"A new CSV in {project_name}'s landing folder (MLOPS_LANDING_DIR/{project_name}) refreshes the whole "
            f"{project_name} graph on that file, once per content."
        ),
    )
    def new_data(context: SensorEvaluationContext, landing: LandingFolder) -> SensorResult:
        cursor = LandingCursor.parse(context.cursor)
        settled = landing.settled_csv_files(project_name, time.time())
        requests = []
        for path in settled:
            digest = cursor.digest_of(path)
            if cursor.claim(digest):
                context.log.info(f"new data: {path.name} (sha256 {digest})")
                requests.append(refresh_request(project_name, path, digest))
        # Forget files that are gone; their contents stay remembered in `digests`.
        present = {path.name for path in settled}
        cursor.files = {name: state for name, state in cursor.files.items() if name in present}
        skip = None if requests else f"no new CSV content in {landing.folder(project_name)}"
        return SensorResult(run_requests=requests, cursor=cursor.dump(), skip_reason=skip)

    return new_data
