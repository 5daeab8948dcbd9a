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

from typing import Any

from . import activations as _activations
from . import initializers as _initializers
from . import regularizers as _regularizers
from ._checks import as_float, as_int

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
        Trainable arrays, e.g. ``{"W": ..., "b": ...}``.
    grads : dict[str, Array]
        ``dL/dparam`` from the last ``backward``, same keys as ``params``.
    """

    def __init__(self, name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, received {type(name).__name__}.")
        self.name = name or _auto_name(type(self).__name__.lower())
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.backend = None
        self.xp = None
        self.input_dim: int | None = None
        self._has_forward = False
        # whether backward returns dL/dx; the model turns it off for its first layer in fit
        self.need_dx = True

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
            ``{"name": ...}`` plus the other constructor arguments.
        """
        return {"name": self.name}

    def count_params(self) -> int:
        """Number of scalar parameters.

        Returns
        -------
        int
            The total size of the arrays in ``params``.
        """
        total = 0
        for p in self.params.values():
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
    ):
        units = _check_positive_int(units, "units")
        input_dim = _check_positive_int(input_dim, "input_dim", allow_none=True)
        super().__init__(name)
        self.units = units
        self.activation = _activations.get(activation)
        self.input_dim = input_dim
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.use_bias = bool(use_bias)

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
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(
                f"{self.name} expected input of shape (n, {self.input_dim}), "
                f"received shape {tuple(x.shape)}."
            )
        z = x @ self.params["W"]
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
        dW = self.x.T @ dz
        if self.kernel_regularizer is not None:
            dW = dW + self.kernel_regularizer.gradient(W, xp)
        self.grads["W"] = dW
        if self.use_bias:
            # b was broadcast over the batch, so its gradient sums over it.
            self.grads["b"] = xp.sum(dz, axis=0)
        return dz @ W.T if self.need_dx else None

    def penalty(self):
        if self.kernel_regularizer is None:
            return None
        return self.kernel_regularizer.penalty(self.params["W"], self.xp)

    def get_config(self):
        return {
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


def _initializer_config(init: Any) -> Any:
    if isinstance(init, _initializers.Initializer):
        return init.get_config()
    return {"name": "custom", "function": getattr(init, "__name__", repr(init))}


class Activation(Layer):
    """Applies an activation function: ``y = g(x)``; backward ``dx = dy * g'(x)``.

    Parameters
    ----------
    activation : str or ActivationFunction
        ``"relu"``, ``"sigmoid"``, ``"softmax"``, ...
    """

    def __init__(self, activation: str | _activations.ActivationFunction, name: str | None = None):
        super().__init__(name)
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
        return {"name": self.name, "activation": self.activation.get_config()}


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

    def __init__(self, rate: float, name: str | None = None):
        value = as_float(rate)
        if value is None or not 0 <= value < 1:
            raise ValueError(f"Dropout rate must be a float in [0, 1), received rate={rate!r}.")
        super().__init__(name)
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
        return {"name": self.name, "rate": self.rate}


_REGISTRY = {cls.__name__: cls for cls in (Dense, Activation, Dropout)}


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
        raise ValueError(f"Unknown layer class {class_name!r}. Expected one of {sorted(known)}.")
    config = dict(config)
    for key in ("kernel_initializer", "bias_initializer"):
        # a user's function cannot be stored; the saved weights replace what it would draw
        if isinstance(config.get(key), dict) and config[key].get("name") == "custom":
            config[key] = "zeros"
    return known[class_name](**config)
