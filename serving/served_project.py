"""What the serving app knows of a model project: read from the platform's own declaration, once.

The app serves the projects the platform hosts (`mlops_assets.projects.load_projects`, so
MLOPS_PROJECTS and MLOPS_EXTRA_PROJECTS choose them here too). From each declaration it takes the
registered model, the task (a value, or a label with class probabilities) and the domain: the
columns of a row in the model's order, which of them are categories and which may be missing. The
request records are generated from the same domain (`serving.request_schema`).

Reading the declarations imports the platform (Spark, Pandera, Dagster: seconds), so the app does it
in a thread when it starts serving, never when it is imported.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from serving.request_schema import record_type
from serving.settings import ServingSettings

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.platform.project import Domain, ModelProject

REGRESSION = "regression"


@dataclass(frozen=True)
class RowLayout:
    """The columns of a request row, in the order the model and its signature take them."""

    features: tuple[str, ...]
    categorical: frozenset[str]
    optional: frozenset[str]

    @classmethod
    def of(cls, domain: "Domain") -> "RowLayout":
        return cls(domain.raw_features, frozenset(domain.categorical_features), frozenset(domain.optional_features))

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(name for name in self.features if name not in self.categorical)

    def columns_of(self, rows: list[tuple]) -> dict[str, np.ndarray]:
        """Row tuples (in `features` order) as named numpy columns; a missing number is NaN."""
        transposed = zip(*rows, strict=True)
        return {
            name: np.array(values, dtype=object if name in self.categorical else np.float64)
            for name, values in zip(self.features, transposed, strict=True)
        }

    def frame_of(self, columns: Mapping[str, np.ndarray]) -> "pd.DataFrame":
        """The columns as the DataFrame pyfunc's schema enforcement would hand the pipeline."""
        import pandas as pd

        return pd.DataFrame({name: columns[name] for name in self.features})

    def column_of(self, frame: "pd.DataFrame", name: str) -> np.ndarray:
        """One column of a DataFrame (a logged input example) as `columns_of` would give it."""
        if name not in frame.columns and name in self.optional:
            return np.full(len(frame), np.nan)
        return frame[name].to_numpy(dtype=object if name in self.categorical else np.float64)


@dataclass(frozen=True)
class ServedProject:
    name: str
    description: str
    model_name: str  # the registered model served
    alias: str
    task: str  # regression | binary | multiclass
    layout: RowLayout
    classes: tuple[str, ...]  # a classifier's labels as declared (the model's own order is read from it)
    prediction_log_dir: Path
    predict_record: type[msgspec.Struct] = field(repr=False)  # POST .../predict: unknown fields refused
    invocation_record: type[msgspec.Struct] = field(repr=False)  # POST .../invocations: extra columns ignored

    @property
    def is_classifier(self) -> bool:
        return self.task != REGRESSION

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.alias}"

    @classmethod
    def of(cls, project: "ModelProject", settings: ServingSettings) -> "ServedProject":
        is_default = project.name == settings.default_project
        model_name = (settings.model_name if is_default else None) or project.model_name
        log_dir = (settings.prediction_log_dir if is_default else None) or settings.log_root() / model_name
        title = "".join(part.capitalize() for part in project.name.split("_"))
        doc = f"One row of the {project.name} project: {project.description}"
        return cls(
            name=project.name,
            description=project.description,
            model_name=model_name,
            alias=settings.model_alias,
            task=project.task.name,
            layout=RowLayout.of(project.domain),
            classes=tuple(project.domain.target_classes),
            prediction_log_dir=log_dir,
            predict_record=record_type(f"{title}Features", project.domain, forbid_unknown_fields=True, doc=doc),
            invocation_record=record_type(f"{title}InvocationRecord", project.domain, forbid_unknown_fields=False, doc=doc),
        )


def load_served_projects(settings: ServingSettings, projects: "list[ModelProject] | None" = None) -> dict[str, ServedProject]:
    """Every project the platform hosts, by name; the default one must be among them. Blocking (imports)."""
    if projects is None:
        from mlops_assets.projects import load_projects

        projects = load_projects()
    served = {project.name: ServedProject.of(project, settings) for project in projects}
    if settings.default_project not in served:
        raise ValueError(
            f"MLOPS_SERVING_DEFAULT_MODEL={settings.default_project!r} is not a hosted project: {', '.join(served) or 'none'}"
        )
    return served


def declared_project(name: str | None = None) -> "ModelProject":
    """A hosted project's declaration, by name; by default the default project's (blocking: imports)."""
    from mlops_assets.projects import load_projects

    name = name or ServingSettings.from_env().default_project
    projects = {project.name: project for project in load_projects()}
    if name not in projects:
        raise ValueError(f"no hosted project is named {name!r}: {', '.join(projects)}")
    return projects[name]


def default_layout() -> RowLayout:
    """The default project's row layout, for callers that hold rows but no project (blocking)."""
    return RowLayout.of(declared_project().domain)
