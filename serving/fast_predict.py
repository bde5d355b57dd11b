"""A regressor's predictions without pandas and without per-tree overhead, equal to the bit to pyfunc's.

It applies to a pipeline of two steps: the project's feature code (a `FunctionTransformer` over the
raw columns, validate=False) and a HistGradientBoostingRegressor. Where the time went for one row
through `pyfunc.predict(DataFrame)` (200 trees): building the DataFrame and MLflow's schema
enforcement, then scikit-learn calling a compiled routine once per tree (~6-9 us each, ~1.2-1.8 ms per
call however few the rows). So:

* features: the pipeline's own feature function on the numpy columns (`serving.feature_matrix`). A
  function that needs more of pandas fails on the version's input example, and the app serves that
  version through pandas instead;
* trees: every tree is joined under a small dispatch tree that routes on a "tree id" column, so
  scikit-learn's own compiled tree walker evaluates all (row, tree) pairs in one call (~30 us for one
  row, ~13 us per further row). The (tree, row) input matrix is a strided view, not a copy: column
  j of virtual row t*n + r reads C[r, t + j] of a small column-major buffer C = [tree ids | X], and
  each tree's split features are renumbered to f + T - t, so that every tree reads X[r, f] while the
  dispatch nodes read column 0, which is the tree id t. (A materialised copy is 54 KB per row and its
  memory traffic cost more than the walk.) The leaf values are then accumulated left to right from
  the baseline, exactly as `HistGradientBoostingRegressor._raw_predict` adds them, so sums round
  identically.

For batches beyond SMALL_BATCH_ROWS scikit-learn's per-tree loop is faster and is used instead.
Models this compilation does not understand (categorical splits, non-identity link, several trees per
iteration) use `regressor.predict`; every path is compared with pyfunc before a version is served.
"""

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from serving.feature_matrix import UnsupportedModel, feature_code
from serving.tree_ensembles import dispatch_nodes

logger = logging.getLogger("serving.fast_predict")

# Beyond this many rows the dispatch levels cost more than scikit-learn's per-tree call overhead.
SMALL_BATCH_ROWS = 128


class CompiledForest:
    """All trees of a fitted HistGradientBoostingRegressor behind one dispatch tree."""

    def __init__(self, regressor: Any) -> None:
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

        if getattr(regressor, "n_trees_per_iteration_", None) != 1:
            raise UnsupportedModel("only single-output regressors compile")
        if type(regressor._loss.link).__name__ != "IdentityLink":
            raise UnsupportedModel(f"link {type(regressor._loss.link).__name__} is not the identity")
        if getattr(regressor, "_preprocessor", None) is not None:
            raise UnsupportedModel("categorical features are not compiled")
        trees = [predictor for iteration in regressor._predictors for predictor in iteration]
        if not trees or any(tree.nodes["is_categorical"].any() for tree in trees):
            raise UnsupportedModel("categorical splits are not compiled")

        self.n_features = int(regressor.n_features_in_)
        self.n_trees = len(trees)
        self.baseline = float(np.asarray(regressor._baseline_prediction).ravel()[0])
        self._tree_ids = np.arange(self.n_trees, dtype=np.float64)
        self._known_cat_bitsets, self._f_idx_map = regressor._bin_mapper.make_known_categories_bitsets()

        dispatch = dispatch_nodes(self.n_trees)
        sizes = np.array([len(tree.nodes) for tree in trees])
        tree_starts = len(dispatch) + np.concatenate([[0], np.cumsum(sizes)[:-1]])

        nodes = np.zeros(len(dispatch) + int(sizes.sum()), dtype=PREDICTOR_RECORD_DTYPE)
        for index, (threshold, left, right) in enumerate(dispatch):
            nodes[index]["feature_idx"] = 0  # column 0 of every virtual row holds its tree id
            nodes[index]["num_threshold"] = threshold
            nodes[index]["left"] = left if left >= 0 else tree_starts[-1 - left]
            nodes[index]["right"] = right if right >= 0 else tree_starts[-1 - right]
        for tree_id, (tree, start) in enumerate(zip(trees, tree_starts, strict=True)):
            block = tree.nodes.astype(PREDICTOR_RECORD_DTYPE)
            inner = ~block["is_leaf"].astype(bool)
            block["left"][inner] += np.uint32(start)
            block["right"][inner] += np.uint32(start)
            block["feature_idx"][inner] += self.n_trees - tree_id
            nodes[start : start + len(block)] = block
        # Every read stays inside C: dispatch reads C[r, t], tree t reads C[r, f + T] with f < n_features.
        split_features = nodes["feature_idx"][len(dispatch) :][~nodes["is_leaf"][len(dispatch) :].astype(bool)]
        if split_features.size and not (split_features.min() >= 1 and split_features.max() < self.n_trees + self.n_features):
            raise UnsupportedModel("split features outside the model's input width")
        self._walker = TreePredictor(nodes, np.zeros((0, 8), np.uint32), np.zeros((0, 8), np.uint32))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {matrix.shape[1]}")
        rows = matrix.shape[0]
        buffer = np.empty((rows, self.n_trees + self.n_features), order="F")
        buffer[:, : self.n_trees] = self._tree_ids
        buffer[:, self.n_trees :] = matrix
        # Tree-major virtual rows (t * rows + r): consecutive evaluations walk the same tree, in cache.
        routed = as_strided(
            buffer, shape=(self.n_trees * rows, self.n_trees + self.n_features), strides=(8, 8 * rows), writeable=False
        )
        leaves = self._walker.predict(routed, self._known_cat_bitsets, self._f_idx_map, 1)
        terms = np.empty((rows, self.n_trees + 1))
        terms[:, 0] = self.baseline
        terms[:, 1:] = leaves.reshape(self.n_trees, rows).T
        # cumsum adds strictly left to right, like `raw_predictions += tree.predict(X)` tree after tree.
        return np.cumsum(terms, axis=1)[:, -1]


class FastPredictor:
    """`pipeline.predict(frame)` for a pipeline of feature code and gradient-boosted trees, from numpy columns."""

    def __init__(self, pipeline: Any) -> None:
        steps = list(getattr(pipeline, "named_steps", {}).values())
        if len(steps) != 2:
            raise UnsupportedModel("expected a Pipeline of two steps: feature code, then a regressor")
        features, regressor = steps
        if type(regressor).__name__ != "HistGradientBoostingRegressor":
            raise UnsupportedModel(f"the regressor is a {type(regressor).__name__}, not a HistGradientBoostingRegressor")
        self._feature_matrix = feature_code(features)
        self._regressor = regressor
        try:
            self._forest: CompiledForest | None = CompiledForest(regressor)
        except UnsupportedModel:
            self._forest = None
        except (AttributeError, ImportError, TypeError, ValueError) as error:
            # scikit-learn internals moved: still correct through its public predict, only slower.
            logger.warning("serving without the compiled forest (%s: %s)", type(error).__name__, error)
            self._forest = None

    @property
    def name(self) -> str:
        return "compiled-forest" if self._forest is not None else "sklearn"

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        matrix = self._feature_matrix(columns)
        if self._forest is not None and matrix.shape[0] <= SMALL_BATCH_ROWS:
            return self._forest.predict(matrix)
        return np.asarray(self._regressor.predict(matrix), dtype=np.float64)

    def predict_every_path(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each route a prediction can take, for the smoke test to hold against pyfunc."""
        matrix = self._feature_matrix(columns)
        paths = {"sklearn": np.asarray(self._regressor.predict(matrix), dtype=np.float64)}
        if self._forest is not None:
            paths["compiled-forest"] = self._forest.predict(matrix)
        return paths
