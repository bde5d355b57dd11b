"""A classifier pipeline's class probabilities without pandas, equal to the bit to `predict_proba`.

The feature steps become numpy (`serving.feature_matrix`); the final estimator is then asked in the
cheapest way that still gives its own numbers:

* "sklearn": the estimator's own `predict_proba` on the feature matrix, for any estimator. It skips
  pandas and MLflow's schema enforcement but keeps scikit-learn's input validation and, for a forest,
  joblib calling each tree in turn;
* "linear": a linear classifier (LogisticRegression, LinearDiscriminantAnalysis) as the matrix
  product and link its `predict_proba` computes: `X @ coef_.T + intercept_` (the same BLAS call on the
  same operands), then the logistic function for two classes or softmax for more;
* "compiled-trees": a random forest or gradient boosting as one compiled walk of all its trees
  (`serving.tree_ensembles`); for boosting only up to its `largest_batch` rows, beyond which
  scikit-learn's own compiled loop over stages costs less per row and is used.

`benchmarks/predictor_paths.py` measures each path against pandas and against Treelite/tl2cgen.
"""

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from serving.feature_matrix import UnsupportedModel, compile_feature_steps
from serving.tree_ensembles import compiled_tree_ensemble

logger = logging.getLogger("serving.fast_classify")
SKLEARN = "sklearn"
LINEAR = "linear"
COMPILED_TREES = "compiled-trees"

Probabilities = Callable[[np.ndarray], np.ndarray]


class LinearProbabilities:
    """`predict_proba` of LogisticRegression or LinearDiscriminantAnalysis, from the feature matrix."""

    SUPPORTED = ("LogisticRegression", "LinearDiscriminantAnalysis")

    def __init__(self, estimator: Any) -> None:
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        if type(estimator).__name__ not in self.SUPPORTED:
            raise UnsupportedModel(f"{type(estimator).__name__} is not a linear classifier this path knows")
        # The transposed view, as LinearClassifierMixin.decision_function hands it to BLAS.
        self._coef_t = estimator.coef_.T if estimator.coef_.ndim == 2 else estimator.coef_
        self._intercept = estimator.intercept_
        self._binary = len(estimator.classes_) <= 2
        self._expit, self._softmax = expit, softmax

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        scores = matrix @ self._coef_t + self._intercept
        if self._binary:
            positive = self._expit(scores.reshape(-1))
            return np.stack([1 - positive, positive], axis=1)
        return self._softmax(scores, copy=False)


class FastClassifier:
    """`pipeline.predict_proba(frame)` for a classifier pipeline, from numpy columns."""

    def __init__(self, pipeline: Any, features: Sequence[str]) -> None:
        steps = list(getattr(pipeline, "named_steps", {}).values())
        if not steps:
            raise UnsupportedModel("not a scikit-learn Pipeline")
        *feature_steps, estimator = steps
        if not hasattr(estimator, "predict_proba"):
            raise UnsupportedModel(f"{type(estimator).__name__} gives no class probabilities")
        self._feature_matrix = compile_feature_steps(feature_steps, estimator, features)
        self._estimator = estimator
        self._fitted_on_names = hasattr(estimator, "feature_names_in_")
        self._own: tuple[str, Probabilities] | None = None
        self._own_largest_batch: int | None = None  # None: the own path at every batch size
        try:
            self._own = (LINEAR, LinearProbabilities(estimator))
        except UnsupportedModel:
            try:
                ensemble = compiled_tree_ensemble(estimator)
                self._own, self._own_largest_batch = (COMPILED_TREES, ensemble.predict_proba), ensemble.largest_batch
            except UnsupportedModel:
                pass
            except (AttributeError, ImportError, KeyError, TypeError, ValueError) as error:
                # scikit-learn's tree internals moved: still pandas-free through its public predict_proba.
                logger.warning("serving without compiled trees (%s: %s)", type(error).__name__, error)

    @property
    def name(self) -> str:
        return self._own[0] if self._own is not None else SKLEARN

    def predict_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        matrix = self._feature_matrix(columns)
        if self._own is not None and (self._own_largest_batch is None or matrix.shape[0] <= self._own_largest_batch):
            return self._own[1](matrix)
        return self._sklearn(matrix)

    def predict_proba_every_path(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each route a prediction can take, for the smoke test to hold against pyfunc."""
        matrix = self._feature_matrix(columns)
        return {name: np.asarray(probabilities(matrix), dtype=np.float64) for name, probabilities in self.paths().items()}

    def paths(self) -> dict[str, Probabilities]:
        """Each route by name, from the feature matrix (`feature_matrix`) to class probabilities."""
        return {SKLEARN: self._sklearn} | dict([self._own] if self._own is not None else [])

    def feature_matrix(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._feature_matrix(columns)

    def _sklearn(self, matrix: np.ndarray) -> np.ndarray:
        if not self._fitted_on_names:
            return np.asarray(self._estimator.predict_proba(matrix), dtype=np.float64)
        # Fitted on a DataFrame, the estimator warns at an array: the columns are in its order by construction.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
            return np.asarray(self._estimator.predict_proba(matrix), dtype=np.float64)
