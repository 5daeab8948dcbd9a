"""Metrics, accumulated on the device and read back once per epoch.

A metric gives per-batch *sums* as 0-d arrays on the device (``stats``); the model adds them up
over the epoch without looking at them, and turns the totals into a number on the host once
(``result``). That keeps ``fit`` free of a host synchronisation per step.

Labels reach a metric in the layout the loss prepared: ``(n, k)`` floats (one-hot rows for
categorical and sparse losses).

Examples
--------
>>> import array_api_compat.numpy as xp
>>> m = BinaryAccuracy()
>>> y, p = xp.asarray([[1.0], [0.0]]), xp.asarray([[0.8], [0.7]])
>>> m.result([float(s) for s in m.stats(y, p, xp)], n=2, k=1)
0.5
"""

from __future__ import annotations

import math
from typing import Any

from ._checks import is_real
from .registry import build

Array = Any


class Metric:
    """Base class: ``stats`` (device sums per batch) and ``result`` (host number per epoch)."""

    name = "metric"
    n_stats = 1  # how many sums ``stats`` returns

    def stats(self, y: Array, y_hat: Array, xp: Any) -> list[Array]:
        """Sums over the batch, as 0-d arrays on the device.

        Parameters
        ----------
        y : array, shape (n, k)
            Targets, as the loss prepares them.
        y_hat : array, shape (n, k)
            Predictions.
        xp : namespace
            The Array API namespace of the arrays.

        Returns
        -------
        list of arrays, shape () each
            ``n_stats`` sums.
        """
        raise NotImplementedError

    def result(self, totals: list[float], n: int, k: int) -> float:
        """The metric from the epoch's summed ``stats``, ``n`` samples of ``k`` outputs.

        Parameters
        ----------
        totals : list of float
            The ``stats`` summed over the epoch's batches.
        n : int
            Number of samples.
        k : int
            Number of outputs per sample.

        Returns
        -------
        float
        """
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The name and settings that rebuild this metric with :func:`get` (saved in files).

        Returns
        -------
        dict
            ``{"name": ..., **settings}``.
        """
        return {"name": self.name}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({settings})"


class BinaryAccuracy(Metric):
    """Fraction of outputs on the right side of ``threshold`` (0.5).

    Parameters
    ----------
    threshold : float, default 0.5
        Outputs above it count as predicting 1.
    """

    name = "binary_accuracy"

    def __init__(self, threshold: float = 0.5):
        if not is_real(threshold) or not math.isfinite(threshold):
            raise ValueError(
                f"threshold must be a finite number, received threshold={threshold!r}."
            )
        self.threshold = float(threshold)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}

    def stats(self, y, y_hat, xp):
        hit = (y_hat > self.threshold) == (y > 0.5)
        return [xp.sum(xp.astype(hit, y_hat.dtype))]

    def result(self, totals, n, k):
        return totals[0] / (n * k)


class CategoricalAccuracy(Metric):
    """Fraction of rows whose largest output is the labelled class."""

    name = "categorical_accuracy"

    def stats(self, y, y_hat, xp):
        hit = xp.argmax(y_hat, axis=-1) == xp.argmax(y, axis=-1)
        return [xp.sum(xp.astype(hit, y_hat.dtype))]

    def result(self, totals, n, k):
        return totals[0] / n


class Precision(Metric):
    """TP / (TP + FP) for outputs thresholded at 0.5 (0 when nothing is predicted positive)."""

    name = "precision"
    n_stats = 2

    def stats(self, y, y_hat, xp):
        pred = xp.astype(y_hat > 0.5, y_hat.dtype)
        return [xp.sum(pred * y), xp.sum(pred)]

    def result(self, totals, n, k):
        return totals[0] / totals[1] if totals[1] else 0.0


class Recall(Metric):
    """TP / (TP + FN) for outputs thresholded at 0.5 (0 when there is no positive label)."""

    name = "recall"
    n_stats = 2

    def stats(self, y, y_hat, xp):
        pred = xp.astype(y_hat > 0.5, y_hat.dtype)
        return [xp.sum(pred * y), xp.sum(y)]

    def result(self, totals, n, k):
        return totals[0] / totals[1] if totals[1] else 0.0


class MeanAbsoluteError(Metric):
    """mean |y_hat - y|."""

    name = "mae"

    def stats(self, y, y_hat, xp):
        return [xp.sum(xp.abs(y_hat - y))]

    def result(self, totals, n, k):
        return totals[0] / (n * k)


class MeanSquaredError(Metric):
    """mean (y_hat - y)^2."""

    name = "mse"

    def stats(self, y, y_hat, xp):
        d = y_hat - y
        return [xp.sum(d * d)]

    def result(self, totals, n, k):
        return totals[0] / (n * k)


_REGISTRY: dict[str, type[Metric]] = {
    cls.name: cls
    for cls in (
        BinaryAccuracy,
        CategoricalAccuracy,
        Precision,
        Recall,
        MeanAbsoluteError,
        MeanSquaredError,
    )
}
_ALIASES = {
    "sparse_categorical_accuracy": "categorical_accuracy",
    "mean_absolute_error": "mae",
    "mean_squared_error": "mse",
}


def names() -> list[str]:
    """The names :func:`get` accepts.

    Returns
    -------
    list of str
        The registered metric names and aliases, sorted.
    """
    return sorted([*_REGISTRY, *_ALIASES, "accuracy", "acc"])


def get(identifier: str | Metric, loss_kind: str = "binary", n_outputs: int = 1) -> Metric:
    """A metric from a name or an instance.

    ``"accuracy"`` (or ``"acc"``) is picked from the loss, as Keras does: binary accuracy for
    binary cross-entropy (and single-output regression), categorical accuracy otherwise.

    Parameters
    ----------
    identifier : str or Metric
        A name from :func:`names` or an instance (returned as is).
    loss_kind : str, default "binary"
        The loss's ``kind``, which resolves ``"accuracy"``.
    n_outputs : int, default 1
        Number of model outputs, which resolves ``"accuracy"`` for regression.

    Returns
    -------
    Metric
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):  # a saved config: {"name": ..., **settings}
        config = dict(identifier)
        name = config.get("name")
        key = _ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name
        return build("metric", {**config, "name": key}, _REGISTRY)
    if not isinstance(identifier, str):
        raise TypeError(
            f"metrics must be names such as 'accuracy' or Metric instances; received "
            f"{type(identifier).__name__}."
        )
    key = identifier.lower()
    if key in ("accuracy", "acc"):
        binary = loss_kind == "binary" or (loss_kind == "regression" and n_outputs == 1)
        return BinaryAccuracy() if binary else CategoricalAccuracy()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"Unknown metric {identifier!r}. Expected one of {names()}.")
    return _REGISTRY[key]()
