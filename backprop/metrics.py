"""Metrics, accumulated on the device and read back once per epoch.

A metric gives per-batch *sums* as 0-d arrays on the device (``stats``); the model adds them up
over the epoch without looking at them, and turns the totals into a number on the host once
(``result``). That keeps ``fit`` free of a host synchronisation per step, and makes every
metric exact under data parallelism: the ranks' sums add up to the sums of the whole data.

Labels reach a metric in the layout the loss prepared: ``(n, k)`` floats (one-hot rows for
categorical and sparse losses).

Weighted (``compile(weighted_metrics=...)``), a metric gets the batch's sample weights: its sums
become weighted sums, as Keras weighs them (a row's weight multiplies each of its outputs'
counts and errors), and a mean divides by the total weight instead of the number of rows.

The names, arguments, defaults and semantics are Keras 3's. ``AUC`` is Keras's thresholded
approximation: its sums are the confusion counts at each of ``num_thresholds`` thresholds.

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

from ._checks import as_bool, is_int, is_real
from .registry import build

Array = Any

_EPSILON = 1e-7  # Keras's backend.epsilon(): AUC's end thresholds lie this far outside [0, 1]
_NEG_INF = -1e10  # Keras's metrics_utils.NEG_INF: the threshold of top_k's predictions


class Metric:
    """Base class: ``stats`` (device sums per batch) and ``result`` (host number per epoch).

    Parameters
    ----------
    name : str, optional
        The name the logs use (``"val_" + name`` for validation); by default the class's
        registered name, e.g. ``"auc"``. Two metrics of one model need two names.

    Attributes
    ----------
    direction : {"up", "down"} or None
        Whether larger ("up") or smaller ("down") values are better, as Keras 3's metrics
        tell it: callbacks with ``mode="auto"`` follow it. None (a subclass that does not
        set it) makes them ask for ``mode="min"`` or ``"max"``.
    """

    name = "metric"
    n_stats = 1  # how many sums ``stats`` returns
    direction: str | None = None

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = _check_name(name)

    def stats(
        self, y: Array, y_hat: Array, xp: Any, sample_weight: Array | None = None
    ) -> list[Array]:
        """Sums over the batch, as 0-d arrays on the device.

        Parameters
        ----------
        y : array, shape (n, k)
            Targets, as the loss prepares them.
        y_hat : array, shape (n, k)
            Predictions.
        xp : namespace
            The Array API namespace of the arrays.
        sample_weight : array, shape (n,), optional
            Each row's weight (a weighted metric): the sums weigh each row's terms by it.
            None gives the unweighted sums.

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
        n : int or float
            Number of samples; for weighted ``stats``, the samples' total weight.
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
            ``{"name": ..., **settings}``, the registered name; a metric given its own name
            has ``{"class_name": registered name, "name": its name, **settings}``.
        """
        registered = type(self).name
        if self.name == registered:
            return {"name": registered, **self._settings()}
        return {"class_name": registered, "name": self.name, **self._settings()}

    def _settings(self) -> dict[str, Any]:
        """The constructor's arguments other than ``name``."""
        return {}

    def _logged_stats(self, y: Array, y_hat: Array, xp: Any, sample_weight: Array | None) -> list:
        """The sums fit and evaluate log: unweighted (a weighted metric uses the weights)."""
        return self.stats(y, y_hat, xp)

    def _set_outputs(self, k: int) -> None:
        """Told the model's number of outputs when it compiles (a hook for per-class sums)."""

    def __repr__(self) -> str:
        config = self.get_config()
        shown = {k: v for k, v in config.items() if k not in ("name", "class_name")}
        if "class_name" in config:
            shown["name"] = config["name"]
        settings = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"{type(self).__name__}({settings})"


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, received name={name!r}.")
    return name


def _check_threshold(value: Any, argument: str) -> float:
    if not is_real(value) or not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number, received {argument}={value!r}.")
    return float(value)


def _device(a: Array) -> Any:
    from array_api_compat import device

    return device(a)


