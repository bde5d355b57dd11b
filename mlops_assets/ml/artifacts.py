"""Log a scikit-learn model that loads from its own artifacts: its requirements and the few project
modules its pipeline calls, nothing else of the project.

skops rebuilds a `FunctionTransformer` by importing its function's module by name, so a model whose
feature step is project code needs that module wherever it is loaded. Shipping the whole package would
drag in Dagster and Spark through its `__init__` files; instead the named modules travel as MLflow
`code_paths` inside a skeleton package whose `__init__.py` files are empty. A module shipped this way
must import only what `pinned_requirements` lists (numpy, pandas, scikit-learn, scipy) and other modules
shipped with it; nothing checks this at logging time, the clean-environment test does.

At load time MLflow 3.17 (`mlflow.utils.model_utils._add_code_to_system_path`) only prepends the model's
`code/` folder to `sys.path` and leaves `sys.modules` alone, so a process that has already imported the
real package keeps resolving its submodules through the real package's `__path__` and never reads the
copies; a process that loads the model *before* importing the real package gets the skeleton from then
on, so such a process must import the real package first.
"""

import importlib.util
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo
    from sklearn.pipeline import Pipeline

# What loading a skops-serialised pipeline needs; MLflow adds itself to the list.
MODEL_RUNTIME_PACKAGES: tuple[str, ...] = ("scikit-learn", "skops", "numpy", "pandas", "scipy")


def _source_file(module: str) -> Path:
    try:
        # Imports the parent packages, as any import of `module` would.
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError as missing_parent:
        raise ValueError(f"cannot ship {module!r} with the model: {missing_parent}") from missing_parent
    if spec is None:
        raise ValueError(f"cannot ship {module!r} with the model: no such module")
    if spec.origin is None or not spec.origin.endswith(".py"):
        raise ValueError(f"cannot ship {module!r} with the model: it has no Python source file ({spec.origin})")
    return Path(spec.origin)


def model_code_paths(modules: Sequence[str], into: Path) -> list[str]:
    """Copy the source of each dotted module name under `into`, in its package folders, with an empty
    `__init__.py` for every parent package, and return the top-level package folders: MLflow's
    `code_paths`, which it copies under the model's `code/` folder and puts on `sys.path` at load time."""
    # A shipped module that is itself a package keeps its own `__init__.py`; every other parent is empty.
    sources: dict[Path, Path | None] = {}
    for module in modules:
        parts = module.split(".")
        for depth in range(1, len(parts)):
            sources.setdefault(Path(*parts[:depth], "__init__.py"), None)
        source = _source_file(module)
        relative = Path(*parts, "__init__.py") if source.name == "__init__.py" else Path(*parts[:-1], source.name)
        sources[relative] = source

    for relative, source in sources.items():
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes() if source is not None else b"")

    return [str(into / top_level) for top_level in dict.fromkeys(relative.parts[0] for relative in sources)]


def pinned_requirements(packages: Sequence[str] = MODEL_RUNTIME_PACKAGES) -> list[str]:
    """`name==version` as installed here. Stated, not inferred: MLflow's inference runs `uv export` or
    imports the model in a subprocess, seconds per logged model."""
    return [f"{package}=={version(package)}" for package in packages]


def log_sklearn_model(
    pipeline: "Pipeline",
    example: "pd.DataFrame",
    *,
    signature: "ModelSignature",
    registered_model_name: str | None,
    code_modules: Sequence[str],
    skops_trusted_types: Sequence[str],
    name: str = "model",
) -> "ModelInfo":
    """Log `pipeline` to the active MLflow run (and register it when `registered_model_name` is given)
    with its signature, input example, skops trust list, pinned requirements and the project modules
    in `code_modules`, so that it loads in an environment built from its `requirements.txt` alone."""
    import mlflow.sklearn

    with tempfile.TemporaryDirectory(prefix="model-code-") as scratch:
        # MLflow copies code_paths into the model while logging, so the scratch folder can go afterwards.
        code_paths = model_code_paths(code_modules, Path(scratch))
        return mlflow.sklearn.log_model(
            pipeline,
            name=name,
            signature=signature,
            input_example=example,
            registered_model_name=registered_model_name,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=list(skops_trusted_types),
            pip_requirements=pinned_requirements(),
            # An empty list would still record a `code` folder in the flavor configuration.
            code_paths=code_paths or None,
        )
