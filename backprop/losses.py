"""Losses L(y, y_hat) and their gradients dL/dy_hat, in numerically stable Array API forms.

Every loss is reduced as Keras reduces it: over the last axis per sample (the mean, or the sum
for the categorical cross-entropies, ``kl_divergence`` and ``cosine_similarity``), then the mean
over the batch; so each gradient carries a ``1 / (n k)`` (or ``1 / n``) factor. Two pairs of
output activation and loss are *fused*: the model hands the loss the logits ``z`` of the last
layer instead of ``y_hat = g(z)`` and receives ``dL/dz`` directly:

- sigmoid + binary cross-entropy:
  ``L = mean(max(z, 0) - z * y + log(1 + exp(-|z|)))``, ``dL/dz = (sigmoid(z) - y) / n``
- softmax + categorical cross-entropy:
  ``L = mean(logsumexp(z) - sum(y * z))``, ``dL/dz = (softmax(z) - y) / n``

Both are exact for any ``z``: a saturated output (``|z|`` in the hundreds) gives a finite loss
and a finite gradient, where ``log(sigmoid(z))`` would give ``log(0) = -inf``.

Examples
--------
>>> import array_api_compat.numpy as xp
>>> round(float(binary_crossentropy(xp.asarray([1.0, 0.0]), xp.asarray([0.9, 0.1]))), 6)
0.105361
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from array_api_compat import array_namespace

from ._checks import as_float

Array = Any

# Keras's backend epsilon: probabilities are clipped to [EPS, 1 - EPS] before a log.
EPS = 1e-7


class Loss:
    """Base class.

    Attributes
    ----------
    name : str
        The name :func:`get` knows it by.
    kind : str
        What the labels are: ``"binary"`` (0/1), ``"categorical"`` (one-hot rows),
        ``"sparse"`` (integer classes) or ``"regression"`` (real values).
    fused_activation : str or None
        The output activation whose gradient this loss can fuse with.
    """

    name = "loss"
    kind = "regression"
    fused_activation: str | None = None

    def __call__(self, y: Array, y_hat: Array, xp: Any = None) -> Array:
        """The loss value (a 0-d array on the inputs' device).

        Parameters
        ----------
        y : array, shape (n,) or (n, k)
            Labels in the loss's layout (0/1, one-hot rows, integer classes, real values).
        y_hat : array, shape (n,) or (n, k)
            Predictions (probabilities for the cross-entropies).
        xp : namespace, optional
            Their namespace (looked up from ``y_hat`` when omitted).

        Returns
        -------
        array, shape ()
            The mean loss over the batch.
        """
        xp = xp or array_namespace(y_hat)
        if y_hat.ndim == 1:  # a column of single outputs, as Keras accepts
            y_hat = xp.reshape(y_hat, (-1, 1))
        return self.forward(self.prepare_targets(y, y_hat.shape[-1], y_hat.dtype, xp), y_hat, xp)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: Any, xp: Any) -> Array:
        """Labels in the layout ``forward`` and ``gradient`` take: ``(n, n_outputs)`` floats.

        Parameters
        ----------
        y : array, shape (n,) or (n, n_outputs)
            Labels.
        n_outputs : int
            Number of model outputs ``k``.
        dtype : dtype
            The floating dtype of the predictions.
        xp : namespace
            The Array API namespace of ``y``.

        Returns
        -------
        array, shape (n, n_outputs)
            The labels as floats of ``dtype``.
        """
        if y.ndim == 1:
            y = xp.reshape(y, (-1, 1))
        return xp.astype(y, dtype) if y.dtype != dtype else y

    def forward(self, y: Array, y_hat: Array, xp: Any) -> Array:
        """L(y, y_hat), a 0-d array.

        Parameters
        ----------
        y : array, shape (n, k)
            Targets, as ``prepare_targets`` returns them.
        y_hat : array, shape (n, k)
            Predictions.
        xp : namespace
            The Array API namespace of the arrays.

        Returns
        -------
        array, shape ()
            The loss, averaged over the batch.
        """
        raise NotImplementedError

    def gradient(self, y: Array, y_hat: Array, xp: Any) -> Array:
        """dL/dy_hat, the shape of ``y_hat``.

        Parameters
        ----------
        y : array, shape (n, k)
            Targets, as ``prepare_targets`` returns them.
        y_hat : array, shape (n, k)
            Predictions.
        xp : namespace
            The Array API namespace of the arrays.

        Returns
        -------
        array, shape (n, k)
            ``dL/dy_hat``.
        """
        raise NotImplementedError

    def from_logits(self, y: Array, z: Array, y_hat: Array, xp: Any) -> tuple[Array, Array]:
        """(L, dL/dz) for the fused activation; ``y_hat = g(z)`` is reused, not recomputed.

        Only for losses with a ``fused_activation``.

        Parameters
        ----------
        y : array, shape (n, k)
            Targets, as ``prepare_targets`` returns them.
        z : array, shape (n, k)
            Pre-activations (logits) of the output layer.
        y_hat : array, shape (n, k)
            ``g(z)``, the predictions.
        xp : namespace
            The Array API namespace of the arrays.

        Returns
        -------
        loss : array, shape ()
            The loss, computed from ``z`` without overflow.
        dz : array, shape (n, k)
            ``dL/dz``.

        Raises
        ------
        NotImplementedError
            For a loss without a fused form.
        """
        raise NotImplementedError(f"{self.name} has no fused form.")

    def logits_gradient(self, y: Array, y_hat: Array, xp: Any) -> Array:
        """dL/dz for the fused activation, without the loss value.

        Sigmoid + binary cross-entropy and softmax + categorical cross-entropy share
        ``(y_hat - y) / m``: the activation's Jacobian cancels the loss's 1/y_hat terms
        (m counts the outputs averaged over: all entries for BCE, the rows for CE).

        Parameters
        ----------
        y : array, shape (n, k)
            Targets, as ``prepare_targets`` returns them.
        y_hat : array, shape (n, k)
            ``g(z)``, the predictions.
        xp : namespace
            The Array API namespace of the arrays.

        Returns
        -------
        dz : array, shape (n, k)
            ``dL/dz``.

        Raises
        ------
        NotImplementedError
            For a loss without a fused form.
        """
        if self.fused_activation is None:
            raise NotImplementedError(f"{self.name} has no fused form.")
        m = y_hat.shape[0] if self.fused_activation == "softmax" else _size(y_hat)
        return (y_hat - y) / m

    def per_sample(self, y: Array, y_hat: Array, xp: Any) -> Array:
        """Each row's loss, shape (n,): what ``forward`` averages over the rows.

        Keras's per-sample loss: the mean over a row's outputs (the sum for the
        cross-entropies, KL divergence and cosine similarity). Sample weights multiply it.

        Parameters
        ----------
        y : array, shape (n, k)
            Targets, as ``prepare_targets`` returns them.
        y_hat : array, shape (n, k)
            Predictions.
        xp : namespace
            The Array API namespace of the arrays.

        Returns
        -------
        array, shape (n,)

        Raises
        ------
        NotImplementedError
            For a loss that does not define it (sample weights need it).
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no per-sample form, which sample_weight and "
            "class_weight need: define per_sample(y, y_hat, xp) returning each row's loss."
        )

    def per_sample_from_logits(self, y: Array, z: Array, xp: Any) -> Array:
        """Each row's loss from the logits ``z`` of the fused activation, shape (n,).

        Raises
        ------
        NotImplementedError
            For a loss without a fused form.
        """
        raise NotImplementedError(f"{self.name} has no fused form.")

    def weighted(self, y: Array, y_hat: Array, w: Array, xp: Any, z: Array | None = None) -> Array:
        """The sample-weighted loss, reduced as Keras's ``"sum_over_batch_size"``.

        ``sum_i w_i L_i / n``: divided by the batch's rows, not by the sum of the weights.

        Parameters
        ----------
        y, y_hat : arrays, shape (n, k)
            Targets (as ``prepare_targets`` returns them) and predictions.
        w : array, shape (n,)
            Each row's weight.
        xp : namespace
            The Array API namespace of the arrays.
        z : array, shape (n, k), optional
            The logits, for a fused loss (computed without overflow).

        Returns
        -------
        array, shape ()
        """
        rows = self.per_sample(y, y_hat, xp) if z is None else self.per_sample_from_logits(y, z, xp)
        return xp.sum(w * rows) / y_hat.shape[0]

    def get_config(self) -> dict[str, Any]:
        """The name and arguments that rebuild this loss with :func:`get`.

        Returns
        -------
        dict
            ``{"name": ...}`` plus the constructor arguments, if any (``delta``, ``axis``).
        """
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class BinaryCrossentropy(Loss):
    """L = -mean(y log y_hat + (1 - y) log(1 - y_hat)); labels in [0, 1], shape (n,) or (n, k).

    dL/dy_hat = (y_hat - y) / (y_hat (1 - y_hat)) / (n k), with y_hat clipped to [eps, 1 - eps].
    """

    name = "binary_crossentropy"
    kind = "binary"
    fused_activation = "sigmoid"

    def forward(self, y, y_hat, xp):
        p = xp.clip(y_hat, EPS, 1.0 - EPS)
        return -xp.mean(y * xp.log(p) + (1.0 - y) * xp.log1p(-p))

    def gradient(self, y, y_hat, xp):
        p = xp.clip(y_hat, EPS, 1.0 - EPS)
        g = (p - y) / (p * (1.0 - p) * _size(y_hat))
        # the clip is flat outside [eps, 1 - eps]: no gradient flows there
        return xp.where((y_hat > EPS) & (y_hat < 1.0 - EPS), g, 0.0)

    def per_sample(self, y, y_hat, xp):
        p = xp.clip(y_hat, EPS, 1.0 - EPS)
        return -xp.mean(y * xp.log(p) + (1.0 - y) * xp.log1p(-p), axis=-1)

    def per_sample_from_logits(self, y, z, xp):
        return xp.mean(xp.maximum(z, 0.0) - z * y + xp.log1p(xp.exp(-xp.abs(z))), axis=-1)

    def from_logits(self, y, z, y_hat, xp):
        # log(1 + e^-|z|) + max(z, 0) - z y  is  -y log s(z) - (1 - y) log(1 - s(z)), overflow-free
        loss = xp.mean(xp.maximum(z, 0.0) - z * y + xp.log1p(xp.exp(-xp.abs(z))))
        dz = (y_hat - y) / _size(z)
        return loss, dz