def _count(
    mask: Array, dtype: Any, xp: Any, axis: int | None = None, w: Array | None = None
) -> Array:
    """How many entries of the boolean ``mask`` are true, in ``dtype`` (exact below 2^24).

    With row weights ``w`` (shape (n,)), the sum of the weights of the true entries.
    """
    return xp.sum(_weigh(xp.astype(mask, dtype), w, xp), axis=axis)


def _weigh(a: Array, w: Array | None, xp: Any) -> Array:
    """``a`` (shape (n,) or (n, k)) with each row times its weight; ``a`` itself without."""
    if w is None:
        return a
    return a * (w if a.ndim == 1 else xp.reshape(w, (-1, 1)))


def _entries(v: Array) -> list[Array]:
    """The entries of the 1-D ``v`` as 0-d arrays (the shape of ``stats``).

    By indexing: JAX compiles ``unstack`` anew for each length, which takes seconds.
    """
    return [v[i] for i in range(v.shape[0])]


def _ratio(a: float, b: float) -> float:
    """``a / b``, 0 where ``b`` is 0 (Keras's divide_no_nan)."""
    return a / b if b else 0.0


class BinaryAccuracy(Metric):
    """Fraction of outputs on the right side of ``threshold`` (0.5).

    Parameters
    ----------
    threshold : float, default 0.5
        Outputs above it count as predicting 1.
    name : str, optional
        The name in the logs (default ``"binary_accuracy"``).
    """

    name = "binary_accuracy"
    direction = "up"

    def __init__(self, threshold: float = 0.5, name: str | None = None):
        super().__init__(name)
        self.threshold = _check_threshold(threshold, "threshold")

    def _settings(self):
        return {"threshold": self.threshold}

    def stats(self, y, y_hat, xp, sample_weight=None):
        hit = (y_hat > self.threshold) == (y > 0.5)
        return [_count(hit, y_hat.dtype, xp, w=sample_weight)]

    def result(self, totals, n, k):
        return _ratio(totals[0], n * k)


class CategoricalAccuracy(Metric):
    """Fraction of rows whose largest output is the labelled class."""

    name = "categorical_accuracy"
    direction = "up"

    def stats(self, y, y_hat, xp, sample_weight=None):
        hit = xp.argmax(y_hat, axis=-1) == xp.argmax(y, axis=-1)
        return [_count(hit, y_hat.dtype, xp, w=sample_weight)]

    def result(self, totals, n, k):
        return _ratio(totals[0], n)


class TopKCategoricalAccuracy(Metric):
    """Fraction of rows whose labelled class is among the ``k`` largest outputs (5).

    The labelled class is the largest entry of the label row. As Keras's ``in_top_k``, ties
    count in the label's favour: a row is a hit when fewer than ``k`` outputs are strictly
    larger than the output at the label (so a row of equal outputs is always a hit), and a
    NaN output at the label is a miss unless ``k`` reaches the number of classes.

    Parameters
    ----------
    k : int, default 5
        How many of the largest outputs may hold the label.
    name : str, optional
        The name in the logs (default ``"top_k_categorical_accuracy"``).
    """

    name = "top_k_categorical_accuracy"
    direction = "up"

    def __init__(self, k: int = 5, name: str | None = None):
        super().__init__(name)
        if not is_int(k) or k < 1:
            raise ValueError(f"k must be an integer >= 1, received k={k!r}.")
        self.k = int(k)

    def _settings(self):
        return {"k": self.k}

    def stats(self, y, y_hat, xp, sample_weight=None):
        label = xp.reshape(xp.argmax(y, axis=-1), (-1, 1))
        is_label = xp.arange(y.shape[-1], device=_device(y)) == label
        at_label = xp.sum(xp.where(is_label, y_hat, xp.zeros_like(y_hat)), axis=-1, keepdims=True)
        # NaN is no large output: it ranks below every number (Keras's in_top_k)
        at_label = xp.where(xp.isnan(at_label), xp.full_like(at_label, -math.inf), at_label)
        larger = _count(y_hat > at_label, y_hat.dtype, xp, axis=-1)
        return [_count(larger < self.k, y_hat.dtype, xp, w=sample_weight)]

    def result(self, totals, n, k):
        return _ratio(totals[0], n)


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """:class:`TopKCategoricalAccuracy` under Keras's name for integer labels.

    The sparse losses hand the metrics one-hot rows, so the computation is the same.

    Parameters
    ----------
    k : int, default 5
        How many of the largest outputs may hold the label.
    name : str, optional
        The name in the logs (default ``"sparse_top_k_categorical_accuracy"``).
    """

    name = "sparse_top_k_categorical_accuracy"


