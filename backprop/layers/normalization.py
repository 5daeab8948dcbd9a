"""Normalization layers: ``BatchNormalization`` and ``LayerNormalization``.

Both standardise their input and scale and shift it, ``y = gamma * xhat + beta``; what they
share is the private base class ``_Normalization``. Built on :mod:`backprop.layers.core`;
reached as ``bp.layers.BatchNormalization`` and ``bp.layers.LayerNormalization``.
docs/normalization.md derives their backward passes.
"""

from __future__ import annotations

from typing import Any

from .. import initializers as _initializers
from .._checks import as_float, check_bool
from .core import Array, Layer, _initializer_config


def _check_epsilon(epsilon: Any) -> float:
    value = as_float(epsilon)
    if value is None or not value > 0 or value == float("inf"):
        raise ValueError(f"epsilon must be a positive number, received epsilon={epsilon!r}.")
    return value


class _Normalization(Layer):
    """What BatchNormalization and LayerNormalization share: ``y = gamma * xhat + beta``.

    ``xhat`` is ``x`` standardised over the batch (BatchNormalization) or over the features
    (LayerNormalization); ``gamma`` (``scale=True``) and ``beta`` (``center=True``) have one
    entry per feature (the last axis). Shapes: ``x, xhat, y (n, ..., d)``, ``gamma, beta (d,)``.
    """

    def __init__(
        self,
        epsilon: float,
        center: bool,
        scale: bool,
        beta_initializer: Any,
        gamma_initializer: Any,
        name: str | None,
        trainable: bool,
        input_shape: tuple[int, ...] | None = None,
    ):
        self.epsilon = _check_epsilon(epsilon)
        super().__init__(name, trainable, input_shape)
        self.center, self.scale = check_bool(center, "center"), check_bool(scale, "scale")
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)

    def build(self, input_dim, backend, rng, dtype):
        """Make ``gamma`` and ``beta`` (``(input_dim,)`` each) on the device (see Layer.build)."""
        super().build(input_dim, backend, rng, dtype)
        self.params = {}
        if self.scale:
            self.params["gamma"] = backend.asarray(self.gamma_initializer((input_dim,), rng), dtype)
        if self.center:
            self.params["beta"] = backend.asarray(self.beta_initializer((input_dim,), rng), dtype)
        self.grads = {}

    def _check_input(self, x: Array) -> None:
        self._check_built()
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            expected = ", ".join(str(d) for d in ("n", *self.input_shape))
            raise ValueError(
                f"{self.name} expected input of shape ({expected}), "
                f"received shape {tuple(x.shape)}."
            )

    def _affine(self, xhat: Array) -> Array:
        """``y = gamma * xhat + beta``."""
        y = xhat * self.params["gamma"] if self.scale else xhat
        return y + self.params["beta"] if self.center else y

    def _affine_backward(self, dy: Array) -> Array:
        """``dgamma = sum(dy * xhat)``, ``dbeta = sum(dy)``; returns ``dxhat``.

        gamma and beta were broadcast over every axis but the features (the batch, and the
        height and width of images), so their gradients sum over all of those.
        """
        xp = self.xp
        axes = tuple(range(dy.ndim - 1))
        if self.center:
            self._store_grad("beta", xp.sum(dy, axis=axes))
        if self.scale:
            self._store_grad("gamma", xp.sum(dy * self.xhat, axis=axes))
            return dy * self.params["gamma"]
        return dy

    def _config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": _initializer_config(self.beta_initializer),
            "gamma_initializer": _initializer_config(self.gamma_initializer),
        }


