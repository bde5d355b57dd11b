"""A scikit-learn tree ensemble's class probabilities in one compiled call, equal to the bit to its own.

RandomForestClassifier.predict_proba asks joblib to call every tree's `predict_proba` in turn (~15 us
a tree, ~1.5-3 ms for a forest of 100-200 trees however few the rows); GradientBoostingClassifier
walks its trees in one compiled loop but validates its input first (~60 us). Here every tree is joined
under a small dispatch tree that routes on a "tree id" column (as `serving.fast_predict` does for
histogram boosting), so scikit-learn's own compiled `Tree.apply` finds the leaf of every (row, tree)
pair in one call. The (tree, row) input matrix is a strided view of a small column-major float32
buffer C = [tree ids | X]: virtual row t*n + r reads C[r, t + j] at column j, and each tree's split
features are renumbered to f + T - t, so every tree reads X[r, f] and the dispatch nodes read the tree
id t (exact in float32 up to 2**24 trees).

The leaf values are then combined exactly as scikit-learn combines them: per-tree class fractions
as `DecisionTreeClassifier.predict_proba` gives them, added in tree order from zero and divided by
the number of trees (forest); `learning_rate * leaf value` added in stage order onto the constant
initial raw prediction, then the loss's own inverse link (boosting). `np.cumsum` adds strictly left to
right, so the sums round as scikit-learn's `+=` loops round them.
"""

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from serving.feature_matrix import UnsupportedModel



def dispatch_nodes(n_trees: int) -> list[tuple[float, int, int]]:
    """A balanced tree over the tree ids that sends a row to every tree of an ensemble in one walk:
    (threshold on the tree id, left, right) per node, a child >= 0 another dispatch node and < 0 the
    tree -1 - child."""
    dispatch: list[tuple[float, int, int]] = []

    def route(first: int, last: int) -> int:
        if first == last:
            return -1 - first
        middle = (first + last) // 2
        index = len(dispatch)
        dispatch.append((0.0, 0, 0))
        dispatch[index] = (middle + 0.5, route(first, middle), route(middle + 1, last))
        return index

    route(0, n_trees - 1)
    return dispatch

class JoinedTrees:
    """Fitted scikit-learn `Tree`s behind one dispatch tree: the leaf each row reaches in each tree."""

    def __init__(self, trees: list[Any], n_features: int) -> None:
        from sklearn.tree._tree import NODE_DTYPE, TREE_LEAF, Tree

        if not trees:
            raise UnsupportedModel("an ensemble without trees")
        self.n_trees = len(trees)
        self.n_features = n_features
        self._tree_ids = np.arange(self.n_trees, dtype=np.float32)

        dispatch = dispatch_nodes(self.n_trees)
        sizes = np.array([tree.node_count for tree in trees])
        # Where each tree's root lands in the joined node array; leaf ids are offsets from there.
        self.tree_starts = len(dispatch) + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        nodes = np.zeros(len(dispatch) + int(sizes.sum()), dtype=NODE_DTYPE)
        for index, (threshold, left, right) in enumerate(dispatch):
            nodes[index]["feature"] = 0  # column 0 of every virtual row holds its tree id
            nodes[index]["threshold"] = threshold
            nodes[index]["left_child"] = left if left >= 0 else self.tree_starts[-1 - left]
            nodes[index]["right_child"] = right if right >= 0 else self.tree_starts[-1 - right]
        for tree_id, (tree, start) in enumerate(zip(trees, self.tree_starts, strict=True)):
            block = tree.__getstate__()["nodes"].astype(NODE_DTYPE, copy=True)
            inner = block["left_child"] != TREE_LEAF
            block["left_child"][inner] += start
            block["right_child"][inner] += start
            block["feature"][inner] += self.n_trees - tree_id
            nodes[start : start + len(block)] = block
        # Every read stays inside C: dispatch reads C[r, t], tree t reads C[r, f + T] with f < n_features.
        inner = nodes["left_child"][len(dispatch) :] != TREE_LEAF
        split_features = nodes["feature"][len(dispatch) :][inner] - np.repeat(self.n_trees - np.arange(self.n_trees), sizes)[inner]
        if split_features.size and not (split_features.min() >= 0 and split_features.max() < n_features):
            raise UnsupportedModel("split features outside the model's input width")
        # Only `apply` is called: the joined tree's own values are never read.
        joined = Tree(n_features + self.n_trees, np.array([1], dtype=np.intp), 1)
        joined.__setstate__(
            {"max_depth": 0, "node_count": len(nodes), "nodes": nodes, "values": np.zeros((len(nodes), 1, 1))}
        )
        self._joined = joined

    def leaves(self, matrix: np.ndarray) -> np.ndarray:
        """rows x trees: the leaf each row reaches, as an index into the concatenation of the trees' nodes."""
        if matrix.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {matrix.shape[1]}")
        rows = matrix.shape[0]
        buffer = np.empty((rows, self.n_trees + self.n_features), dtype=np.float32, order="F")
        buffer[:, : self.n_trees] = self._tree_ids
        buffer[:, self.n_trees :] = matrix  # float64 -> float32, as scikit-learn's trees read their input
        # Tree-major virtual rows (t * rows + r): consecutive evaluations walk the same tree, in cache.
        routed = as_strided(
            buffer, shape=(self.n_trees * rows, self.n_trees + self.n_features), strides=(4, 4 * rows), writeable=False
        )
        nodes = self._joined.apply(routed)
        return nodes.reshape(self.n_trees, rows).T - (self.tree_starts[0])