def _in_top_k(y_hat: Array, k: int, xp: Any) -> Array:
    """Whether each output is among the ``k`` largest of its row.

    Exactly ``k`` per row, ties broken by the lower index first, as ``top_k`` (Keras's
    ``_filter_top_k``) picks them: the outputs above the row's k-th largest value, then as
    many of those equal to it as places remain, from the left.
    """
    if k >= y_hat.shape[-1]:
        return xp.ones_like(y_hat, dtype=xp.bool)
    kth = xp.sort(y_hat, axis=-1, descending=True)[:, k - 1 : k]
    above, tied = y_hat > kth, y_hat == kth
    room = k - _count(above, y_hat.dtype, xp, axis=-1)
    place = xp.cumulative_sum(xp.astype(tied, y_hat.dtype), axis=-1)
    return above | (tied & (place <= xp.reshape(room, (-1, 1))))


class _Thresholded(Metric):
    """Predictions thresholded as Keras's Precision and Recall do it (top_k, class_id)."""

    n_stats = 2
    direction = "up"

    def __init__(
        self,
        thresholds: float | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        if isinstance(thresholds, list | tuple):
            if len(thresholds) != 1:
                raise ValueError(
                    f"{type(self).__name__} takes one threshold: the logs hold one number per "
                    f"metric. Received thresholds={thresholds!r}; make one metric per threshold, "
                    "each with its own name."
                )
            thresholds = thresholds[0]
        if thresholds is not None:
            thresholds = _check_threshold(thresholds, "thresholds")
            # as Keras: a threshold outside [0, 1] would make every prediction one class
            if not 0 <= thresholds <= 1:
                raise ValueError(f"thresholds must be in [0, 1], received thresholds={thresholds}.")
        if top_k is not None and (not is_int(top_k) or top_k < 1):
            raise ValueError(f"top_k must be an integer >= 1 or None, received top_k={top_k!r}.")
        if class_id is not None and (not is_int(class_id) or class_id < 0):
            raise ValueError(
                f"class_id must be an integer >= 0 or None, received class_id={class_id!r}."
            )
        self.thresholds = thresholds
        self.top_k = None if top_k is None else int(top_k)
        self.class_id = None if class_id is None else int(class_id)
        # Keras: 0.5, or every top-k prediction when top_k is given
        default = 0.5 if top_k is None else _NEG_INF
        self._threshold = default if thresholds is None else thresholds

    def _settings(self):
        return {"thresholds": self.thresholds, "top_k": self.top_k, "class_id": self.class_id}

    def _predicted_and_true(self, y: Array, y_hat: Array, xp: Any) -> tuple[Array, Array]:
        predicted = y_hat > self._threshold
        if self.top_k is not None:  # over the whole row, before class_id picks a column
            predicted = predicted & _in_top_k(y_hat, self.top_k, xp)
        true = y != 0  # Keras casts the labels to bool
        c = self.class_id
        if c is not None:
            if c >= y_hat.shape[-1]:
                raise ValueError(
                    f"{type(self).__name__}(class_id={c}) needs more than {c} outputs; the "
                    f"model has {y_hat.shape[-1]}. Expected class_id < {y_hat.shape[-1]}."
                )
            predicted, true = predicted[:, c : c + 1], true[:, c : c + 1]
        return predicted, true


class Precision(_Thresholded):
    """TP / (TP + FP): the fraction of positive predictions that are right (0 when none).

    A prediction is positive above ``thresholds`` (0.5). With ``top_k``, only the ``top_k``
    largest outputs of each row can be positive (above ``thresholds`` if given, else all of
    them); with ``class_id``, only that output counts. Labels other than 0 are positive.

    Parameters
    ----------
    thresholds : float, optional
        The threshold (Keras's default 0.5; minus infinity with ``top_k``). One number: the
        logs hold one value per metric.
    top_k : int, optional
        Only the ``top_k`` largest outputs of a row are positive (ties: lower index first).
    class_id : int, optional
        The output (class) to measure; all outputs, flattened, by default.
    name : str, optional
        The name in the logs (default ``"precision"``).
    """

    name = "precision"

    def stats(self, y, y_hat, xp, sample_weight=None):
        predicted, true = self._predicted_and_true(y, y_hat, xp)
        w, dtype = sample_weight, y_hat.dtype
        return [_count(predicted & true, dtype, xp, w=w), _count(predicted, dtype, xp, w=w)]

    def result(self, totals, n, k):
        return _ratio(totals[0], totals[1])


class Recall(_Thresholded):
    """TP / (TP + FN): the fraction of positive labels predicted positive (0 when none).

    Predictions are thresholded as :class:`Precision`'s.

    Parameters
    ----------
    thresholds : float, optional
        The threshold (Keras's default 0.5; minus infinity with ``top_k``).
    top_k : int, optional
        Only the ``top_k`` largest outputs of a row are positive (ties: lower index first).
    class_id : int, optional
        The output (class) to measure; all outputs, flattened, by default.
    name : str, optional
        The name in the logs (default ``"recall"``).
    """

    name = "recall"

    def stats(self, y, y_hat, xp, sample_weight=None):
        predicted, true = self._predicted_and_true(y, y_hat, xp)
        w, dtype = sample_weight, y_hat.dtype
        return [_count(predicted & true, dtype, xp, w=w), _count(true, dtype, xp, w=w)]

    def result(self, totals, n, k):
        return _ratio(totals[0], totals[1])


class F1Score(Metric):
    """The F1 score 2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall.

    A prediction is positive above ``threshold``, or, without one, where it is its row's
    largest output (all of the tied largest, and never an output of 0). Counts are per class
    (output) except with ``average="micro"``, which counts over all outputs at once.

    Keras adds 1e-7 to each denominator; here the ratios are exact, with 0 for a class that
    has neither labels nor positive predictions (scikit-learn's ``zero_division=0``).

    Parameters
    ----------
    average : {None, "micro", "macro", "weighted"}, default None
        None: one score per class (:meth:`result` gives a list; ``fit``'s logs hold one
        number per metric, so compile with one of the averages). "micro": from the counts
        over all classes. "macro": the mean of the classes' scores. "weighted": their mean
        weighted by each class's number of true labels. The string ``"f1_score"`` (in
        ``compile(metrics=["f1_score"])``) builds ``F1Score(average="macro")``, which logs a
        number (for one output, the binary F1), where Keras's string gives average=None.
    threshold : float, optional
        In (0, 1]; None (the default) marks each row's largest output(s) positive.
    name : str, optional
        The name in the logs (default ``"f1_score"``).
    """

    name = "f1_score"
    direction = "up"

    def __init__(
        self, average: str | None = None, threshold: float | None = None, name: str | None = None
    ):
        super().__init__(name)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                "average must be one of None, 'micro', 'macro' or 'weighted', received "
                f"average={average!r}."
            )
        if threshold is not None:
            threshold = _check_threshold(threshold, "threshold")
            if not 0 < threshold <= 1:
                raise ValueError(
                    f"threshold must satisfy 0 < threshold <= 1, received threshold={threshold}."
                )
        self.average, self.threshold = average, threshold
        self._k: int | None = None  # classes, known when the model compiles

    def _settings(self):
        return {"average": self.average, "threshold": self.threshold}

    @property
    def n_stats(self) -> int:
        if self.average == "micro":
            return 3
        if self._k is None:
            raise RuntimeError(
                f"F1Score(average={self.average!r}) keeps sums per class and does not know "
                "the number of classes yet: compile the model with it first."
            )
        return 4 * self._k

    def _set_outputs(self, k):
        if self.average is None:
            raise ValueError(
                "F1Score(average=None) gives one score per class, and the logs of fit and "
                "evaluate hold one number per metric. Use F1Score(average='macro'), 'micro' "
                "or 'weighted'."
            )
        self._k = int(k)

    def stats(self, y, y_hat, xp, sample_weight=None):
        dtype = y_hat.dtype
        if self.threshold is None:
            largest = xp.max(y_hat, axis=-1, keepdims=True)
            # a row of zeros predicts nothing rather than every class
            predicted = (y_hat >= largest) & (xp.abs(y_hat) > 1e-9)
        else:
            predicted = y_hat > self.threshold
        p = xp.astype(predicted, dtype)
        tp, fp, fn = p * y, p * (1 - y), (1 - p) * y
        if sample_weight is not None:  # Keras: each row's counts and support times its weight
            tp, fp, fn, y = (_weigh(a, sample_weight, xp) for a in (tp, fp, fn, y))
        if self.average == "micro":
            return [xp.sum(tp), xp.sum(fp), xp.sum(fn)]
        k = y_hat.shape[-1]
        if self._k is None:
            self._k = k
        elif k != self._k:
            raise ValueError(
                f"F1Score was compiled for {self._k} classes and received predictions with "
                f"{k}; compile the model again (a metric instance serves one model)."
            )
        # per class: 4 k sums, as 0-d arrays (the logs stack them)
        return [s for a in (tp, fp, fn, y) for s in _entries(xp.sum(a, axis=0))]

    def _scores(self, totals: list[float]) -> list[float]:
        """Each class's F1 from the summed ``stats`` (one score for ``average="micro"``)."""
        m = 1 if self.average == "micro" else len(totals) // 4
        tp, fp, fn = totals[:m], totals[m : 2 * m], totals[2 * m : 3 * m]
        return [_ratio(2 * a, 2 * a + b + c) for a, b, c in zip(tp, fp, fn, strict=True)]

    def result(self, totals, n, k):
        f1 = self._scores(totals)
        if self.average is None:
            return f1
        if self.average == "weighted":
            support = totals[3 * len(f1) :]
            return _ratio(sum(f * s for f, s in zip(f1, support, strict=True)), sum(support))
        return sum(f1) / len(f1)  # micro: the one score; macro: the plain mean


