"""The model projects this platform hosts: one folder each, declared in its `project.PROJECT`.

MLOPS_PROJECTS narrows the built-in ones (comma-separated names; default: all). A project outside this
folder joins by naming its module in MLOPS_EXTRA_PROJECTS (comma-separated `package.module`, each with
a `PROJECT`). Nothing is imported here at import time: the serving app
reads a project's domain facts without paying for Spark and Pandera.
"""

import importlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_assets.platform.project import ModelProject

BUILTIN_PROJECTS = ("housing", "churn", "iris")


def project_from_module(module_name: str) -> "ModelProject":
    from mlops_assets.platform.project import ModelProject

    project = getattr(importlib.import_module(module_name), "PROJECT", None)
    if not isinstance(project, ModelProject):
        raise TypeError(f"{module_name} has no PROJECT declaring a ModelProject")
    return project


def load_projects(extra_modules: str | None = None) -> list["ModelProject"]:
    extra = os.environ.get("MLOPS_EXTRA_PROJECTS", "") if extra_modules is None else extra_modules
    chosen = [name.strip() for name in os.environ.get("MLOPS_PROJECTS", ",".join(BUILTIN_PROJECTS)).split(",") if name.strip()]
    if unknown := sorted(set(chosen) - set(BUILTIN_PROJECTS)):
        raise ValueError(f"MLOPS_PROJECTS names {unknown}; the built-in projects are {', '.join(BUILTIN_PROJECTS)}")
    modules = [f"mlops_assets.projects.{name}.project" for name in chosen]
    modules += [name.strip() for name in extra.split(",") if name.strip()]
    projects = [project_from_module(module) for module in modules]
    names = [project.name for project in projects]
    if len(set(names)) != len(names):
        raise ValueError(f"two projects share a name: {names}")
    return projects
