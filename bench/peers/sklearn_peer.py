"""scikit-learn ``MLPClassifier``: solver adam, the same hidden layers, batch size and lr.

``alpha=0`` (no L2 penalty, as the others), ``learning_rate_init=1e-3``, Adam's defaults
otherwise (betas 0.9/0.999, eps 1e-8), ``shuffle=True``. One timed sample is one ``fit`` with
``max_iter=epochs``; ``n_iter_no_change`` is set above ``max_iter`` so that no sample stops
early, and the ConvergenceWarning that ``max_iter`` raises is silenced. scikit-learn keeps
float32 input in float32 (its weights take ``X.dtype``); ``info()["param_dtype"]`` records it.
For a single output unit (``seed``) it uses a logistic output and log-loss, for several a
softmax: the same networks as the others.
"""

from __future__ import annotations

import warnings

import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from bench.workloads import Workload


class SklearnRunner:
    estimator = MLPClassifier

    def extra_args(self) -> dict:
        return {}

    def __init__(self, wl: Workload, dtype: str, threads: int):
        self.wl, self.dtype = wl, dtype
        self.X, self.y = wl.data(dtype)
        self.clf = None

    def prepare(self) -> None:
        self.clf = None  # fit() builds a fresh model

    def run(self, epochs: int) -> None:
        self.clf = self.estimator(
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
            **self.extra_args(),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(self.X, self.y)

    def info(self) -> dict:
        dtype = None if self.clf is None else str(self.clf.coefs_[0].dtype)
        return {"version": sklearn.__version__, "param_dtype": dtype}
