"""Losses L(y, y_hat) and their gradients dL/dy_hat, in numerically stable Array API forms.

Every loss is the mean over the batch, so its gradient carries a ``1 / n`` factor. Two pairs of
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

from typing import Any

from array_api_compat import array_namespace

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

    def get_config(self) -> dict[str, Any]:
        """The name that rebuilds this loss with :func:`get`.

        Returns
        -------
        dict
            ``{"name": ...}``.
        """
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


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

    def gradient(self, y, y_hat, xp):
        return (2.0 / _size(y_hat)) * (y_hat - y)


class MeanAbsoluteError(Loss):
    """L = mean|y_hat - y|, dL/dy_hat = sign(y_hat - y) / (n k) (0 where they are equal)."""

    name = "mae"

    def forward(self, y, y_hat, xp):
        return xp.mean(xp.abs(y_hat - y))

    def gradient(self, y, y_hat, xp):
        return xp.sign(y_hat - y) / _size(y_hat)


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
    )
}
_ALIASES = {
    "bce": "binary_crossentropy",
    "cce": "categorical_crossentropy",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
}

binary_crossentropy = BinaryCrossentropy()
categorical_crossentropy = CategoricalCrossentropy()
sparse_categorical_crossentropy = SparseCategoricalCrossentropy()
mse = mean_squared_error = MeanSquaredError()
mae = mean_absolute_error = MeanAbsoluteError()


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
        A name from :func:`names`, a dict from ``get_config`` or an instance (returned as is).

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        identifier = identifier.get("name")
    if isinstance(identifier, str):
        key = _ALIASES.get(identifier.lower(), identifier.lower())
        if key not in _REGISTRY:
            raise ValueError(f"Unknown loss {identifier!r}. Expected one of {names()}.")
        return _REGISTRY[key]()
    raise TypeError(
        "loss must be a name such as 'binary_crossentropy' or a Loss instance; received "
        f"{type(identifier).__name__}."
    )
