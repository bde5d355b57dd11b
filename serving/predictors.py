"""A loaded model's predictions for rows held as numpy columns, by whichever path is fastest for it.

Every pipeline can be served through pandas, exactly as pyfunc feeds it (a DataFrame of the
signature's columns, numbers as float64, categories as strings). Pipelines whose steps the fast paths
understand are served without pandas: a regressor of the shape `serving.fast_predict` compiles, and a
classifier through `serving.fast_classify` (feature steps as numpy, then the estimator's own
`predict_proba` on the matrix, a linear model as matrix operations or a tree ensemble as one compiled
walk). A classifier answers with its class probabilities (`predict_proba`) and the label of the most
probable class, as its `predict` does.

`predict_every_path` gives every path's answer, for the model holder to hold each one, to the bit,
against pyfunc before a version is served. A classifier's fast paths must also give pandas'
probabilities to the bit on those rows, or the version is served through pandas.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.fast_classify import FastClassifier
from serving.fast_predict import SMALL_BATCH_ROWS, FastPredictor
from serving.feature_matrix import UnsupportedModel
from serving.served_project import RowLayout

logger = logging.getLogger("serving.predictors")
PANDAS = "pandas"


@dataclass(frozen=True, slots=True)
class Predictions:
    values: np.ndarray  # float64 for a regressor, labels (str) for a classifier
    probabilities: np.ndarray | None = None  # rows x classes, for a classifier


class ServedPredictor:
    def __init__(self, pipeline: Any, layout: RowLayout, *, classifier: bool) -> None:
        self._pipeline = pipeline
        self._layout = layout
        self.is_classifier = classifier
        self.classes: tuple[str, ...] = tuple(str(label) for label in pipeline.classes_) if classifier else ()
        self._labels = np.asarray(self.classes, dtype=object)
        self._fast: FastPredictor | None = None
        self._fast_classifier: FastClassifier | None = None
        try:
            if classifier:
                self._fast_classifier = FastClassifier(pipeline, layout.features)
            else:
                self._fast = FastPredictor(pipeline)
        except UnsupportedModel as reason:
            logger.info("serving through pandas: %s", reason)

    @property
    def name(self) -> str:
        if self._fast_classifier is not None:
            return self._fast_classifier.name
        return self._fast.name if self._fast is not None else PANDAS

    def predict(self, columns: Mapping[str, np.ndarray]) -> Predictions:
        if self._fast_classifier is not None:
            return self._classified(self._fast_classifier.predict_proba(columns))
        if self._fast is not None:
            return Predictions(self._fast.predict(columns))
        return self._through_pandas(columns)

    def predict_every_path(self, columns: Mapping[str, np.ndarray]) -> dict[str, Predictions]:
        paths = {PANDAS: self._through_pandas(columns)}  # a model that fails here fails its smoke test
        try:
            if self._fast is not None:
                paths |= {name: Predictions(values) for name, values in self._fast.predict_every_path(columns).items()}
            if self._fast_classifier is not None:
                paths |= self._classifier_paths(columns, paths[PANDAS])
        except Exception as error:  # feature code that needs more of pandas than the fast path offers
            self.without_fast_path(f"{type(error).__name__}: {error}")
        return paths

    def without_fast_path(self, reason: str) -> None:
        """Serve through pandas only: the fast path could not run this model's feature code."""
        if self._fast is not None or self._fast_classifier is not None:
            logger.warning("serving through pandas, the fast path failed: %s", reason)
            self._fast = self._fast_classifier = None

    def _classifier_paths(self, columns: Mapping[str, np.ndarray], through_pandas: Predictions) -> dict[str, Predictions]:
        assert self._fast_classifier is not None
        paths = {name: self._classified(values) for name, values in self._fast_classifier.predict_proba_every_path(columns).items()}
        # The smoke test compares labels; a probability off by one rounding would pass it unseen.
        for name, predictions in paths.items():
            if not np.array_equal(predictions.probabilities, through_pandas.probabilities):
                raise ValueError(f"the {name} path's class probabilities differ from pandas'")
        return paths

    def _classified(self, probabilities: np.ndarray) -> Predictions:
        return Predictions(self._labels[np.argmax(probabilities, axis=1)], probabilities)

    def _through_pandas(self, columns: Mapping[str, np.ndarray]) -> Predictions:
        frame = self._layout.frame_of(columns)
        if not self.is_classifier:
            return Predictions(np.asarray(self._pipeline.predict(frame), dtype=np.float64))
        return self._classified(np.asarray(self._pipeline.predict_proba(frame), dtype=np.float64))


__all__ = ["PANDAS", "SMALL_BATCH_ROWS", "Predictions", "ServedPredictor"]
