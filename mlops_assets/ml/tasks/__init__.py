"""Model evaluation per task kind, as pure functions of a fitted estimator and rows: no Dagster, Spark or MLflow.

A binary task needs its positive label, so there is no BINARY singleton: use BinaryTask(positive_label)
or task_named("binary", positive_label=...)."""

from mlops_assets.ml.tasks.base import CostMatrix, Evaluation, Task
from mlops_assets.ml.tasks.binary import BinaryTask
from mlops_assets.ml.tasks.multiclass import MulticlassTask
from mlops_assets.ml.tasks.regression import RegressionTask

REGRESSION = RegressionTask()
MULTICLASS = MulticlassTask()

_TASK_KINDS = {"regression": RegressionTask, "binary": BinaryTask, "multiclass": MulticlassTask}


def task_named(name: str, **options) -> Task:
    """task_named("regression"), task_named("multiclass"), task_named("binary", positive_label="Yes")."""
    if name not in _TASK_KINDS:
        raise ValueError(f"unknown task {name!r}: expected one of {', '.join(_TASK_KINDS)}")
    return _TASK_KINDS[name](**options)


__all__ = [
    "MULTICLASS",
    "REGRESSION",
    "BinaryTask",
    "CostMatrix",
    "Evaluation",
    "MulticlassTask",
    "RegressionTask",
    "Task",
    "task_named",
]