class CompiledForestClassifier:
    """`RandomForestClassifier.predict_proba` (or ExtraTrees) of a single-output forest, in one call."""

    # joblib's call per tree costs more than the joined walk at every batch size served (measured to 2,000 rows).
    largest_batch: int | None = None

    def __init__(self, forest: Any) -> None:
        if getattr(forest, "n_outputs_", 1) != 1:
            raise UnsupportedModel("multi-output forests are not compiled")
        trees = [estimator.tree_ for estimator in forest.estimators_]
        self._trees = JoinedTrees(trees, int(forest.n_features_in_))
        n_classes = int(forest.n_classes_)
        # DecisionTreeClassifier.predict_proba is the leaf's value: a classifier's tree holds class fractions.
        self._leaf_probabilities = np.concatenate([tree.value[:, 0, :n_classes] for tree in trees])  # (all nodes) x classes
        self.n_trees = len(trees)

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        leaves = self._trees.leaves(matrix)  # rows x trees
        rows = leaves.shape[0]
        terms = np.empty((self.n_trees + 1, rows, self._leaf_probabilities.shape[1]))
        terms[0] = 0.0
        terms[1:] = self._leaf_probabilities[leaves.T]  # trees x rows x classes
        # `all_proba += tree proba` tree after tree from zeros, then `/= n_estimators`.
        return np.cumsum(terms, axis=0)[-1] / self.n_trees


class CompiledGradientBoostingClassifier:
    """`GradientBoostingClassifier.predict_proba` in one call, for the default (prior) or zero init."""

    # Beyond this many rows scikit-learn's own compiled loop over stages costs less than the joined walk.
    largest_batch: int | None = 128

    def __init__(self, boosting: Any) -> None:
        from sklearn.dummy import DummyClassifier

        init = boosting.init_
        if not (init == "zero" or (isinstance(init, DummyClassifier) and init.strategy == "prior")):
            raise UnsupportedModel(f"an init estimator ({type(init).__name__}) whose raw predictions vary by row")
        stages, per_stage = boosting.estimators_.shape
        self._outputs = per_stage
        self._stages = stages
        n_features = int(boosting.n_features_in_)
        # Stage-major as predict_stages walks them: (stage 0, output 0), (stage 0, output 1), ...
        trees = [boosting.estimators_[stage, output].tree_ for stage in range(stages) for output in range(per_stage)]
        self._trees = JoinedTrees(trees, n_features)
        # The value predict_stages adds: `scale * value[node]`, the product rounded as it rounds it.
        self._leaf_terms = np.concatenate([boosting.learning_rate * tree.value[:, 0, 0] for tree in trees])
        # The prior's raw prediction is the same for every row: computed once, by scikit-learn itself.
        self._initial = boosting._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0]
        self._loss = boosting._loss

    def raw_predictions(self, matrix: np.ndarray) -> np.ndarray:
        leaves = self._trees.leaves(matrix)  # rows x (stages * outputs)
        rows = leaves.shape[0]
        terms = np.empty((self._stages + 1, rows, self._outputs))
        terms[0] = self._initial
        terms[1:] = self._leaf_terms[leaves].reshape(rows, self._stages, self._outputs).transpose(1, 0, 2)
        return np.cumsum(terms, axis=0)[-1]

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        raw = self.raw_predictions(matrix)
        # GradientBoostingClassifier.decision_function ravels a single output before the loss reads it.
        return self._loss.predict_proba(raw.ravel() if raw.shape[1] == 1 else raw)


def compiled_tree_ensemble(estimator: Any) -> CompiledForestClassifier | CompiledGradientBoostingClassifier:
    kind = type(estimator).__name__
    if kind in ("RandomForestClassifier", "ExtraTreesClassifier"):
        return CompiledForestClassifier(estimator)
    if kind == "GradientBoostingClassifier":
        return CompiledGradientBoostingClassifier(estimator)
    raise UnsupportedModel(f"{kind} is not a tree ensemble this module compiles")
