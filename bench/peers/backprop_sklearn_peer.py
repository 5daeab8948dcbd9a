"""backprop's scikit-learn estimator, ``backprop.sklearn.MLPClassifier``, with the settings of
``sklearn_peer`` (solver adam, alpha 0, the same layers, batch size and learning rate), on the
model dtype of the run: the two estimators side by side."""

from __future__ import annotations

import backprop
from backprop.sklearn import MLPClassifier
from bench.peers.sklearn_peer import SklearnRunner


class BackpropSklearnRunner(SklearnRunner):
    estimator = MLPClassifier

    def extra_args(self) -> dict:
        return {"dtype": self.dtype}

    def info(self) -> dict:
        dtype = None if self.clf is None else str(self.clf.coefs_[0].dtype)
        return {"version": backprop.__version__, "param_dtype": dtype}
