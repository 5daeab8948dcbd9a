"""Core layers: the base class ``Layer``, ``Dense`` and ``Activation``.

Also the helpers every kind of layer shares: default names (``_auto_name``), argument checks
(``_check_positive_int``) and the configs of initializers (``_initializer_config``, with the
stand-in ``_Unresolvable`` for one a config cannot name). The other modules of
``backprop.layers`` build on these; this one imports none of them. The contract every layer
keeps, and what ``Dense`` and ``Activation`` add for the fused output activation
(``z``, ``backward_from_logits``), is in the package's docstring (``backprop.layers``).
"""

from __future__ import annotations

import re
from typing import Any

from .. import activations as _activations
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._checks import as_int, check_bool

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
    input_shape : tuple of int or None
        The shape of one sample this layer takes, without the batch axis (``(28, 28, 1)`` for
        images, ``(k,)`` for tables): given to the first layer (as in Keras), or recorded when
        the layer is built. ``input_dim`` is its last entry (the features a Dense layer reads).
    """

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, received {type(name).__name__}.")
        # Keras's default names: the class name in snake case (batch_normalization, dense_1)
        self.name = name or _auto_name(_snake_case(type(self).__name__))
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.buffers: dict[str, Array] = {}
        # views of the model's flat gradient vector, where backward writes (see _store_grad)
        self._grad_views: dict[str, Array] = {}
        self.trainable = trainable
        self.backend = None
        self.xp = None
        self.input_shape = _check_input_shape(input_shape, type(self).__name__)
        self._input_shape_arg = self.input_shape  # what get_config records
        self.input_dim: int | None = None if self.input_shape is None else self.input_shape[-1]
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
        if self.input_shape is None or self.input_shape[-1] != input_dim:
            self.input_shape = (input_dim,)

    def build_from_shape(
        self, input_shape: tuple[int, ...], backend: Any, rng: Any, dtype: Any
    ) -> None:
        """Create the parameters for samples of shape ``input_shape`` (no batch axis).

        The model builds every layer through this method. The default reads the features on
        the last axis, as Keras's Dense does: it records ``input_shape`` and calls
        :meth:`build` with ``input_shape[-1]``, so a layer that defines only ``build`` and
        ``output_dim`` works on inputs of any rank. A layer that sees the whole shape
        (Flatten, Conv2D) overrides it, and sets what :meth:`build` sets.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one sample, e.g. ``(28, 28, 1)`` or ``(k,)``.
        backend : backprop.backend.Backend
            Where the arrays live.
        rng : numpy.random.Generator
            Seeded host generator for initial values and random masks.
        dtype : dtype
            Floating dtype of the backend's namespace.
        """
        input_shape = tuple(int(d) for d in input_shape)
        self.build(input_shape[-1], backend, rng, dtype)
        self.input_shape = input_shape

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for input samples of shape ``input_shape`` (Keras's name).

        The default changes only the last axis, by :meth:`output_dim`.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one input sample, without the batch axis.

        Returns
        -------
        tuple of int
            Shape of one output sample, without the batch axis.
        """
        return (*input_shape[:-1], self.output_dim(input_shape[-1]))

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

    @property
    def constraints(self) -> dict[str, Any]:
        """The constraint of each weight that has one, by key of ``params``.

        Keras's ``kernel_constraint`` and ``bias_constraint``: the model applies
        ``W = c(W)`` to each after every optimizer step. Empty by default.

        Returns
        -------
        dict of str to Constraint or callable
        """
        return {}

    def _check_constraints(self) -> None:
        """Refuse, when built, a constraint with an axis its weight does not have."""
        arguments = {"W": "kernel_constraint", "b": "bias_constraint"}
        for k, c in self.constraints.items():
            check = getattr(c, "check", None)
            if k in self.params and check is not None:
                check(tuple(self.params[k].shape), f"{self.name}.{arguments.get(k, k)}")

    # -- weights ----------------------------------------------------------------------------
    def _weight_keys(self) -> list[tuple[str, str]]:
        """``(store, key)`` of each weight in Keras's order: params, then buffers."""
        return [(store, k) for store in ("params", "buffers") for k in getattr(self, store)]

    def get_weights(self) -> list:
        """Copies of this layer's weights as NumPy arrays, in Keras's order (Keras's name).

        The trainable weights, then the non-trainable ones: Dense and Conv2D give
        ``[kernel, bias]``, BatchNormalization ``[gamma, beta, moving_mean,
        moving_variance]``, a layer without weights (or not built yet) ``[]``.

        Returns
        -------
        list of numpy.ndarray
        """
        if not self.built:
            return []
        return [
            self.backend.to_numpy(getattr(self, store)[k]).copy()
            for store, k in self._weight_keys()
        ]

    def set_weights(self, weights: list) -> None:
        """Replace this layer's weights from a list shaped like :meth:`get_weights`.

        Every array is checked (count, shape, finite values) before any weight changes; in a
        model, the values are written into the model's flat parameter vector, so training,
        saving and ``model.get_weights()`` see them.

        Parameters
        ----------
        weights : list of array_like
            One array per weight, in :meth:`get_weights` order, of the same shapes.

        Raises
        ------
        ValueError
            For another number of arrays, another shape, or a NaN or infinity; the layer is
            left unchanged.
        """
        keys = self._weight_keys() if self.built else []
        if not isinstance(weights, list | tuple) or len(weights) != len(keys):
            received = (
                f"{len(weights)} arrays"
                if isinstance(weights, list | tuple)
                else type(weights).__name__
            )
            names = [k for _, k in keys]
            raise ValueError(
                f"{self.name}.set_weights expects a list of {len(keys)} arrays {names} (as "
                f"get_weights returns), received {received}."
                + ("" if self.built else " The layer is not built: it has no weights yet.")
            )
        checked = []
        for (store, k), w in zip(keys, weights, strict=True):
            host = self.backend.to_numpy(w)
            expected = tuple(getattr(self, store)[k].shape)
            if tuple(host.shape) != expected:
                raise ValueError(
                    f"{self.name}.set_weights: {k} expects shape {expected}, received "
                    f"{tuple(host.shape)}."
                )
            if host.dtype.kind not in "iuf":
                raise ValueError(
                    f"{self.name}.set_weights: {k} expects real numbers, received an array "
                    f"of dtype {host.dtype}."
                )
            a = self.backend.asarray(host, self.dtype)
            # one check on the device, read once (arrays of a GPU are not converted silently)
            if not bool(self.backend.to_numpy(self.xp.all(self.xp.isfinite(a)))):
                raise ValueError(
                    f"{self.name}.set_weights: {k} holds NaN or infinite values; expected "
                    "finite numbers."
                )
            # a copy of its own: the layer never shares memory with the caller's array
            checked.append(((store, k), self.xp.asarray(a, copy=True) if a is host else a))
        owner = getattr(self, "_flat_owner", None)
        model = owner() if owner is not None else None
        if model is not None and model._owns(self):
            model._assign_layer_weights(self, checked)
            return
        for (store, k), a in checked:
            getattr(self, store)[k] = a

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
        """``config`` plus ``"trainable": False`` and ``input_shape`` where they apply.

        ``"trainable": False`` for a frozen layer, and the ``input_shape`` the layer was made
        with (as Keras records it on the first layer). Each key is absent when it has its
        default (trainable, no input_shape given), so the configs and files of earlier layers
        keep their shape.
        """
        if self._input_shape_arg is not None:
            config = {**config, "input_shape": list(self._input_shape_arg)}
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


