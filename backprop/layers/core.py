"""Layers: each a forward pass that caches what its backward pass needs.

The contract every layer keeps (checked for all of them in ``tests/test_layers.py``):

- ``params`` and ``grads`` are dicts with the same keys; ``backward`` overwrites ``grads``.
- ``forward(x, training)`` returns ``y`` and caches what backward needs, under names from
  the math; ``backward(dy)`` returns ``dx = dL/dx`` given ``dy = dL/dy``.
- Samples are rows: ``x`` has shape ``(n, in_dim)``, ``y`` has shape ``(n, out_dim)``.

A layer ending in an activation (``Dense``, ``Activation``) also exposes ``z`` (the logits of
the last forward pass) and ``backward_from_logits(dz)``: the model uses them to fuse the output
activation with its loss (sigmoid + binary cross-entropy, softmax + categorical cross-entropy),
whose combined gradient ``dz = (y_hat - y) / n`` is exact and never overflows.
"""

from __future__ import annotations

import re
from typing import Any

from .. import activations as _activations
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._checks import as_float, as_int, check_bool

Array = Any


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        A name for summaries and saved files; by default the class name and a counter.

    Raises
    ------
    TypeError
        If ``name`` is not a string.

    Attributes
    ----------
    params : dict[str, Array]
        The arrays the loss is differentiated by, e.g. ``{"W": ..., "b": ...}``.
    grads : dict[str, Array]
        ``dL/dparam`` from the last ``backward``, same keys as ``params``.
    buffers : dict[str, Array]
        Weights that are never trained (BatchNormalization's moving statistics); they follow
        ``params`` in :meth:`Sequential.get_weights`, as Keras's non-trainable weights do.
    trainable : bool
        False freezes the layer: the optimizer never updates its ``params`` (and a frozen
        BatchNormalization normalises with its moving statistics, as in Keras).
    """

    def __init__(self, name: str | None = None, trainable: bool = True):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, received {type(name).__name__}.")
        # Keras's default names: the class name in snake case (batch_normalization, dense_1)
        self.name = name or _auto_name(re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower())
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}
        # views of the model's flat gradient vector, where backward writes (see _store_grad)
        self._grad_views: dict[str, Array] = {}
        self.trainable = trainable
        self.backend = None
        self.xp = None
        self.input_dim: int | None = None
        self._has_forward = False
        # whether backward returns dL/dx; the model turns it off for its first layer in fit
        self.need_dx = True

    @property
    def trainable(self) -> bool:
        """Whether the optimizer updates this layer's ``params`` (Keras's ``layer.trainable``).

        The model reads it when it compiles and when it trains: set it before ``compile``.
        """
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = check_bool(value, "trainable")

    # -- building ---------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        """Whether ``build`` has run (the layer has its input size and its arrays)."""
        return self.backend is not None

    def build(self, input_dim: int, backend: Any, rng: Any, dtype: Any) -> None:
        """Create the parameters for inputs of ``input_dim`` features on ``backend``.

        Parameters
        ----------
        input_dim : int
            Number of input features.
        backend : backprop.backend.Backend
            Where the arrays live.
        rng : numpy.random.Generator
            Seeded host generator for initial values and random masks.
        dtype : dtype
            Floating dtype of the backend's namespace.
        """
        self.input_dim, self.backend, self.xp, self.dtype, self.rng = (
            input_dim,
            backend,
            backend.xp,
            dtype,
            rng,
        )

    def output_dim(self, input_dim: int) -> int:
        """Number of output features for ``input_dim`` input features.

        Parameters
        ----------
        input_dim : int
            Number of input features.

        Returns
        -------
        int
            Number of output features (``input_dim`` unless the layer changes it).
        """
        return input_dim

    # -- the math -----------------------------------------------------------------------------
    def forward(self, x: Array, training: bool = False) -> Array:
        """The forward pass ``y = f(x)`` for a batch ``x`` of shape ``(n, in_dim)``.

        Parameters
        ----------
        x : array, shape (n, in_dim)
            A batch of inputs.
        training : bool, default False
            Whether this is a training step (dropout masks only then); caches what ``backward``
            needs.

        Returns
        -------
        y : array, shape (n, out_dim)
            The outputs.
        """
        raise NotImplementedError

    def backward(self, dy: Array) -> Array:
        """The backward pass: ``dx = dL/dx`` from ``dy = dL/dy``; fills ``grads``.

        Parameters
        ----------
        dy : array, shape (n, out_dim)
            ``dL/dy``, the gradient of the loss with respect to the last ``forward`` output.

        Returns
        -------
        dx : array, shape (n, in_dim)
            ``dL/dx``, the gradient with respect to the last ``forward`` input.

        Raises
        ------
        RuntimeError
            If called before ``forward``.
        """
        raise NotImplementedError

    def _store_grad(self, k: str, g: Array) -> None:
        """``grads[k] = g``, written into the model's flat gradient vector where it has one.

        The optimizer reads every gradient from one flat vector: writing into its views spares
        a concatenation per step, and keeps each step's writes at fixed addresses, which a
        step recorded once and replayed (a CUDA graph) needs. Immutable arrays (JAX) and
        layers outside a model rebind instead.
        """
        out = self._grad_views.get(k)
        if out is None:
            self.grads[k] = g
        else:
            out[...] = g
            self.grads[k] = out

    def penalty(self) -> Array | None:
        """Regularization added to the loss (None when the layer has none).

        Returns
        -------
        array, shape () or None
            The penalty, a 0-d array, or None.
        """
        return None

    def _check_forward_done(self) -> None:
        if not self._has_forward:
            raise RuntimeError(
                f"{self.name}.backward() called before forward(): run forward(x, training=True) "
                "first, it caches what the backward pass needs."
            )

    def _check_built(self) -> None:
        if not self.built:
            raise RuntimeError(
                f"{self.name} is not built: add it to a Sequential model, or call "
                "build(input_dim, backend, rng, dtype)."
            )

    # -- description ------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as plain JSON-able values.

        Returns
        -------
        dict
            ``{"name": ...}`` plus the other constructor arguments (``"trainable": False``
            for a frozen layer).
        """
        return self._with_trainable({"name": self.name})

    def _with_trainable(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` plus ``"trainable": False`` for a frozen layer.

        The key is absent when True, so the configs and files of trainable layers keep their
        shape.
        """
        return config if self.trainable else {**config, "trainable": False}

    def count_params(self) -> int:
        """Number of scalars in the layer's weights, trainable or not (as Keras counts).

        Returns
        -------
        int
            The total size of the arrays in ``params`` and ``buffers``.
        """
        total = 0
        for p in [*self.params.values(), *self.buffers.values()]:
            size = 1
            for d in p.shape:
                size *= d
            total += size
        return total

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


_counters: dict[str, int] = {}


def _auto_name(prefix: str) -> str:
    _counters[prefix] = _counters.get(prefix, 0) + 1
    n = _counters[prefix]
    return prefix if n == 1 else f"{prefix}_{n - 1}"


def _check_positive_int(value: Any, what: str, allow_none: bool = False) -> int | None:
    """``value`` as a Python int (NumPy integers accepted), or None when allowed."""
    if value is None and allow_none:
        return None
    n = as_int(value)
    if n is None or n <= 0:
        raise ValueError(
            f"Expected {what} to be a positive integer"
            f"{' or None' if allow_none else ''}, received {what}={value!r}."
        )
    return n


class Dense(Layer):
    r"""Fully connected layer: ``y = g(x @ W + b)``.

    forward:   z = x @ W + b,            y = g(z)
    backward:  dz = dy * g'(z),          dW = x.T @ dz,  db = sum(dz, axis=0),  dx = dz @ W.T

    Parameters
    ----------
    units : int
        Output features (columns of W).
    activation : str or ActivationFunction, optional
        ``g``; None means linear.
    input_dim : int, optional
        Input features; needed on the first layer only to build before seeing data.
    kernel_initializer, bias_initializer : str or Initializer
        Keras defaults: ``"glorot_uniform"`` and ``"zeros"``.
    kernel_regularizer : str or Regularizer, optional
        Penalty on W added to the loss.
    use_bias : bool
        Whether the layer has ``b``.

    Shapes: ``x (n, in)``, ``W (in, out)``, ``b (out,)``, ``z, y (n, out)``.
    """

    def __init__(
        self,
        units: int,
        activation: str | _activations.ActivationFunction | None = None,
        input_dim: int | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        use_bias: bool = True,
        name: str | None = None,
        trainable: bool = True,
    ):
        units = _check_positive_int(units, "units")
        input_dim = _check_positive_int(input_dim, "input_dim", allow_none=True)
        super().__init__(name, trainable)
        self.units = units
        self.activation = _activations.get(activation)
        self.input_dim = input_dim
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.use_bias = check_bool(use_bias, "use_bias")

    def build(self, input_dim, backend, rng, dtype):
        """Draw ``W (input_dim, units)`` and ``b (units,)`` on the host; move them to the device.

        Parameters
        ----------
        input_dim : int
            Number of input features.
        backend : backprop.backend.Backend
            Where the arrays live.
        rng : numpy.random.Generator
            Seeded host generator for the initial values.
        dtype : dtype
            Floating dtype of the backend's namespace.
        """
        super().build(input_dim, backend, rng, dtype)
        W = self.kernel_initializer((input_dim, self.units), rng)
        self.params = {"W": backend.asarray(W, dtype=dtype)}
        if self.use_bias:
            self.params["b"] = backend.asarray(self.bias_initializer((self.units,), rng), dtype)
        self.grads = {}

    def output_dim(self, input_dim):
        return self.units

    def forward(self, x, training=False):
        self._check_built()
        xp = self.xp
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(
                f"{self.name} expected input of shape (n, {self.input_dim}), "
                f"received shape {tuple(x.shape)}."
            )
        z = xp.matmul(x, self.params["W"])  # xp.matmul: a recorded step may route it (backend)
        if self.use_bias:
            z = z + self.params["b"]
        self.x, self.z = x, z
        self.y = self.activation.forward(z, self.xp)
        self._has_forward = True
        return self.y

    def backward(self, dy):
        self._check_forward_done()
        return self.backward_from_logits(self.activation.backward(dy, self.z, self.y, self.xp))

    def backward_from_logits(self, dz: Array) -> Array | None:
        """The backward pass from ``dz = dL/dz`` (used when the loss is fused with g).

        Returns None instead of ``dx`` when ``need_dx`` is False: the model's first layer does
        not need the gradient of the data.

        Parameters
        ----------
        dz : array, shape (n, units)
            ``dL/dz``, the gradient with respect to the pre-activations ``z = x W + b``.

        Returns
        -------
        dx : array, shape (n, input_dim) or None
            ``dL/dx = dz W^T``; None when ``need_dx`` is False. Fills ``grads["W"]``
            (shape ``(input_dim, units)``) and ``grads["b"]`` (shape ``(units,)``).
        """
        self._check_forward_done()
        xp, W = self.xp, self.params["W"]
        dW = xp.matmul(self.x.T, dz)
        if self.kernel_regularizer is not None:
            dW = dW + self.kernel_regularizer.gradient(W, xp)
        self._store_grad("W", dW)
        if self.use_bias:
            # b was broadcast over the batch, so its gradient sums over it.
            self._store_grad("b", xp.sum(dz, axis=0))
        return xp.matmul(dz, W.T) if self.need_dx else None

    def penalty(self):
        if self.kernel_regularizer is None:
            return None
        return self.kernel_regularizer.penalty(self.params["W"], self.xp)

    def get_config(self):
        return self._with_trainable(
            {
                "name": self.name,
                "units": self.units,
                "activation": self.activation.get_config(),
                "input_dim": self.input_dim,
                "kernel_initializer": _initializer_config(self.kernel_initializer),
                "bias_initializer": _initializer_config(self.bias_initializer),
                "kernel_regularizer": None
                if self.kernel_regularizer is None
                else self.kernel_regularizer.get_config(),
                "use_bias": self.use_bias,
            }
        )


def _initializer_config(init: Any) -> Any:
    """The config of an initializer; ``{"name": "custom", ...}`` for one no config can name.

    A function, or an Initializer whose config would rebuild another class (a subclass that
    keeps a built-in's name), is recorded by name only: a model file holds no code. Its saved
    weights are the values on loading; rebuilding it elsewhere is refused (:func:`from_config`).
    """
    if isinstance(init, _Unresolvable):
        return dict(init.config)
    if isinstance(init, _initializers.Initializer):
        config = init.get_config()
        if _initializers._known().get(str(config.get("name", "")).lower()) is type(init):
            return config
        return {"name": "custom", "function": type(init).__name__, "kind": "class"}
    return {"name": "custom", "function": getattr(init, "__name__", repr(init))}


class _Unresolvable(_initializers.Initializer):
    """Stands for an initializer a config could not name; drawing from it is refused.

    What :func:`from_config` puts in place of a ``{"name": "custom"}`` entry. Loading a model
    draws nothing (the saved weights are the values), so a loaded layer works with it; a new
    model built from the config must draw, and is told how to give it an initializer.
    """

    def __init__(self, layer: str, argument: str, config: dict[str, Any]):
        self.layer, self.argument, self.config = layer, argument, dict(config)

    def __call__(self, shape, rng):
        what = self.config.get("function", "?")
        kind = (
            f"an instance of {what}, whose config names another initializer"
            if self.config.get("kind") == "class"
            else f"the function {what!r}"
        )
        raise ValueError(
            f"{self.layer} cannot draw its initial values: its {self.argument} is {kind}, "
            "which a config cannot hold, and no default is substituted for it. Pass the "
            f"initializer itself ({self.argument}=...) when making the layer, or write it "
            "as a subclass of bp.initializers.Initializer with a name of its own and a "
            "get_config(): a config names such a class, and from_config and bp.load find it "
            "(defining the class registers it)."
        )

    def get_config(self):
        return dict(self.config)

    def __repr__(self) -> str:
        return f"<unresolvable initializer {self.config.get('function', '?')}>"


class Activation(Layer):
    """Applies an activation function: ``y = g(x)``; backward ``dx = dy * g'(x)``.

    Parameters
    ----------
    activation : str or ActivationFunction
        ``"relu"``, ``"sigmoid"``, ``"softmax"``, ...
    """

    def __init__(
        self,
        activation: str | _activations.ActivationFunction,
        name: str | None = None,
        trainable: bool = True,
    ):
        super().__init__(name, trainable)
        self.activation = _activations.get(activation)

    def forward(self, x, training=False):
        self._check_built()
        self.z = x
        self.y = self.activation.forward(x, self.xp)
        self._has_forward = True
        return self.y

    def backward(self, dy):
        self._check_forward_done()
        return self.activation.backward(dy, self.z, self.y, self.xp)

    def backward_from_logits(self, dz: Array) -> Array:
        """Fused output activation: the loss already gave dL/dz, the gradient of this input.

        Parameters
        ----------
        dz : array, shape (n, k)
            ``dL/dz`` from the fused loss.

        Returns
        -------
        array, shape (n, k)
            ``dz`` itself.
        """
        self._check_forward_done()
        return dz

    def get_config(self):
        return self._with_trainable({"name": self.name, "activation": self.activation.get_config()})


class Dropout(Layer):
    """Inverted dropout: zero each input with probability ``rate`` while training.

    forward (training):  m = (u >= rate) / (1 - rate),  u ~ U[0, 1);   y = x * m
    forward (inference): y = x
    backward:            dx = dy * m

    Scaling the kept units by 1/(1 - rate) while training keeps E[y] = x, so inference needs
    no rescaling.

    Parameters
    ----------
    rate : float
        Fraction of inputs to drop, in [0, 1).
    """

    def __init__(self, rate: float, name: str | None = None, trainable: bool = True):
        value = as_float(rate)
        if value is None or not 0 <= value < 1:
            raise ValueError(f"Dropout rate must be a float in [0, 1), received rate={rate!r}.")
        super().__init__(name, trainable)
        self.rate = value

    def forward(self, x, training=False):
        self._check_built()
        self._has_forward = True
        if not training or self.rate == 0.0:
            self.mask = None
            return x
        u = self.backend.random_uniform(self.rng, tuple(x.shape), x.dtype)
        self.mask = self.xp.astype(u >= self.rate, x.dtype) / (1.0 - self.rate)
        return x * self.mask

    def backward(self, dy):
        self._check_forward_done()
        return dy if self.mask is None else dy * self.mask

    def get_config(self):
        return self._with_trainable({"name": self.name, "rate": self.rate})


def _check_epsilon(epsilon: Any) -> float:
    value = as_float(epsilon)
    if value is None or not value > 0 or value == float("inf"):
        raise ValueError(f"epsilon must be a positive number, received epsilon={epsilon!r}.")
    return value


class _Normalization(Layer):
    """What BatchNormalization and LayerNormalization share: ``y = gamma * xhat + beta``.

    ``xhat`` is ``x`` standardised over the batch (BatchNormalization) or over the features
    (LayerNormalization); ``gamma`` (``scale=True``) and ``beta`` (``center=True``) have one
    entry per feature. Shapes: ``x, xhat, y (n, d)``, ``gamma, beta (d,)``.
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
    ):
        self.epsilon = _check_epsilon(epsilon)
        super().__init__(name, trainable)
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
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(
                f"{self.name} expected input of shape (n, {self.input_dim}), "
                f"received shape {tuple(x.shape)}."
            )

    def _affine(self, xhat: Array) -> Array:
        """``y = gamma * xhat + beta``."""
        y = xhat * self.params["gamma"] if self.scale else xhat
        return y + self.params["beta"] if self.center else y

    def _affine_backward(self, dy: Array) -> Array:
        """``dgamma = sum(dy * xhat)``, ``dbeta = sum(dy)`` over the batch; returns ``dxhat``."""
        xp = self.xp
        if self.center:
            self._store_grad("beta", xp.sum(dy, axis=0))
        if self.scale:
            self._store_grad("gamma", xp.sum(dy * self.xhat, axis=0))
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

    forward (training), over the batch's n rows, per feature:
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

    Shapes: ``x, y (n, d)``; ``gamma, beta, moving_mean, moving_variance (d,)``. The weights, in
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
    ):
        value = as_float(momentum)
        if value is None or not 0 <= value < 1:
            raise ValueError(
                f"momentum must be a number in [0, 1), received momentum={momentum!r}."
            )
        self.momentum = value
        super().__init__(
            epsilon, center, scale, beta_initializer, gamma_initializer, name, trainable
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
        """The mean over the batch's rows (over every rank's rows under data parallelism)."""
        if self.sync is None:
            return self.xp.mean(a, axis=0)
        return self.sync.batch_mean(self.xp.sum(a, axis=0))

    def _grad_mean(self, a: Array) -> Array:
        """``_batch_mean`` of a gradient (each rank's gradients are of its own mean loss)."""
        if self.sync is None:
            return self.xp.mean(a, axis=0)
        return self.sync.grad_mean(self.xp.sum(a, axis=0))

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

    forward, per row, over its d features (the same in training and inference):
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

    Shapes: ``x, y (n, d)``; ``gamma, beta (d,)``; the statistics ``(n, 1)``.
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
    ):
        super().__init__(
            epsilon, center, scale, beta_initializer, gamma_initializer, name, trainable
        )

    def forward(self, x, training=False):
        self._check_input(x)
        xp = self.xp
        mu = xp.mean(x, axis=1, keepdims=True)
        xc = x - mu
        var = xp.mean(xc * xc, axis=1, keepdims=True)
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
        mean = lambda a: xp.mean(a, axis=1, keepdims=True)  # noqa: E731  (over the features)
        return (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) * self.inv_std

    def get_config(self):
        return self._with_trainable(self._config())


_REGISTRY = {
    cls.__name__: cls
    for cls in (Dense, Activation, Dropout, BatchNormalization, LayerNormalization)
}


def _known_layers() -> dict[str, type[Layer]]:
    """The built-in layers, then every subclass of Layer defined in this process.

    Only classes that already exist can be named: a model file never imports or runs code.
    A custom layer must return its constructor's arguments from ``get_config`` (as in Keras).
    """
    known, todo = dict(_REGISTRY), list(Layer.__subclasses__())
    while todo:
        cls = todo.pop()
        known.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return known


def from_config(class_name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``type(layer).__name__`` and ``layer.get_config()``.

    Parameters
    ----------
    class_name : str
        The class name, e.g. ``"Dense"``: a built-in layer or a subclass of ``Layer`` already
        defined in this process.
    config : dict
        Its constructor arguments, as ``get_config`` returns them.

    Returns
    -------
    Layer
        A new, unbuilt layer.

    Raises
    ------
    ValueError
        For an unknown class name.
    """
    known = _known_layers()
    if class_name not in known:
        public = sorted(n for n in known if not n.startswith("_"))
        raise ValueError(f"Unknown layer class {class_name!r}. Expected one of {public}.")
    config = dict(config)
    for key in (
        "kernel_initializer",
        "bias_initializer",
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
    ):
        # a user's function cannot be stored: a stand-in that refuses to draw, never a
        # default (loading draws nothing, so a loaded layer is whole without it)
        if isinstance(config.get(key), dict) and config[key].get("name") == "custom":
            config[key] = _Unresolvable(class_name, key, config[key])
    return known[class_name](**config)
