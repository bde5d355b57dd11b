"""A pipeline's feature steps applied to numpy columns, without pandas, as the pipeline applies them.

Everything before a pipeline's final estimator is turned into a function from the request's named
numpy columns to the float64 matrix that estimator was fitted on. Understood steps:

* a `FunctionTransformer` of feature code over raw columns (validate=False): the function is handed
  the columns behind a minimal stand-in for the DataFrame (`frame[name].to_numpy()`, the access a
  feature function over raw columns makes). Code that needs more of pandas fails on the version's
  input example, and that version is served through pandas instead;
* a dense `ColumnTransformer` of named columns, each through `StandardScaler`, `OneHotEncoder`,
  'passthrough' or 'drop': the scaler as `(x - mean_) / scale_`, in place as scikit-learn does it,
  the encoder as equality with its fitted categories (an unknown category is all zeros, as
  handle_unknown="ignore" makes it);
* no step at all: the estimator's own columns (`feature_names_in_`) side by side.

Anything else raises `UnsupportedModel`, and the model is served through pandas.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

FeatureFunction = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class UnsupportedModel(Exception):
    """The pipeline does not have the shape the fast path relies on."""


class _Column:
    __slots__ = ("_values",)

    def __init__(self, values: np.ndarray) -> None:
        self._values = values

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        return self._values if dtype is None else self._values.astype(dtype, copy=False)


class _Columns:
    """The part of a DataFrame a feature function over raw columns reads: `frame[name].to_numpy()`."""

    __slots__ = ("_columns",)

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        self._columns = columns

    def __getitem__(self, name: str) -> _Column:
        return _Column(np.asarray(self._columns[name]))


def feature_code(transformer: Any) -> FeatureFunction:
    """A `FunctionTransformer` over raw columns, called on numpy columns."""
    from sklearn.preprocessing import FunctionTransformer

    if not isinstance(transformer, FunctionTransformer) or transformer.validate or transformer.func is None:
        raise UnsupportedModel("the step is not a FunctionTransformer of feature code over raw columns")
    function, keywords = transformer.func, dict(transformer.kw_args or {})
    return lambda columns: np.asarray(function(_Columns(columns), **keywords), dtype=np.float64)


def _scaler(scaler: Any, names: Sequence[str]) -> FeatureFunction:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def scaled(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        block = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in names])
        # StandardScaler.transform: `X -= mean_; X /= scale_`, the same two roundings per value.
        if mean is not None:
            block -= mean
        if scale is not None:
            block /= scale
        return block

    return scaled


def _one_hot(encoder: Any, names: Sequence[str]) -> FeatureFunction:
    if encoder.drop is not None or getattr(encoder, "_infrequent_enabled", False):
        raise UnsupportedModel("a OneHotEncoder that drops or groups categories")
    if encoder.handle_unknown != "ignore":
        # An unknown category must fail as scikit-learn fails on it: through pandas.
        raise UnsupportedModel(f"OneHotEncoder(handle_unknown={encoder.handle_unknown!r})")
    categories = [np.asarray(known, dtype=object) for known in encoder.categories_]
    if any(value != value for known in categories for value in known):  # NaN is a category equality cannot find
        raise UnsupportedModel("a OneHotEncoder with a missing-value category")
    dtype = encoder.dtype

    def encoded(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        blocks = [np.asarray(columns[name], dtype=object)[:, np.newaxis] == known for name, known in zip(names, categories, strict=True)]
        return np.concatenate(blocks, axis=1).astype(dtype)

    return encoded


def _passthrough(names: Sequence[str]) -> FeatureFunction:
    return lambda columns: np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in names])


def column_transformer(transformer: Any) -> FeatureFunction:
    """A fitted dense `ColumnTransformer` of scalers, one-hot encoders and passthrough over named columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(transformer, ColumnTransformer):
        raise UnsupportedModel(f"a {type(transformer).__name__} step")
    if transformer.sparse_output_:
        raise UnsupportedModel("a ColumnTransformer with sparse output")
    known_names = list(getattr(transformer, "feature_names_in_", []))
    parts: list[FeatureFunction] = []
    for _, step, selected in transformer.transformers_:
        names = _column_names(selected, known_names)
        if step == "drop" or not names:
            continue
        if step == "passthrough":
            parts.append(_passthrough(names))
        elif type(step) is StandardScaler:
            parts.append(_scaler(step, names))
        elif type(step) is OneHotEncoder:
            parts.append(_one_hot(step, names))
        else:
            raise UnsupportedModel(f"a ColumnTransformer holding a {type(step).__name__}")
    if not parts:
        raise UnsupportedModel("a ColumnTransformer with no output")
    if len(parts) == 1:
        return parts[0]
    return lambda columns: np.hstack([part(columns) for part in parts])


def _column_names(selected: Any, known_names: list[str]) -> list[str]:
    """The named columns a ColumnTransformer entry selects (the remainder holds positions)."""
    if isinstance(selected, str):
        return [selected]
    values = list(np.asarray(selected).ravel()) if not isinstance(selected, slice) else None
    if values is None:
        raise UnsupportedModel("a ColumnTransformer selecting by slice")
    if not values:
        return []
    if all(isinstance(value, str) for value in values):
        return values
    if all(isinstance(value, (int, np.integer)) and not isinstance(value, bool) for value in values) and known_names:
        return [known_names[int(value)] for value in values]
    raise UnsupportedModel("a ColumnTransformer selecting columns by mask or callable")


def raw_columns(estimator: Any, features: Sequence[str]) -> FeatureFunction:
    """The estimator's own input columns, side by side as float64 (it was fitted on them directly)."""
    names = list(getattr(estimator, "feature_names_in_", features))
    missing = [name for name in names if name not in features]
    if missing:
        raise UnsupportedModel(f"the estimator reads columns a request does not hold: {missing}")
    return _passthrough(names)


def compile_feature_steps(steps: Sequence[Any], estimator: Any, features: Sequence[str]) -> FeatureFunction:
    """The pipeline's steps before `estimator`, as one function of numpy columns."""
    if not steps:
        return raw_columns(estimator, features)
    if len(steps) != 1:
        raise UnsupportedModel(f"{len(steps)} feature steps: only one is compiled")
    (step,) = steps
    from sklearn.preprocessing import FunctionTransformer

    return feature_code(step) if isinstance(step, FunctionTransformer) else column_transformer(step)