class CategoricalCrossentropy(Loss):
    """L = -mean_i sum_k y_ik log y_hat_ik for one-hot rows ``y`` of shape (n, k).

    dL/dy_hat = -y / y_hat / n, with y_hat clipped to [eps, 1].
    """

    name = "categorical_crossentropy"
    kind = "categorical"
    fused_activation = "softmax"

    def forward(self, y, y_hat, xp):
        p = xp.clip(y_hat, EPS, 1.0)
        return -xp.sum(y * xp.log(p)) / y_hat.shape[0]

    def per_sample(self, y, y_hat, xp):
        return -xp.sum(y * xp.log(xp.clip(y_hat, EPS, 1.0)), axis=-1)

    def per_sample_from_logits(self, y, z, xp):
        m = xp.max(z, axis=-1, keepdims=True)
        s = xp.sum(xp.exp(z - m), axis=-1, keepdims=True)
        return xp.sum(xp.log(s) + m - xp.sum(y * z, axis=-1, keepdims=True), axis=-1)

    def gradient(self, y, y_hat, xp):
        p = xp.clip(y_hat, EPS, 1.0)
        return xp.where(y_hat > EPS, -y / (p * y_hat.shape[0]), 0.0)

    def from_logits(self, y, z, y_hat, xp):
        # log-sum-exp shifted by the row max: the exp() cannot overflow, the value is unchanged
        m = xp.max(z, axis=-1, keepdims=True)
        s = xp.sum(xp.exp(z - m), axis=-1, keepdims=True)
        n = z.shape[0]
        loss = xp.sum(xp.log(s) + m - xp.sum(y * z, axis=-1, keepdims=True)) / n
        dz = (y_hat - y) / n
        return loss, dz


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical cross-entropy with integer class labels ``y`` of shape (n,) or (n, 1)."""

    name = "sparse_categorical_crossentropy"
    kind = "sparse"

    def prepare_targets(self, y, n_outputs, dtype, xp):
        # one-hot once per fit on the device, so each step is the categorical one
        y = xp.reshape(y, (-1, 1))
        classes = xp.arange(n_outputs, dtype=y.dtype, device=_device(y))
        return xp.astype(y == classes, dtype)


class MeanSquaredError(Loss):
    """L = mean((y_hat - y)^2), dL/dy_hat = 2 (y_hat - y) / (n k)."""

    name = "mse"

    def forward(self, y, y_hat, xp):
        d = y_hat - y
        return xp.mean(d * d)

    def per_sample(self, y, y_hat, xp):
        d = y_hat - y
        return xp.mean(d * d, axis=-1)

    def gradient(self, y, y_hat, xp):
        return (2.0 / _size(y_hat)) * (y_hat - y)


class MeanAbsoluteError(Loss):
    """L = mean|y_hat - y|, dL/dy_hat = sign(y_hat - y) / (n k) (0 where they are equal)."""

    name = "mae"

    def forward(self, y, y_hat, xp):
        return xp.mean(xp.abs(y_hat - y))

    def per_sample(self, y, y_hat, xp):
        return xp.mean(xp.abs(y_hat - y), axis=-1)

    def gradient(self, y, y_hat, xp):
        return xp.sign(y_hat - y) / _size(y_hat)


class Huber(Loss):
    """L = mean(e^2 / 2 if |e| <= delta else delta (|e| - delta / 2)), e = y_hat - y.

    dL/dy_hat = clip(e, -delta, delta) / (n k): the squared error near 0, the absolute error's
    constant pull (delta) beyond.

    Parameters
    ----------
    delta : float, default 1.0
        Where the loss turns from quadratic to linear; a finite number > 0.

    Raises
    ------
    ValueError
        If ``delta`` is not a finite number > 0.
    """

    name = "huber"

    def __init__(self, delta: float = 1.0):
        value = as_float(delta)
        if value is None or not 0 < value < math.inf:
            raise ValueError(f"huber delta must be a finite number > 0, received {delta!r}.")
        self.delta = value

    def forward(self, y, y_hat, xp):
        a = xp.abs(y_hat - y)
        # quad = min(|e|, delta): e^2 / 2 inside, delta^2 / 2 + delta (|e| - delta) outside
        quad = xp.minimum(a, self.delta)
        return xp.mean(0.5 * quad * quad + self.delta * (a - quad))

    def per_sample(self, y, y_hat, xp):
        a = xp.abs(y_hat - y)
        quad = xp.minimum(a, self.delta)
        return xp.mean(0.5 * quad * quad + self.delta * (a - quad), axis=-1)

    def gradient(self, y, y_hat, xp):
        return xp.clip(y_hat - y, -self.delta, self.delta) / _size(y_hat)

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class LogCosh(Loss):
    """L = mean(log cosh(e)), e = y_hat - y; dL/dy_hat = tanh(e) / (n k).

    ~e^2 / 2 near 0 and ~|e| - log 2 far out: the squared error for small errors, without its
    pull from outliers.
    """

    name = "log_cosh"

    def forward(self, y, y_hat, xp):
        a = xp.abs(y_hat - y)
        # log cosh a = log1p(2 sinh(a/2)^2): exact near 0, where cosh a rounds to 1; for a >= 1,
        # a + log1p(e^-2a) - log 2, which never overflows. Each branch gets an argument of its
        # own range, so the one where() drops overflows nothing.
        s = xp.sinh(0.5 * xp.minimum(a, 1.0))
        near = xp.log1p(2.0 * s * s)
        b = xp.maximum(a, 1.0)
        far = b + xp.log1p(xp.exp(-2.0 * b)) - math.log(2.0)
        return xp.mean(xp.where(a < 1.0, near, far))

    def per_sample(self, y, y_hat, xp):
        a = xp.abs(y_hat - y)
        s = xp.sinh(0.5 * xp.minimum(a, 1.0))
        b = xp.maximum(a, 1.0)
        far = b + xp.log1p(xp.exp(-2.0 * b)) - math.log(2.0)
        return xp.mean(xp.where(a < 1.0, xp.log1p(2.0 * s * s), far), axis=-1)

    def gradient(self, y, y_hat, xp):
        return xp.tanh(y_hat - y) / _size(y_hat)


class KLDivergence(Loss):
    """L = sum_k y_k log(y_k / y_hat_k), summed over a row, averaged over the n rows.

    As Keras: ``y`` and ``y_hat`` are clipped to [eps, 1] first (a label 0 then adds
    eps log(eps / y_hat)). dL/dy_hat = -y / y_hat / n, 0 where the clip of y_hat is flat
    (y_hat <= eps or > 1). Labels are rows of probabilities, shape (n, k).
    """

    name = "kl_divergence"
    kind = "categorical"

    def forward(self, y, y_hat, xp):
        q = xp.clip(y, EPS, 1.0)
        p = xp.clip(y_hat, EPS, 1.0)
        return xp.sum(q * xp.log(q / p)) / y_hat.shape[0]

    def per_sample(self, y, y_hat, xp):
        q = xp.clip(y, EPS, 1.0)
        return xp.sum(q * xp.log(q / xp.clip(y_hat, EPS, 1.0)), axis=-1)

    def gradient(self, y, y_hat, xp):
        q = xp.clip(y, EPS, 1.0)
        p = xp.clip(y_hat, EPS, 1.0)
        inside = (y_hat > EPS) & (y_hat <= 1.0)
        return xp.where(inside, -q / (p * y_hat.shape[0]), 0.0)


class Poisson(Loss):
    """L = mean(y_hat - y log(y_hat + eps)), dL/dy_hat = (1 - y / (y_hat + eps)) / (n k).

    For counts ``y`` >= 0 and rates ``y_hat`` > 0 (an ``exponential`` or ``softplus`` output);
    eps = 1e-7 inside the log as in Keras, so y_hat = 0 costs y log(1/eps), not infinity.
    """

    name = "poisson"

    def forward(self, y, y_hat, xp):
        return xp.mean(y_hat - y * xp.log(y_hat + EPS))

    def per_sample(self, y, y_hat, xp):
        return xp.mean(y_hat - y * xp.log(y_hat + EPS), axis=-1)

    def gradient(self, y, y_hat, xp):
        return (1.0 - y / (y_hat + EPS)) / _size(y_hat)


def _hinge_labels(y: Array, xp: Any) -> Array:
    """Labels in {-1, 1}: a batch whose labels are all 0 or 1 becomes 2y - 1, as in Keras.

    Decided on the device (a where() on an all()), so the step reads nothing back.
    """
    binary = xp.all((y == 0.0) | (y == 1.0))
    return xp.where(binary, 2.0 * y - 1.0, y)


class Hinge(Loss):
    """L = mean(max(1 - y y_hat, 0)) for labels y in {-1, 1} (0/1 labels are mapped to -1/1).

    dL/dy_hat = -y / (n k) where the margin 1 - y y_hat is > 0, else 0 (0 at the kink).
    """

    name = "hinge"

    def forward(self, y, y_hat, xp):
        y = _hinge_labels(y, xp)
        return xp.mean(xp.maximum(1.0 - y * y_hat, 0.0))

    def per_sample(self, y, y_hat, xp):
        return xp.mean(xp.maximum(1.0 - _hinge_labels(y, xp) * y_hat, 0.0), axis=-1)

    def gradient(self, y, y_hat, xp):
        y = _hinge_labels(y, xp)
        return xp.where(1.0 - y * y_hat > 0.0, -y, 0.0) / _size(y_hat)


class SquaredHinge(Loss):
    """L = mean(max(1 - y y_hat, 0)^2) for labels y in {-1, 1} (0/1 labels become -1/1).

    dL/dy_hat = -2 y max(1 - y y_hat, 0) / (n k).
    """

    name = "squared_hinge"

    def forward(self, y, y_hat, xp):
        m = xp.maximum(1.0 - _hinge_labels(y, xp) * y_hat, 0.0)
        return xp.mean(m * m)

    def per_sample(self, y, y_hat, xp):
        m = xp.maximum(1.0 - _hinge_labels(y, xp) * y_hat, 0.0)
        return xp.mean(m * m, axis=-1)

    def gradient(self, y, y_hat, xp):
        y = _hinge_labels(y, xp)
        return (-2.0 / _size(y_hat)) * y * xp.maximum(1.0 - y * y_hat, 0.0)


def _l2_normalize(x: Array, xp: Any) -> tuple[Array, Array, Array]:
    """Rows x / max(||x||, eps) as Keras's normalize, without overflow or underflow.

    Returns the normalized rows, whether ||x|| >= eps (a column of bools), and the factors
    ``(s, r)`` with ||x|| = s r: s the row's largest |entry|, r the norm of x / s (in
    [1, sqrt(k)]); squaring x itself would overflow from |x| ~ 1e154 and lose rows below 1e-154.
    """
    s = xp.max(xp.abs(x), axis=-1, keepdims=True)
    s_safe = xp.where(s > 0.0, s, 1.0)
    u = x / s_safe
    r = xp.sqrt(xp.sum(u * u, axis=-1, keepdims=True))
    r_safe = xp.where(r > 0.0, r, 1.0)
    big = s * r >= EPS
    # rows shorter than eps are divided by eps; the other rows' x never reach that division
    small = xp.where(big, 0.0, x)
    return xp.where(big, u / r_safe, small / EPS), big, s_safe * r_safe


class CosineSimilarity(Loss):
    """L = -mean_i cos(y_i, y_hat_i), the negative cosine similarity of each row (as Keras).

    cos = sum_k yn_k pn_k with yn = y / max(||y||, eps), pn = y_hat / max(||y_hat||, eps), so a
    zero row gives 0. dL/dy_hat = -(yn - cos pn) / ||y_hat|| / n (-yn / eps / n for rows with
    ||y_hat|| < eps): minimizing L turns each prediction towards its target's direction.

    Parameters
    ----------
    axis : int, default -1
        The axis of the vectors compared: the outputs, -1 (or 1, the same for (n, k)).

    Raises
    ------
    ValueError
        For another axis (0 would compare each output across the batch, not a sample's
        vector).
    """

    name = "cosine_similarity"

    def __init__(self, axis: int = -1):
        if isinstance(axis, bool) or axis not in (-1, 1):
            raise ValueError(
                "cosine_similarity axis must be -1 (or 1: the outputs of each sample, shape "
                f"(n, k)), received {axis!r}."
            )
        self.axis = axis

    def forward(self, y, y_hat, xp):
        yn, _, _ = _l2_normalize(y, xp)
        pn, _, _ = _l2_normalize(y_hat, xp)
        return -xp.sum(yn * pn) / y_hat.shape[0]

    def per_sample(self, y, y_hat, xp):
        yn, _, _ = _l2_normalize(y, xp)
        pn, _, _ = _l2_normalize(y_hat, xp)
        return -xp.sum(yn * pn, axis=-1)

    def gradient(self, y, y_hat, xp):
        yn, _, _ = _l2_normalize(y, xp)
        pn, big, norm = _l2_normalize(y_hat, xp)
        cos = xp.sum(yn * pn, axis=-1, keepdims=True)
        n = y_hat.shape[0]
        # d(pn)/d(y_hat) = (I - pn pn^T) / ||y_hat||, the projection off y_hat's own direction
        return xp.where(big, -(yn - cos * pn) / (norm * n), -yn / (EPS * n))

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


def _size(a: Array) -> int:
    n = 1
    for d in a.shape:
        n *= d
    return n


def _device(a: Array) -> Any:
    from array_api_compat import device

    return device(a)


_REGISTRY: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        LogCosh,
        KLDivergence,
        Poisson,
        Hinge,
        SquaredHinge,
        CosineSimilarity,
    )
}
_ALIASES = {
    "bce": "binary_crossentropy",
    "cce": "categorical_crossentropy",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    # Keras's: its Huber instance is named "huber_loss"; "kld" and the two legacy names
    "huber_loss": "huber",
    "logcosh": "log_cosh",
    "kld": "kl_divergence",
    "kullback_leibler_divergence": "kl_divergence",
}

binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
sparse_categorical_crossentropy = SparseCategoricalCrossentropy()
mse = mean_squared_error = MeanSquaredError()
mae = mean_absolute_error = MeanAbsoluteError()
huber = Huber()
log_cosh = LogCosh()
kl_divergence = KLDivergence()
poisson = Poisson()
hinge = Hinge()
squared_hinge = SquaredHinge()
cosine_similarity = CosineSimilarity()


def names() -> list[str]:
    """The names :func:`get` accepts.

    Returns
    -------
    list of str
        The registered loss names and aliases, sorted.
    """
    return sorted([*_REGISTRY, *_ALIASES])


def get(identifier: str | dict | Loss) -> Loss:
    """A loss from a name (``"binary_crossentropy"``, ``"mse"``, ...), a config or an instance.

    Parameters
    ----------
    identifier : str, dict or Loss
        A name from :func:`names`, a dict from ``get_config`` (``{"name": "huber", "delta":
        2.0}``: the other keys are the constructor's arguments) or an instance (returned as
        is).

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For a config with arguments the loss does not take, or an identifier of another type.
    """
    if isinstance(identifier, Loss):
        return identifier
    config: dict = {}
    if isinstance(identifier, dict):
        config = {k: v for k, v in identifier.items() if k != "name"}
        identifier = identifier.get("name")
    if isinstance(identifier, str):
        key = _ALIASES.get(identifier.lower(), identifier.lower())
        if key not in _REGISTRY:
            raise ValueError(f"Unknown loss {identifier!r}. Expected one of {names()}.")
        cls = _REGISTRY[key]
        takes = [p for p in inspect.signature(cls).parameters if p != "self"]
        unknown = sorted(set(config) - set(takes))
        if unknown:
            accepted = f"the arguments {takes}" if takes else "no arguments"
            raise TypeError(
                f"loss {key!r} takes {accepted}; its config also has {unknown}. Remove them."
            )
        return cls(**config)
    raise TypeError(
        "loss must be a name such as 'binary_crossentropy' or a Loss instance; received "
        f"{type(identifier).__name__}."
    )
