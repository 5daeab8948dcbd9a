"""backprop's scikit-learn estimator, ``backprop.sklearn.MLPClassifier``, with the settings of
``sklearn_peer`` (solver adam, alpha 0, the same layers, batch size and learning rate), on the
model dtype of the run: the two estimators side by side."""

from __future__ import annotations

import warnings

from sklearn.exceptions import ConvergenceWarning

import backprop
from backprop.sklearn import MLPClassifier
from bench.peers.sklearn_peer import SklearnRunner


class BackpropSklearnRunner(SklearnRunner):
    def run(self, epochs: int) -> None:
        self.clf = MLPClassifier(
            hidden_layer_sizes=self.wl.hidden,
            activation="relu",
            solver="adam",
            alpha=0.0,
            batch_size=self.wl.batch_size,
            learning_rate_init=1e-3,
            max_iter=epochs,
            shuffle=True,
            random_state=0,
            n_iter_no_change=epochs + 1,
            dtype=self.dtype,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(self.X, self.y)

    def info(self) -> dict:
        dtype = None if self.clf is None else str(self.clf.coefs_[0].dtype)
        return {"version": backprop.__version__, "param_dtype": dtype}
