"""What a model project declares, once, in its own folder: the factory builds everything else from it.

A project names its data (source, domain facts, contracts, Spark transforms), its model (task,
scikit-learn pipeline, variants, the code that travels with the model) and how a candidate may reach
production (gate, slices, costs). Nothing here runs anything.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

from mlops_assets.ml.tasks import CostMatrix, Task

Params = TypeVar("Params")

if TYPE_CHECKING:
    import pandera.pandas as pa
    import pandera.pyspark as pa_spark
    from pyspark.sql import DataFrame
    from sklearn.pipeline import Pipeline

    from mlops_assets.platform.transforms import CleanedRows


@dataclass(frozen=True)
class DataSource:
    """The public copy of a project's raw CSV and its checksum (empty: none, its source is always
    configured), and the name of its local copy in a folder of reference data (MLOPS_DATA_DIR)."""

    url: str
    sha256: str
    file_name: str
    # Older variable prefixes (`<prefix>_SOURCE`, `<prefix>_SHA256`) still honoured: housing predates projects.
    legacy_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Domain:
    """The columns of a row and the values a real one takes: read by contracts, drift, training and
    the serving app's request validation, so that all of them agree on what a valid row is."""

    target: str
    numeric_features: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]]  # categorical feature -> its known values
    value_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # column -> (min, max)
    optional_features: frozenset[str] = frozenset()  # may be missing, in training rows and requests alike
    target_classes: tuple[str, ...] = ()  # classification: the labels, in the model's order
    id_columns: tuple[str, ...] = ()  # identify a row; never a feature

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(self.categories)

    @property
    def raw_features(self) -> tuple[str, ...]:
        """The model's input columns, in the order the model and its signature take them."""
        return (*self.numeric_features, *self.categorical_features)


@dataclass(frozen=True)
class Contracts:
    """The blocking Pandera contracts of the data assets (pandera.pyspark) and of the model's smoke
    predictions and the evaluation table (pandera.pandas)."""

    raw: "pa_spark.DataFrameSchema"
    cleaned: "pa_spark.DataFrameSchema"
    features: "pa_spark.DataFrameSchema"
    smoke_predictions: "pa.DataFrameSchema"
    evaluation: "pa.DataFrameSchema"


@dataclass(frozen=True)
class Variant:
    """A named set of hyperparameters; the training asset fits every variant and keeps the best."""

    name: str
    params: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True)
class GatePolicy:
    """When a candidate may take production, on the project's primary metric over the holdout: past
    an absolute bound, no worse than production beyond `max_regression` (a fraction), and no slice
    with at least `min_slice_rows` rows worse than production's beyond `slice_tolerance`."""

    bound: float
    max_regression: float = 0.01
    slice_tolerance: float = 0.05
    min_slice_rows: int = 30
    bound_source: str = ""  # where the bound comes from, shown with it
    # A candidate that passes while a production version serves takes the alias `challenger` instead:
    # production moves only on live evidence (canary or shadow traffic and its outcomes).
    live_evidence: bool = False


@dataclass(frozen=True)
class ModelProject:
    name: str  # the key prefix and group of every asset: lowercase, no spaces
    description: str
    model_name: str  # the registered model and MLflow experiment
    task: Task
    source: DataSource
    domain: Domain
    contracts: Contracts
    clean: "Callable[[DataFrame], CleanedRows]"  # raw strings -> typed rows, counted per rule as they are written
    with_features: "Callable[[DataFrame], DataFrame]"  # cleaned rows -> features with a `split` column
    build_model: "Callable[[Mapping[str, Any]], Pipeline]"  # hyperparameters -> unfitted pipeline over raw_features
    variants: tuple[Variant, ...]
    gate: GatePolicy
    slice_column: str | None = None  # a categorical feature to report and gate every metric by
    costs: CostMatrix | None = None  # binary: the value of each outcome, for the business metric
    # Modules the pipeline imports at load time (numpy-only feature formulas): shipped with the model.
    model_code: tuple[str, ...] = ()
    skops_trusted_types: tuple[str, ...] = ()
    owners: tuple[str, ...] = ("team:mlops",)

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"project name {self.name!r} must be a lowercase identifier: it prefixes asset keys and jobs")
        if not self.variants:
            raise ValueError(f"project {self.name} declares no model variant")
        if len({variant.name for variant in self.variants}) != len(self.variants):
            raise ValueError(f"project {self.name} declares two variants with one name")
        if self.slice_column is not None and self.slice_column not in self.domain.categories:
            raise ValueError(f"project {self.name}: slice column {self.slice_column!r} is not a categorical feature")


def hyperparameters_from(kind: "type[Params]", params: Mapping[str, Any]) -> "Params":
    """`kind`, a dataclass of typed hyperparameters, from a variant's params and the launchpad's overrides:
    each value takes its field's type (overrides arrive as floats); a name the model does not take is refused."""
    names = {field.name: field for field in fields(kind)}
    if unknown := sorted(set(params) - set(names)):
        raise ValueError(f"unknown hyperparameters {unknown}: {kind.__qualname__} takes {sorted(names)}")
    return kind(**{name: names[name].type(value) for name, value in params.items()})