class AUC(Metric):
    """Area under the ROC or the precision-recall curve, as Keras approximates it.

    The outputs (clipped to [0, 1]; all of them flattened into one binary problem, labels
    other than 0 positive) are compared with ``num_thresholds`` evenly spaced thresholds,
    ``-1e-7, 1/(T-1), ..., (T-2)/(T-1), 1 + 1e-7``. The device sums are the confusion counts
    at each threshold (true and false positives, and the numbers of positive and negative
    labels), so they add up over batches and ranks exactly; the host computes the area from
    them with Keras's Riemann sum.

    Parameters
    ----------
    num_thresholds : int, default 200
        T > 1. Pairs of a positive and a negative output that fall between the same two
        thresholds are where the approximation can err (by half a pair each, for ROC).
    curve : {"ROC", "PR"}, default "ROC"
        True positive rate over false positive rate, or precision over recall.
    summation_method : {"interpolation", "minoring", "majoring"}, default "interpolation"
        Trapezoids (for PR, Davis & Goadrich's interpolation of the counts), or the lower or
        the upper step of each interval.
    name : str, optional
        The name in the logs (default ``"auc"``); two AUCs of one model need two names.
    from_logits : bool, default False
        Apply the sigmoid to the outputs first (a model whose last layer is linear).

    Examples
    --------
    Keras's example, with three thresholds ``[-1e-7, 0.5, 1 + 1e-7]``:

    >>> import array_api_compat.numpy as xp
    >>> m = AUC(num_thresholds=3)
    >>> y, p = xp.asarray([[0.0], [0.0], [1.0], [1.0]]), xp.asarray([[0.0], [0.5], [0.3], [0.9]])
    >>> m.result([float(s) for s in m.stats(y, p, xp)], n=4, k=1)
    0.75
    """

    name = "auc"
    direction = "up"

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        from_logits: bool = False,
    ):
        super().__init__(name)
        if not is_int(num_thresholds) or num_thresholds <= 1:
            raise ValueError(
                "num_thresholds must be an integer > 1, received "
                f"num_thresholds={num_thresholds!r}."
            )
        if not isinstance(curve, str) or curve.upper() not in ("ROC", "PR"):
            raise ValueError(f"curve must be 'ROC' or 'PR', received curve={curve!r}.")
        methods = ("interpolation", "minoring", "majoring")
        if not isinstance(summation_method, str) or summation_method.lower() not in methods:
            raise ValueError(
                "summation_method must be one of 'interpolation', 'minoring' or 'majoring', "
                f"received summation_method={summation_method!r}."
            )
        logits = as_bool(from_logits)
        if logits is None:
            raise TypeError(f"from_logits must be True or False, received {from_logits!r}.")
        self.num_thresholds = int(num_thresholds)
        self.curve = curve.upper()
        self.summation_method = summation_method.lower()
        self.from_logits = logits
        # positives, negatives, then true and false positives at each threshold
        self.n_stats = 2 + 2 * self.num_thresholds

    def _settings(self):
        return {
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "from_logits": self.from_logits,
        }

    def _thresholds(self, like: Array, xp: Any) -> Array:
        """The T thresholds, made on the device (no copy from the host: capture-safe)."""
        t = self.num_thresholds
        i = xp.arange(t, dtype=like.dtype, device=_device(like))
        ends = xp.astype(i == t - 1, like.dtype) - xp.astype(i == 0, like.dtype)
        return i / (t - 1) + _EPSILON * ends

    def stats(self, y, y_hat, xp, sample_weight=None):
        dtype = y_hat.dtype
        p = xp.reshape(y_hat, (-1,))
        if self.from_logits:  # the sigmoid, without overflow for large |z|
            e = xp.exp(-xp.abs(p))
            p = xp.where(p >= 0, 1 / (1 + e), e / (1 + e))
        p = xp.clip(p, 0.0, 1.0)
        true = xp.reshape(y != 0, (-1,))
        thresholds = self._thresholds(p, xp)
        below = xp.full_like(p, -1.0)  # under every threshold: counts as predicted negative
        m = p.shape[0]

        def above(mask):
            # how many outputs where ``mask`` holds exceed each threshold: a sort and a binary
            # search, O(m log m), where comparing with every threshold would take m * T memory
            ranked = xp.sort(xp.where(mask, p, below))
            return xp.astype(m - xp.searchsorted(ranked, thresholds, side="right"), dtype)

        if sample_weight is not None:
            return self._weighted_stats(p, true, thresholds, sample_weight, xp)
        tp, fp = above(true), above(~true)
        positives = _count(true, dtype, xp)
        return [positives, m - positives, *_entries(tp), *_entries(fp)]

    def _weighted_stats(self, p, true, thresholds, sample_weight, xp):
        """The confusion counts weighted: each output counts its row's weight (Keras)."""
        n = sample_weight.shape[0]
        rows = xp.ones((n, p.shape[0] // n), dtype=p.dtype, device=_device(p))
        w = xp.reshape(_weigh(rows, sample_weight, xp), (-1,))  # the flattened outputs' rows
        zero = xp.zeros_like(w)

        def above(mask):
            # the weight of the outputs where ``mask`` holds above each threshold: sorted by
            # output, the weight from each position to the end (a suffix sum), read where
            # the threshold would be inserted
            masked = xp.where(mask, p, xp.full_like(p, -1.0))  # -1: under every threshold
            order = xp.argsort(masked)
            ranked, weights = xp.take(masked, order), xp.take(xp.where(mask, w, zero), order)
            tail = xp.flip(xp.cumulative_sum(xp.flip(weights, axis=0)), axis=0)
            tail = xp.concat([tail, zero[:1]])  # nothing lies above the largest output
            return xp.take(tail, xp.searchsorted(ranked, thresholds, side="right"))

        positives = xp.sum(xp.where(true, w, zero))
        negatives = xp.sum(xp.where(true, zero, w))
        return [positives, negatives, *_entries(above(true)), *_entries(above(~true))]

    def result(self, totals, n, k):
        t = self.num_thresholds
        positives, negatives = totals[0], totals[1]
        tp, fp = totals[2 : 2 + t], totals[2 + t : 2 + 2 * t]
        fn = [positives - a for a in tp]
        if self.curve == "PR" and self.summation_method == "interpolation":
            return _pr_auc_interpolated(tp, fp, fn)
        recall = [_ratio(a, a + b) for a, b in zip(tp, fn, strict=True)]
        if self.curve == "ROC":
            tn = [negatives - b for b in fp]
            x = [_ratio(a, a + b) for a, b in zip(fp, tn, strict=True)]
            heights = recall
        else:
            x = recall
            heights = [_ratio(a, a + b) for a, b in zip(tp, fp, strict=True)]
        pick = {
            "interpolation": lambda a, b: (a + b) / 2,
            "minoring": min,
            "majoring": max,
        }[self.summation_method]
        return sum((x[i] - x[i + 1]) * pick(heights[i], heights[i + 1]) for i in range(t - 1))


def _pr_auc_interpolated(tp: list[float], fp: list[float], fn: list[float]) -> float:
    """Keras's interpolated PR-AUC (Davis & Goadrich 2006, section 4, in closed form).

    Between two thresholds, TP and the predicted positives P = TP + FP vary linearly, so
    precision = TP / P is integrated exactly over the interval:
    slope * (dTP + intercept * log(P_A / P_B)) / (TP_B + FN_B), slope = dTP / dP.
    """
    total = 0.0
    for i in range(len(tp) - 1):
        p_a, p_b = tp[i] + fp[i], tp[i + 1] + fp[i + 1]
        dtp = tp[i] - tp[i + 1]
        slope = _ratio(dtp, max(p_a - p_b, 0.0))
        intercept = tp[i + 1] - slope * p_b
        ratio = _ratio(p_a, max(p_b, 0.0)) if p_a > 0 and p_b > 0 else 1.0
        total += _ratio(slope * (dtp + intercept * math.log(ratio)), max(tp[i + 1] + fn[i + 1], 0))
    return total


class MeanAbsoluteError(Metric):
    """mean |y_hat - y|."""

    name = "mae"
    direction = "down"

    def stats(self, y, y_hat, xp, sample_weight=None):
        return [xp.sum(_weigh(xp.abs(y_hat - y), sample_weight, xp))]

    def result(self, totals, n, k):
        return _ratio(totals[0], n * k)


class MeanSquaredError(Metric):
    """mean (y_hat - y)^2."""

    name = "mse"
    direction = "down"

    def stats(self, y, y_hat, xp, sample_weight=None):
        d = y_hat - y
        return [xp.sum(_weigh(d * d, sample_weight, xp))]

    def result(self, totals, n, k):
        return _ratio(totals[0], n * k)


class _Weighted(Metric):
    """A metric of ``compile(weighted_metrics=...)``: its sums weighed by the sample weights.

    The sums are the metric's own with ``sample_weight``, then the batch's total weight (the
    number of rows without weights), which :meth:`result` hands the metric as its ``n``: a
    mean becomes the weighted mean, Keras's ``sum(w * value) / sum(w)``. Without weights the
    sums are the unweighted ones and the result is the unweighted metric's.

    Parameters
    ----------
    metric : Metric
        The metric weighed; its ``stats`` must take ``sample_weight``.
    """

    def __init__(self, metric: Metric):
        import inspect

        try:
            takes = "sample_weight" in inspect.signature(metric.stats).parameters
        except (TypeError, ValueError):  # a builtin or C callable: no signature to read
            takes = False
        if not takes:
            raise TypeError(
                f"{type(metric).__name__} cannot be a weighted metric: its stats(y, y_hat, xp) "
                "takes no sample_weight. Give it stats(self, y, y_hat, xp, sample_weight=None), "
                "summing each row's terms times its weight, or pass it in metrics= instead."
            )
        self.metric = metric
        self.name = metric.name
        self.direction = metric.direction

    @property
    def n_stats(self) -> int:
        return self.metric.n_stats + 1

    def stats(self, y, y_hat, xp, sample_weight=None):
        own = self.metric.stats(y, y_hat, xp, sample_weight=sample_weight)
        if sample_weight is None:  # the rows, counted on the device (capture-safe)
            return [*own, xp.sum(xp.ones_like(y_hat[:, 0]))]
        return [*own, xp.sum(sample_weight)]

    def _logged_stats(self, y, y_hat, xp, sample_weight):
        return self.stats(y, y_hat, xp, sample_weight=sample_weight)

    def result(self, totals, n, k):
        return self.metric.result(totals[:-1], totals[-1], k)

    def get_config(self):
        return self.metric.get_config()

    def _set_outputs(self, k):
        self.metric._set_outputs(k)

    def __repr__(self) -> str:
        return f"weighted {self.metric!r}"


_REGISTRY: dict[str, type[Metric]] = {
    cls.name: cls
    for cls in (
        BinaryAccuracy,
        CategoricalAccuracy,
        TopKCategoricalAccuracy,
        SparseTopKCategoricalAccuracy,
        Precision,
        Recall,
        F1Score,
        AUC,
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


def get(identifier: str | dict | Metric, loss_kind: str = "binary", n_outputs: int = 1) -> Metric:
    """A metric from a name, a saved config or an instance, set up for ``n_outputs`` outputs.

    ``"accuracy"`` (or ``"acc"``) is picked from the loss, as Keras does: binary accuracy for
    binary cross-entropy (and single-output regression), categorical accuracy otherwise.

    Parameters
    ----------
    identifier : str, dict or Metric
        A name from :func:`names`, a config from :meth:`Metric.get_config`, or an instance
        (returned as is).
    loss_kind : str, default "binary"
        The loss's ``kind``, which resolves ``"accuracy"``.
    n_outputs : int, default 1
        Number of model outputs, which resolves ``"accuracy"`` for regression and sizes the
        per-class sums of ``F1Score``.

    Returns
    -------
    Metric
    """
    metric = _get(identifier, loss_kind, n_outputs)
    metric._set_outputs(n_outputs)
    return metric


def _get(identifier: Any, loss_kind: str, n_outputs: int) -> Metric:
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):  # a saved config: {"name": ..., **settings}
        config = dict(identifier)
        own = config.pop("name", None) if "class_name" in config else None
        name = config.pop("class_name", config.get("name"))
        key = _ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name
        metric = build("metric", {**config, "name": key}, _REGISTRY)
        if own is not None:
            metric.name = _check_name(own)
        return metric
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
    if key == "f1_score":
        # Keras's string gives average=None (a score per class); the logs hold one number
        # per metric, so the string gives the mean of the classes' scores (for one output,
        # the binary F1)
        return F1Score(average="macro")
    return _REGISTRY[key]()


# keys the logs of fit hold besides the metrics: a metric so named would overwrite them
_RESERVED = ("loss", "learning_rate")


def _check_names(named_metrics: list[tuple[str, Metric]]) -> None:
    """Raise if two metrics of one model share a log key, or one takes the loss's key.

    Keras renames a second ``"auc"`` to ``"auc_1"``; here the names are the user's, so a
    clash is told at compile rather than one metric silently overwriting another in the logs.

    Parameters
    ----------
    named_metrics : list of (str, Metric)
        The compiled metrics, each under the name the logs will use.

    Raises
    ------
    ValueError
        If two metrics have one name, or a name is ``"loss"`` or ``"learning_rate"`` (keys
        of the logs already) or starts with ``"val_"`` (the validation keys' prefix).

    Examples
    --------
    >>> _check_names([("auc", AUC()), ("pr_auc", AUC(curve="PR", name="pr_auc"))])
    >>> _check_names([("auc", AUC()), ("auc", AUC(curve="PR"))])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Two metrics are named 'auc' (AUC and AUC): ... e.g. AUC(..., name='auc_1').
    """
    seen: dict[str, Metric] = {}
    for name, weighed in named_metrics:
        metric = getattr(weighed, "metric", weighed)  # a weighted metric: the one it weighs
        if name in _RESERVED or name.startswith("val_"):
            what = "starts with 'val_', the prefix of" if name.startswith("val_") else "is"
            raise ValueError(
                f"The metric {metric!r} is named {name!r}, which {what} a key the logs of fit "
                "already hold. Give it another name, e.g. "
                f"{type(metric).__name__}(name='my_{name.removeprefix('val_')}')."
            )
        if name in seen:
            raise ValueError(
                f"Two metrics are named {name!r} ({type(seen[name]).__name__} and "
                f"{type(metric).__name__}): one would overwrite the other in the logs. Give "
                f"each its own name, e.g. {type(metric).__name__}(..., name='{name}_1')."
            )
        seen[name] = metric
