"""A loaded model's predictions for rows held as numpy columns, by whichever path is fastest for it.

Every pipeline is served through pandas, exactly as pyfunc feeds it (a DataFrame of the signature's
columns, numbers as float64, categories as strings). A regressor of the shape `serving.fast_predict`
compiles is also served without pandas. A classifier answers with its class probabilities
(`predict_proba`) and the label of the most probable class, as its `predict` does.

`predict_every_path` gives every path's answer, for the model holder to hold each one, to the bit,
against pyfunc before a version is served.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.fast_predict import SMALL_BATCH_ROWS, FastPredictor, UnsupportedModel
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
        if not classifier:
            try:
                self._fast = FastPredictor(pipeline)
            except UnsupportedModel as reason:
                logger.info("serving through pandas: %s", reason)

    @property
    def name(self) -> str:
        return self._fast.name if self._fast is not None else PANDAS

    def predict(self, columns: Mapping[str, np.ndarray]) -> Predictions:
        if self._fast is not None:
            return Predictions(self._fast.predict(columns))
        return self._through_pandas(columns)

    def predict_every_path(self, columns: Mapping[str, np.ndarray]) -> dict[str, Predictions]:
        paths = {PANDAS: self._through_pandas(columns)}  # a model that fails here fails its smoke test
        if self._fast is not None:
            try:
                paths |= {name: Predictions(values) for name, values in self._fast.predict_every_path(columns).items()}
            except Exception as error:  # feature code that needs more of pandas than the fast path offers
                self.without_fast_path(f"{type(error).__name__}: {error}")
        return paths

    def without_fast_path(self, reason: str) -> None:
        """Serve through pandas only: the fast path could not run this model's feature code."""
        if self._fast is not None:
            logger.warning("serving through pandas, the fast path failed: %s", reason)
            self._fast = None

    def _through_pandas(self, columns: Mapping[str, np.ndarray]) -> Predictions:
        frame = self._layout.frame_of(columns)
        if not self.is_classifier:
            return Predictions(np.asarray(self._pipeline.predict(frame), dtype=np.float64))
        probabilities = np.asarray(self._pipeline.predict_proba(frame), dtype=np.float64)
        return Predictions(self._labels[np.argmax(probabilities, axis=1)], probabilities)


__all__ = ["PANDAS", "SMALL_BATCH_ROWS", "Predictions", "ServedPredictor"]
