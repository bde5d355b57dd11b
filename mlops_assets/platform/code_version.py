"""A project's code version: a digest of its own folder and of the model code every project shares,
recorded with every model for lineage and shown by Dagster as the training asset's code version."""

import hashlib
import sys
from functools import cache
from pathlib import Path

from mlops_assets.platform.project import ModelProject

_SHARED_MODEL_CODE = Path(__file__).resolve().parents[1] / "ml"


@cache
def _digest(folders: tuple[Path, ...]) -> str:
    sha = hashlib.sha256()
    for folder in folders:
        for source in sorted(folder.rglob("*.py")):
            sha.update(str(source.relative_to(folder)).encode())
            sha.update(source.read_bytes())
    return sha.hexdigest()[:16]


def project_code_version(project: ModelProject) -> str:
    project_folder = Path(sys.modules[project.build_model.__module__].__file__).resolve().parent
    return _digest((project_folder, _SHARED_MODEL_CODE))