class BatchNormalization(_Normalization):
    r"""Batch normalization (Ioffe & Szegedy, 2015), with Keras's names and defaults.

    forward (training), per feature, over the batch's n rows (and, on images ``(n, h, w, d)``,
    over their pixels too: the mean and variance over n*h*w entries, as Keras's axis=-1):
        mu = mean(x),  var = mean((x - mu)^2),  xhat = (x - mu) / sqrt(var + eps)
        y = gamma * xhat + beta
        moving_mean = momentum * moving_mean + (1 - momentum) * mu     (and so moving_variance)
    forward (inference, or a frozen layer):
        xhat = (x - moving_mean) / sqrt(moving_variance + eps),  y = gamma * xhat + beta
    backward (training), with dxhat = dy * gamma:
        dbeta = sum(dy),  dgamma = sum(dy * xhat)
        dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)
    backward (inference): dx = dxhat / sqrt(moving_variance + eps)

    The training ``dx`` is the chain rule through ``mu`` and ``var`` as well as ``x``: every
    row's output depends on every row of the batch (docs/normalization.md derives it).

    Parameters
    ----------
    momentum : float, default 0.99
        Weight of the old moving statistics, in [0, 1).
    epsilon : float, default 1e-3
        Added to the variance, > 0.
    center, scale : bool, default True
        Whether the layer has ``beta`` and ``gamma``.
    beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer
        Keras's defaults: zeros, ones, zeros, ones.
    name : str, optional
        The layer's name (``batch_normalization``, ``batch_normalization_1``, ... by default).
    trainable : bool, default True
        False freezes the layer: inference-mode statistics and no updates, as in Keras.
    input_shape : tuple of int, optional
        Shape of one sample without the batch axis, when this is the model's first layer.

    Shapes: ``x, y (n, d)`` or ``(n, h, w, d)`` (any rank: the features are the last axis);
    ``gamma, beta, moving_mean, moving_variance (d,)``. The weights, in
    ``get_weights`` order: gamma, beta (trainable), moving_mean, moving_variance (not).
    """

    def __init__(
        self,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ):
        value = as_float(momentum)
        if value is None or not 0 <= value < 1:
            raise ValueError(
                f"momentum must be a number in [0, 1), received momentum={momentum!r}."
            )
        self.momentum = value
        super().__init__(
            epsilon,
            center,
            scale,
            beta_initializer,
            gamma_initializer,
            name,
            trainable,
            input_shape,
        )
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        # under data parallelism, the sums over the global batch (set by the sharded engine)
        self.sync: Any = None

    def build(self, input_dim, backend, rng, dtype):
        super().build(input_dim, backend, rng, dtype)
        mean = self.moving_mean_initializer((input_dim,), rng)
        var = self.moving_variance_initializer((input_dim,), rng)
        self.buffers = {
            "moving_mean": backend.asarray(mean, dtype),
            "moving_variance": backend.asarray(var, dtype),
        }

    def forward(self, x, training=False):
        self._check_input(x)
        xp = self.xp
        # a frozen layer normalises as in inference (Keras), and leaves its statistics alone
        self.batch_mode = training and self.trainable
        if self.batch_mode:
            mu = self._batch_mean(x)
            xc = x - mu
            var = self._batch_mean(xc * xc)
            m = self.momentum
            # rebound, not written in place: JAX arrays are immutable
            self.buffers["moving_mean"] = m * self.buffers["moving_mean"] + (1.0 - m) * mu
            self.buffers["moving_variance"] = m * self.buffers["moving_variance"] + (1.0 - m) * var
        else:
            xc = x - self.buffers["moving_mean"]
            var = self.buffers["moving_variance"]
        self.inv_std = 1.0 / xp.sqrt(var + self.epsilon)
        self.xhat = xc * self.inv_std
        self._has_forward = True
        return self._affine(self.xhat)

    def backward(self, dy):
        self._check_forward_done()
        dxhat = self._affine_backward(dy)
        if not self.need_dx:
            return None
        if not self.batch_mode:  # the statistics were constants
            return dxhat * self.inv_std
        xhat = self.xhat
        return (
            dxhat - self._grad_mean(dxhat) - xhat * self._grad_mean(dxhat * xhat)
        ) * self.inv_std

    def _batch_mean(self, a: Array) -> Array:
        """The mean over every axis but the features.

        Over the batch's rows (every rank's rows under data parallelism), and over the pixels
        of images.
        """
        if self.sync is None:
            return self.xp.mean(a, axis=tuple(range(a.ndim - 1)))
        return self.sync.batch_mean(self._row_sums(a))

    def _grad_mean(self, a: Array) -> Array:
        """``_batch_mean`` of a gradient (each rank's gradients are of its own mean loss)."""
        if self.sync is None:
            return self.xp.mean(a, axis=tuple(range(a.ndim - 1)))
        return self.sync.grad_mean(self._row_sums(a))

    def _row_sums(self, a: Array) -> Array:
        """The sum over the rows of each row's mean over its pixels (``(d,)``).

        What the communicator turns into a mean over the global batch by dividing by the
        global number of rows: every image has the same number of pixels, so the mean of the
        rows' means is the mean over all the pixels of all the rows.
        """
        xp = self.xp
        if a.ndim > 2:
            a = xp.mean(a, axis=tuple(range(1, a.ndim - 1)))
        return xp.sum(a, axis=0)

    def get_config(self):
        return self._with_trainable(
            {
                **self._config(),
                "momentum": self.momentum,
                "moving_mean_initializer": _initializer_config(self.moving_mean_initializer),
                "moving_variance_initializer": _initializer_config(
                    self.moving_variance_initializer
                ),
            }
        )


class LayerNormalization(_Normalization):
    r"""Layer normalization (Ba, Kiros & Hinton, 2016): each row standardised over its features.

    forward, per row (per position of the leading axes on inputs of higher rank), over its d
    features on the last axis (Keras's default axis=-1; the same in training and inference):
        mu = mean(x),  var = mean((x - mu)^2),  xhat = (x - mu) / sqrt(var + eps)
        y = gamma * xhat + beta
    backward, with dxhat = dy * gamma:
        dbeta = sum(dy),  dgamma = sum(dy * xhat)      (over the batch)
        dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)   (per row)

    Parameters
    ----------
    epsilon : float, default 1e-3
        Added to the variance, > 0.
    center, scale : bool, default True
        Whether the layer has ``beta`` and ``gamma``.
    beta_initializer, gamma_initializer
        Keras's defaults: zeros, ones.
    name : str, optional
        The layer's name (``layer_normalization``, ... by default).
    trainable : bool, default True
        False freezes ``gamma`` and ``beta``.
    input_shape : tuple of int, optional
        Shape of one sample without the batch axis, when this is the model's first layer.

    Shapes: ``x, y (n, ..., d)``; ``gamma, beta (d,)``; the statistics ``(n, ..., 1)``.
    """

    def __init__(
        self,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ):
        super().__init__(
            epsilon,
            center,
            scale,
            beta_initializer,
            gamma_initializer,
            name,
            trainable,
            input_shape,
        )

    def forward(self, x, training=False):
        self._check_input(x)
        xp = self.xp
        mu = xp.mean(x, axis=-1, keepdims=True)
        xc = x - mu
        var = xp.mean(xc * xc, axis=-1, keepdims=True)
        self.inv_std = 1.0 / xp.sqrt(var + self.epsilon)
        self.xhat = xc * self.inv_std
        self._has_forward = True
        return self._affine(self.xhat)

    def backward(self, dy):
        self._check_forward_done()
        xp, xhat = self.xp, self.xhat
        dxhat = self._affine_backward(dy)
        if not self.need_dx:
            return None
        mean = lambda a: xp.mean(a, axis=-1, keepdims=True)  # noqa: E731  (over the features)
        return (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) * self.inv_std

    def get_config(self):
        return self._with_trainable(self._config())