def _snake_case(name: str) -> str:
    """Keras's rule: Dense -> dense, Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _auto_name(prefix: str) -> str:
    _counters[prefix] = _counters.get(prefix, 0) + 1
    n = _counters[prefix]
    return prefix if n == 1 else f"{prefix}_{n - 1}"


def _check_input_shape(shape: Any, layer: str) -> tuple[int, ...] | None:
    """``shape`` as a tuple of positive Python ints (None stays None), else a ValueError."""
    if shape is None:
        return None
    if isinstance(shape, int) or as_int(shape) is not None:
        shape = (shape,)  # input_shape=784 reads as (784,)
    entries = tuple(shape) if isinstance(shape, tuple | list) else None
    dims = None if entries is None else [as_int(d) for d in entries]
    if not entries or any(d is None or d <= 0 for d in dims):
        raise ValueError(
            f"{layer}: Expected input_shape to be a non-empty tuple of positive integers, the "
            f"shape of one sample without the batch axis, e.g. input_shape=(28, 28, 1); "
            f"received input_shape={shape!r}."
        )
    return tuple(dims)


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
        Input features; needed on the first layer only to build before seeing data. A short
        form of ``input_shape=(input_dim,)``.
    kernel_initializer, bias_initializer : str or Initializer
        Keras defaults: ``"glorot_uniform"`` and ``"zeros"``.
    kernel_regularizer : str or Regularizer, optional
        Penalty on W added to the loss.
    use_bias : bool
        Whether the layer has ``b``.
    input_shape : tuple of int, optional
        Shape of one input sample, as in Keras (the first layer only).
    kernel_constraint, bias_constraint : str, dict, Constraint or callable, optional
        Applied to W and b after each optimizer step, as in Keras (``"max_norm"``,
        ``bp.constraints.MaxNorm(3.0)``, ...; :mod:`backprop.constraints`); not part of the
        loss, so the gradients do not see them.

    Shapes: ``x (n, in)``, ``W (in, out)``, ``b (out,)``, ``z, y (n, out)``. On an input of
    higher rank ``(n, ..., in)`` the layer acts on the last axis, as Keras's Dense does:
    ``z (n, ..., out)``, and the sums of the gradients of ``W`` and ``b`` run over every
    axis but the last (each position is one more row of the same product).
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
        input_shape: tuple[int, ...] | None = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
    ):
        units = _check_positive_int(units, "units")
        input_dim = _check_positive_int(input_dim, "input_dim", allow_none=True)
        super().__init__(name, trainable, input_shape)
        shape = self.input_shape
        if input_dim is not None and shape is not None and input_dim != shape[-1]:
            raise ValueError(
                f"{self.name}: input_dim={input_dim} and input_shape={self.input_shape} "
                "disagree (input_dim is the last entry of input_shape); give one of them."
            )
        self.units = units
        self.activation = _activations.get(activation)
        if input_dim is not None:
            self.input_dim, self.input_shape = input_dim, self.input_shape or (input_dim,)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_constraint = _constraints.get(kernel_constraint, "kernel_constraint")
        self.bias_constraint = _constraints.get(bias_constraint, "bias_constraint")

    @property
    def constraints(self):
        return _weight_constraints(self)

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
        self._check_constraints()

    def output_dim(self, input_dim):
        return self.units

    def forward(self, x, training=False):
        self._check_built()
        xp = self.xp
        if tuple(x.shape[1:]) != self.input_shape:
            expected = ", ".join(str(d) for d in ("n", *self.input_shape))
            raise ValueError(
                f"{self.name} expected input of shape ({expected}), "
                f"received shape {tuple(x.shape)}."
            )
        # on (n, ..., in) matmul broadcasts W over the leading axes: Dense on the last axis
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
        if dz.ndim > 2:
            return self._backward_from_positions(dz)
        xp, W = self.xp, self.params["W"]
        dW = xp.matmul(self.x.T, dz)
        if self.kernel_regularizer is not None:
            dW = dW + self.kernel_regularizer.gradient(W, xp)
        self._store_grad("W", dW)
        if self.use_bias:
            # b was broadcast over the batch, so its gradient sums over it.
            self._store_grad("b", xp.sum(dz, axis=0))
        return xp.matmul(dz, W.T) if self.need_dx else None

    def _backward_from_positions(self, dz: Array) -> Array | None:
        """The backward pass on an input ``(n, ..., in)``: each position is one more row.

        ``z = x @ W + b`` acts on the last axis, so over the rows ``(n * ..., in)`` of ``x``
        it is the 2-D product: the gradients of ``W`` and ``b`` sum over every position, and
        ``dx`` goes back to the shape of ``x``.
        """
        xp, x = self.xp, self.x
        self.x = xp.reshape(x, (-1, self.input_dim))
        try:
            dx = self.backward_from_logits(xp.reshape(dz, (-1, self.units)))
        finally:
            self.x = x
        return None if dx is None else xp.reshape(dx, tuple(x.shape))

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
                **_constraint_configs(self),
            }
        )


def _weight_constraints(layer: Layer) -> dict[str, Any]:
    """``{"W": kernel_constraint, "b": bias_constraint}``, the ones that are set."""
    pairs = (("W", layer.kernel_constraint), ("b", layer.bias_constraint))
    return {k: c for k, c in pairs if c is not None}


def _constraint_configs(layer: Layer) -> dict[str, Any]:
    """The ``kernel_constraint`` and ``bias_constraint`` entries of a config, where set.

    Absent when None (their default), so the configs and files of layers without
    constraints keep the shape they had before constraints existed.
    """
    config = {}
    for argument in ("kernel_constraint", "bias_constraint"):
        constraint = getattr(layer, argument)
        if constraint is not None:
            config[argument] = _constraints.get_config(constraint)
    return config


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
        input_shape: tuple[int, ...] | None = None,
    ):
        super().__init__(name, trainable, input_shape)
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
