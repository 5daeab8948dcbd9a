"""The Sequential model: the network, a stack of layers, and its backpropagation.

One training step is the whole algorithm::

    y_hat = forward(x)                      # each layer caches what its backward needs
    L, dL/dy_hat = loss(y, y_hat)           # or dL/dz when the output activation is fused
    for layer in reversed(layers):          # the chain rule, layer by layer
        dy = layer.backward(dy)             # fills layer.grads
    params = optimizer.apply(params, grads)

This module is the network: its layers, their weights as views of one flat vector, forward
and backward, and its weights in and out. Training it (``compile``, ``fit``, ``evaluate``,
``predict``) is ``backprop.training``'s: the methods here hand over to it, as Keras's
``Model`` does to its trainer.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from typing import Any

from . import backend as _backend
from . import callbacks as _callbacks
from . import data as _data
from . import initializers as _initializers
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._checks import check_bool
from .rng import Streams
from .training import compilation as _compilation
from .training import loop as _loop
from .training import probe as _probe
from .training import step as _step
from .training.errors import DeadNetworkWarning, NonFiniteLossError

__all__ = ["DeadNetworkWarning", "NonFiniteLossError", "Sequential"]

Array = Any


def _on_device(method: Any) -> Any:
    """Run a method with the model's device current (CuPy computes on the current GPU)."""

    @functools.wraps(method)
    def wrapper(self: Sequential, *args: Any, **kwargs: Any) -> Any:
        with self.backend.activate():
            return method(self, *args, **kwargs)

    return wrapper


# each model's token: the layers and the optimizer it owns record it (ids can be reused)
_TOKENS = itertools.count()


@contextlib.contextmanager
def _initializers_replaced(layer: _layers.Layer, standin: Any) -> Any:
    """Build ``layer`` with ``standin`` in place of each of its initializers, then restore them."""
    held = {k: v for k, v in vars(layer).items() if isinstance(v, _initializers.Initializer)}
    try:
        for k in held:
            setattr(layer, k, standin)
        yield
    finally:
        for k, v in held.items():
            setattr(layer, k, v)


def _check_grad_shape(layer: Any, k: str, g: Any, shape: tuple) -> None:
    """A layer's gradient must have its parameter's shape (no silent broadcast into it)."""
    if tuple(g.shape) != shape:
        raise ValueError(
            f"{layer.name}.grads[{k!r}] has shape {tuple(g.shape)}; expected {shape}, the shape "
            f"of {layer.name}.params[{k!r}] (check the layer's backward)."
        )


class Sequential:
    """A linear stack of layers with a Keras-style API.

    Parameters
    ----------
    layers : list of Layer, optional
        The layers, first to last; more can be added with :meth:`add`.
    backend : str, optional
        ``"numpy"``, ``"cupy"``, ``"torch"``, ``"jax"``, ``"array_api_strict"`` (optionally
        ``"name:device"``); None takes the current backend (``use_backend``, ``set_backend``,
        ``BACKPROP_BACKEND``, else numpy).
    device : optional
        Device on that backend (``"cuda:1"``, ``0``, ``"device1"``, ...).
    dtype : {"float32", "float64"}
        Floating dtype of every parameter and activation.
    seed : int, optional
        Seeds the initial weights, the shuffling and the dropout masks (identical on every
        backend).
    capture : bool, default True
        On a GPU (CuPy, torch on CUDA), record each training step once as a CUDA graph and
        replay it (the same results, a fraction of the launch overhead); False steps eagerly.
        Models with Dropout or ``clipnorm`` always step eagerly. A setting of this process,
        like ``backend``: it is not saved with the model.

    Examples
    --------
    >>> import numpy as np, backprop as bp
    >>> model = bp.Sequential([bp.layers.Dense(3, "relu", input_dim=2),
    ...                        bp.layers.Dense(1, "sigmoid")], seed=0)
    >>> model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0]]); y = np.array([1, 0])
    >>> sorted(model.fit(X, y, epochs=2, verbose=0).history)
    ['accuracy', 'loss']
    """

    def __init__(
        self,
        layers: list[_layers.Layer] | None = None,
        *,
        backend: str | None = None,
        device: Any = None,
        dtype: str = "float32",
        seed: int | None = None,
        name: str = "sequential",
        capture: bool = True,
    ):
        self.capture = check_bool(capture, "capture")
        self.backend = _backend.resolve(backend, device)
        self._dtype_name = _backend._dtype_name(dtype)
        self.dtype = self.backend.dtype(self._dtype_name)
        self.xp = self.backend.xp
        self.streams = Streams(seed, self.backend)
        self.seed = self.streams.seed  # a Python int (or None) whatever integer was given
        self.name = name
        self.layers: list[_layers.Layer] = []
        self.loss: _losses.Loss | None = None
        self.optimizer: _optimizers.Optimizer | None = None
        self.metrics: list[tuple[str, _metrics.Metric]] = []
        self._metric_specs: list[str | _metrics.Metric] = []
        self._token = next(_TOKENS)
        self.stop_training = False
        self.history: _callbacks.History | None = None
        self._comm: Any = None  # a Communicator during data-parallel fit
        self._compiled: tuple | None = None  # (key, the compiled epoch)
        try:
            for layer in layers or []:
                self.add(layer)
        except BaseException:  # no model: the layers it took are free for another
            for layer in self.layers:
                layer._model_token = None
            raise

    # -- construction -------------------------------------------------------------------------
    def add(self, layer: _layers.Layer) -> None:
        """Append a layer; it is built now if the input size is already known.

        Parameters
        ----------
        layer : Layer
            The layer to append.
        """
        if not isinstance(layer, _layers.Layer):
            raise TypeError(
                f"Sequential.add expects a Layer such as bp.layers.Dense(4), received "
                f"{type(layer).__name__}."
            )
        if any(layer is other for other in self.layers):
            raise ValueError(f"Layer {layer.name!r} is already in this model.")
        owner = getattr(layer, "_model_token", None)
        if owner is not None and owner != self._token:
            # a layer's weights are views of its model's flat parameter vector: a second model
            # would re-point them at its own vector and leave the first one training nothing
            raise ValueError(
                f"Layer {layer.name!r} already belongs to another model: a layer's weights "
                "live in one model's parameter vector, so layers cannot be shared between "
                "models. Make new layers for this model, e.g. "
                "bp.layers.from_config(type(layer).__name__, layer.get_config()), or copy the "
                "weights with model2.set_weights(model1.get_weights())."
            )
        self.layers.append(layer)
        if self.input_dim is not None:  # the first layer knows its input: build what is new
            try:
                self.build(self.input_dim)
            except BaseException:  # a refused layer leaves the model as it was
                self.layers.pop()
                raise
        layer._model_token = self._token

    def _build_args(self, layer: _layers.Layer) -> tuple:
        rng = self.streams.dropout if isinstance(layer, _layers.Dropout) else self.streams.init
        return self.backend, rng, self.dtype

    @property
    def built(self) -> bool:
        """Whether every layer has its parameters."""
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def input_dim(self) -> int | None:
        """Number of input features (None before the model is built)."""
        return self.layers[0].input_dim if self.layers else None

    @property
    def output_dim(self) -> int:
        """Number of output units."""
        return self._out_dim_from(self.input_dim)

    def build(self, input_dim: int) -> None:
        """Create every layer's parameters for inputs of ``input_dim`` features.

        Parameters
        ----------
        input_dim : int
            Number of input features.
        """
        if not self.layers:
            raise ValueError("The model has no layers: add some with model.add(...) first.")
        _data.check_positive_int(input_dim, "input_dim")
        dim = input_dim
        for i, layer in enumerate(self.layers):
            if not layer.built:
                if i > 0 and layer.input_dim is not None and layer.input_dim != dim:
                    raise ValueError(
                        f"{layer.name} was given input_dim={layer.input_dim}, but the layer "
                        f"before it outputs {dim} features."
                    )
                layer.build(dim, *self._build_args(layer))
            dim = layer.output_dim(dim)
        self._collect_params()

    def _add_built(self, layers: list[_layers.Layer], weights: Any, standin: Any) -> None:
        """Add ``layers`` built with ``weights`` as their values, drawing no initial weights.

        What loading a model does: each layer is built with its initializers standing aside
        (nothing is drawn only to be overwritten), then given its arrays, one layer at a time,
        so that memory holds about one copy of the weights (the file's) plus one layer's.

        Parameters
        ----------
        layers : list of Layer
            New, unbuilt layers; the first one knows its ``input_dim``.
        weights : iterable of numpy.ndarray
            Every weight in :meth:`get_weights` order (each layer's params, then its buffers).
            An iterator that lets go of each array once yielded lets its memory go too.
        standin : callable
            ``standin(shape, rng) -> numpy.ndarray``, called in place of every initializer: it
            should draw nothing and touch no memory (``numpy.empty`` of the model's dtype).
        """
        if not layers or layers[0].input_dim is None:
            raise ValueError("the first layer has no input_dim")
        weights, dim = iter(weights), layers[0].input_dim
        for i, layer in enumerate(layers):
            if i > 0 and layer.input_dim is not None and layer.input_dim != dim:
                raise ValueError(
                    f"{layer.name} was given input_dim={layer.input_dim}, but the layer before "
                    f"it outputs {dim} features."
                )
            with _initializers_replaced(layer, standin):
                layer.build(dim, *self._build_args(layer))
            for store in ("params", "buffers"):
                arrays = getattr(layer, store)
                for k in list(arrays):
                    w = next(weights, None)
                    if w is None:
                        raise ValueError(f"no saved array for {layer.name}.{k}")
                    w = _data.as_array(w, f"weights for {layer.name}.{k}")
                    if tuple(w.shape) != tuple(arrays[k].shape):
                        raise ValueError(
                            f"{layer.name}.{k} expects shape {tuple(arrays[k].shape)}, "
                            f"received {tuple(w.shape)}."
                        )
                    arrays[k] = None  # the placeholder goes before its replacement comes
                    arrays[k] = self.backend.asarray(self.backend.to_numpy(w), self.dtype)
                    del w
            self.layers.append(layer)
            layer._model_token = self._token
            dim = layer.output_dim(dim)
        if next(weights, None) is not None:
            raise ValueError("more saved weight arrays than the layers have weights")
        self._collect_params()

    def _collect_params(self) -> None:
        """Pack every weight into one flat vector ``theta``; the layers hold views of it.

        One vector makes the optimizer's update a dozen whole-vector operations instead of a
        dozen per weight array, and the update, done in place, reaches every layer's view.
        """
        xp = self.xp
        # trainable weights go into theta; every weight, in Keras's order (each layer's params,
        # then its buffers), is what get_weights shows
        self._param_slots = [
            (layer, k) for layer in self.layers if layer.trainable for k in layer.params
        ]
        self._weight_slots = [
            (layer, store, k)
            for layer in self.layers
            for store in ("params", "buffers")
            for k in getattr(layer, store)
        ]
        # what theta does not hold: frozen layers' params and every buffer (moving statistics)
        self._buffer_slots = [
            (layer, store, k)
            for layer, store, k in self._weight_slots
            if store == "buffers" or not layer.trainable
        ]
        self._trainable_key = tuple(layer.trainable for layer in self.layers)
        params = [layer.params[k] for layer, k in self._param_slots]
        self._shapes = [tuple(p.shape) for p in params]
        self._bounds, start = [], 0
        for shape in self._shapes:
            self._bounds.append((start, start + math.prod(shape)))
            start += math.prod(shape)
        # a copy: the model never shares memory with arrays a user handed in
        self._theta = None
        if params and self.backend.mutable:
            del params  # each array is dropped once copied: about one copy of theta at a time
            self._theta = self.backend.zeros((start,), self.dtype)
            for (layer, k), (a, b) in zip(self._param_slots, self._bounds, strict=True):
                self._theta[a:b] = xp.reshape(layer.params[k], (-1,))
                layer.params[k] = self._theta[a:b]  # reshaped by _bind_views below
        elif params:  # immutable arrays (JAX): no slice to write into
            self._theta = xp.concat([xp.reshape(p, (-1,)) for p in params])
        self._bind_views()
        # the gradients' flat vector, laid out as theta: the layers write into its views, the
        # optimizer reads it whole (immutable arrays have no views to write into)
        for layer in self.layers:
            layer._grad_views = {}
        self._grad = None
        if self._theta is not None and self.backend.mutable:
            # zeros, not zeros_like: NumPy's zeros takes pages from the OS as they are written
            # (a loaded model used only to predict never holds a second copy)
            self._grad = self.backend.zeros(tuple(self._theta.shape), self._theta.dtype)
            for (layer, k), view in zip(self._param_slots, self._split(self._grad), strict=True):
                layer._grad_views[k] = layer.grads[k] = view

    def _bind_views(self, compiled: bool = True) -> None:
        split = self._compiled_split() if compiled else None
        views = self._split(self._theta) if split is None else split(self._theta)
        for (layer, k), view in zip(self._param_slots, views, strict=True):
            layer.params[k] = view

    def _split(self, theta: Array) -> list[Array]:
        """The weight arrays as views (slices) of the flat vector ``theta``."""
        xp = self.xp
        return [
            xp.reshape(theta[a:b], shape)
            for (a, b), shape in zip(self._bounds, self._shapes, strict=True)
        ]

    def _compiled_split(self) -> Any:
        """``_split`` as one compiled program where the backend compiles (JAX), else None.

        Immutable arrays cannot be views: each array is a slice copied out of ``theta``, and
        one compiled call costs less than a dozen eager slices and reshapes.
        """
        key = (self.backend, tuple(self._bounds))
        if getattr(self, "_splitter", (None, None))[0] != key:
            self._splitter = (key, self.backend.compile(self._split))
        return self._splitter[1]

    def _sync_trainable(self) -> None:
        """Re-pack theta when a layer was frozen or unfrozen since the last packing."""
        if self.built and self._trainable_key != tuple(layer.trainable for layer in self.layers):
            self._collect_params()

    def _get_buffers(self) -> list[Array]:
        """The weights outside theta (frozen params, moving statistics), in slot order."""
        return [getattr(layer, store)[k] for layer, store, k in self._buffer_slots]

    def _set_buffers(self, arrays: list[Array]) -> None:
        for (layer, store, k), a in zip(self._buffer_slots, arrays, strict=True):
            getattr(layer, store)[k] = a

    def _trainable_mask(self) -> list[bool]:
        """For each array of :meth:`get_weights`, whether the optimizer trains it."""
        return [store == "params" and layer.trainable for layer, store, _ in self._weight_slots]

    def _flat_grads(self) -> Array:
        """The gradient of theta: the flat vector the layers wrote into, or their concatenation.

        A layer that rebinds ``grads[k]`` instead of calling ``_store_grad`` (a custom layer
        written to the older contract) has its gradient copied into place.
        """
        xp = self.xp
        grads = [layer.grads[k] for layer, k in self._param_slots]
        if self._grad is None:
            for (layer, k), g, shape in zip(self._param_slots, grads, self._shapes, strict=True):
                _check_grad_shape(layer, k, g, shape)
            return xp.concat([g if g.ndim == 1 else xp.reshape(g, (-1,)) for g in grads])
        for (layer, k), g in zip(self._param_slots, grads, strict=True):
            view = layer._grad_views[k]
            if g is not view:
                _check_grad_shape(layer, k, g, tuple(view.shape))
                view[...] = g
                layer.grads[k] = view
        return self._grad

    # -- compile ------------------------------------------------------------------------------
    def compile(
        self,
        loss: str | _losses.Loss = "binary_crossentropy",
        optimizer: str | _optimizers.Optimizer = "adam",
        metrics: list[str | _metrics.Metric] | None = None,
    ) -> None:
        """Choose the loss, the optimizer and the metrics reported by ``fit``/``evaluate``.

        Parameters
        ----------
        loss : str or Loss
            ``"binary_crossentropy"``, ``"categorical_crossentropy"``,
            ``"sparse_categorical_crossentropy"``, ``"mse"``, ``"mae"``.
        optimizer : str or Optimizer
            ``"sgd"``, ``"rmsprop"``, ``"adagrad"``, ``"adam"``, ``"adamw"``, ``"adamax"``, or an
            instance for non-default settings.
        metrics : list, optional
            Names such as ``"accuracy"``, ``"precision"``, ``"recall"``, ``"mae"``, ``"mse"``.
        """
        _compilation.compile(self, loss, optimizer, metrics)

    def _require_compiled(self, what: str) -> None:
        _compilation.require_compiled(self, what)

    @property
    def _fused(self) -> bool:
        last = self.layers[-1]
        activation = getattr(last, "activation", None)
        return (
            self.loss.fused_activation is not None
            and activation is not None
            and activation.name == self.loss.fused_activation
            and hasattr(last, "backward_from_logits")
        )

    # -- forward / backward ---------------------------------------------------------------------
    @_on_device
    def forward(self, X: Array, training: bool = False) -> Array:
        """Run the layers on a batch already on the model's backend; returns ``y_hat``.

        Parameters
        ----------
        X : array, shape (n, n_features)
            A batch on the model's backend.
        training : bool, default False
            Whether this is a training step (dropout on, caches for ``backward``).

        Returns
        -------
        y_hat : array, shape (n, n_outputs)
            The predictions.
        """
        return self._forward(X, training)

    def _forward(self, X: Array, training: bool = False) -> Array:
        if not self.built:
            raise RuntimeError(
                "The model is not built: give the first layer input_dim=..., or call fit/predict."
            )
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    @_on_device
    def backward(self, dy: Array) -> Array:
        """Backpropagate ``dy = dL/dy_hat`` through every layer; returns ``dL/dX``.

        Parameters
        ----------
        dy : array, shape (n, n_outputs)
            ``dL/dy_hat``.

        Returns
        -------
        array, shape (n, n_features)
            ``dL/dX``; every layer's ``grads`` are filled.
        """
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def _loss_and_backward(self, y: Array, y_hat: Array) -> Array:
        """Loss value (0-d, on the device) and the backward pass that fills every grads dict."""
        xp, last = self.xp, self.layers[-1]
        if self._fused:
            loss, dz = self.loss.from_logits(y, last.z, y_hat, xp)
        else:
            loss, dz = self.loss.forward(y, y_hat, xp), None
        self._backward_from_loss(y, y_hat, dz)
        penalty = self._penalty()
        return loss if penalty is None else loss + penalty

    def _backward_from_loss(self, y: Array, y_hat: Array, dz: Array | None = None) -> None:
        """The backward pass: dL/dz (fused) or dL/dy_hat from the loss, then every layer.

        The first layer skips ``dx = dz @ W.T``: nothing needs the gradient of the data.
        """
        first = self.layers[0]
        first.need_dx = False
        try:
            self._backward_layers(y, y_hat, dz)
        finally:
            first.need_dx = True

    def _backward_layers(self, y: Array, y_hat: Array, dz: Array | None) -> None:
        xp, layers = self.xp, self.layers
        if self._fused:
            if dz is None:
                dz = self.loss.logits_gradient(y, y_hat, xp)
            dy = layers[-1].backward_from_logits(dz)
        else:
            dy = layers[-1].backward(self.loss.gradient(y, y_hat, xp))
        for layer in reversed(layers[:-1]):
            dy = layer.backward(dy)

    def _penalty(self) -> Array | None:
        """The sum of the layers' regularization penalties (None when there are none)."""
        total = None
        for layer in self.layers:
            penalty = layer.penalty()
            if penalty is not None:
                total = penalty if total is None else total + penalty
        return total

    @_on_device
    def train_step(self, x: Array, y: Array) -> tuple[Array, Array]:
        """One step of gradient descent on a batch already on the device.

        Returns the batch loss and ``y_hat`` (both on the device; nothing is read back).

        Parameters
        ----------
        x : array, shape (n, n_features)
            A batch of inputs on the model's backend.
        y : array, shape (n,) or (n, n_outputs)
            Its targets, prepared by the loss.

        Returns
        -------
        loss : array, shape ()
            The batch loss, including regularization.
        y_hat : array, shape (n, n_outputs)
            The predictions before the update.
        """
        self._sync_trainable()
        return _step.train_step(self, x, y)

    # -- data -----------------------------------------------------------------------------------
    def _check(
        self, X: Any, y: Any = None, name: str = "X", n_features: int | None = None
    ) -> tuple[Any, Any]:
        """Validate X (and y against the loss and output width) without touching the model."""
        X = _data.check_X(X, n_features or self.input_dim, name=name, dtype=self._dtype_name)
        self._check_device(X, name)
        if y is not None:
            self._check_device(y, "y" + name[1:])
            n_out = self._out_dim_from(X.shape[1])
            y = _data.check_y(
                y, X.shape[0], self.loss.kind, n_out, name="y" + name[1:], dtype=self._dtype_name
            )
        return X, y

    def _check_device(self, a: Any, name: str) -> None:
        """Arrays of the model's library must be on the model's device (no silent hops)."""
        b = self.backend
        if _backend.array_backend_name(a) == b.name and not b.owns(a):
            raise ValueError(
                f"{name} is on {_backend.backend_of(a).spec} but the model is on {b.spec}. "
                f"Move one of them: model.to({_backend.backend_of(a).spec!r}), or pass {name} "
                "from the host (a NumPy array)."
            )

    def _out_dim_from(self, input_dim: int) -> int:
        dim = input_dim
        for layer in self.layers:
            dim = layer.output_dim(dim)
        return dim

    def _to_device(self, X: Any, y: Any = None) -> tuple[Array, Array | None]:
        """Build if needed, then move checked X (and y, in the loss's layout) to the device."""
        if not self.built:
            self.build(X.shape[1])
            if self.loss is not None:  # "accuracy" depends on the output width
                self.metrics = _compilation.resolve_metrics(self)
        Y = None
        if y is not None:
            label_dtype = self.backend.int_dtype if self.loss.kind == "sparse" else self.dtype
            Y = self.loss.prepare_targets(
                self.backend.asarray(y, label_dtype), self.output_dim, self.dtype, self.xp
            )
        return self.backend.asarray(X, self.dtype), Y

    def _prepare(self, X: Any, y: Any = None) -> tuple[Array, Array | None]:
        return self._to_device(*self._check(X, y))

    # -- training ---------------------------------------------------------------------------------
    @_on_device
    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int | None = 32,
        shuffle: bool = True,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        verbose: int = 1,
        callbacks: list[_callbacks.Callback] | None = None,
        initial_epoch: int = 0,
        distributed: Any = None,
    ) -> _callbacks.History:
        """Train for ``epochs`` passes over ``(X, y)`` in shuffled mini-batches.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            NumPy data or an array of any supported library.
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
            Labels in the loss's layout (0/1, one-hot, integer classes or real values).
        epochs : int
            Passes over the data.
        batch_size : int or None
            Samples per step (None: 32, Keras's default); larger than n means full batch.
        shuffle : bool
            Reshuffle the samples each epoch (from the model's seeded host generator).
        validation_data : (X_val, y_val), optional
            Evaluated after each epoch; adds ``val_*`` keys to the history.
        validation_split : float
            Fraction of the data, taken from the end before shuffling, held out for validation.
        verbose : {0, 1, 2}
            Silent, a progress bar per epoch, or one line per epoch.
        callbacks : list of Callback, optional
            Hooks called during training.
        initial_epoch : int
            Epoch to start counting from (for resuming).
        distributed : bool, str or Communicator, optional
            Data-parallel training over several processes (see :mod:`backprop.distributed`):
            True or ``"auto"`` (MPI when launched by ``mpirun``, NCCL for CuPy models),
            ``"mpi"``, ``"nccl"``, ``"single"`` or a Communicator. Every rank calls ``fit``
            with the same data; ``batch_size`` is the global batch, split over the ranks, so
            the result equals one process's with that batch size. Only rank 0 prints and
            writes checkpoints.

        Returns
        -------
        History
            ``history.history`` maps ``"loss"``, metric names and ``"val_*"`` to per-epoch lists.
        """
        args = (X, y, epochs, batch_size, shuffle, validation_data, validation_split, verbose)
        if distributed is None or distributed is False:
            return _loop.fit(self, *args, callbacks, initial_epoch)
        from .distributed import comm as _comm  # the floor above: fit hands over, as save does

        comm = _comm.resolve(distributed, self.backend)
        with _comm.failures_told(comm):
            return _loop.fit(self, *args, callbacks, initial_epoch, comm=comm)

    @_on_device
    def dead_layers(self, X: Any) -> list[str]:
        """Names of the hidden ReLU layers whose every unit is inactive (z <= 0) on all of X.

        Such a layer outputs zeros, so its gradient and that of every layer below it are zero:
        the network predicts a constant and cannot recover. With small nets and Glorot
        initialisation it happens for a few seeds in a hundred, often before training starts.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
            Inputs (any library).

        Returns
        -------
        list of str
            The dead layers' names, bottom first; empty when none.
        """
        X = X if self.backend.owns(X) else self._prepare(X)[0]
        return _probe.dead_layers(self, X)

    # -- inference --------------------------------------------------------------------------------
    @_on_device
    def evaluate(
        self, X: Any, y: Any, batch_size: int | None = None, verbose: int = 0
    ) -> dict[str, float]:
        """Loss and metrics on ``(X, y)`` (inference mode: no dropout).

        Parameters
        ----------
        X : array_like, shape (n, n_features)
            Inputs (any library).
        y : array_like, shape (n,) or (n, n_outputs)
            Targets.
        batch_size : int, optional
            Rows per batch; all at once when omitted.
        verbose : int, default 0
            Whether to print the results.

        Returns
        -------
        dict
            ``{"loss": ..., "accuracy": ..., ...}``.
        """
        return _loop.evaluate(self, X, y, batch_size, verbose)

    @_on_device
    def predict(self, X: Any, batch_size: int | None = None) -> Any:
        """Outputs ``y_hat`` for ``X`` (inference mode).

        The result is of the input's library and device: NumPy in gives NumPy out; a CuPy, torch
        or array_api_strict array in gives the same library, on the same device, out.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
            Inputs (any library).
        batch_size : int, optional
            Rows per batch; all at once when omitted.

        Returns
        -------
        y_hat : array, shape (n, n_outputs)
            The predictions, in the library and on the device of ``X``.
        """
        return _loop.predict(self, X, batch_size)

    # -- gradients as host arrays ---------------------------------------------------------------
    @_on_device
    def loss_and_gradients(self, X: Any, y: Any, training: bool = False) -> tuple[float, list]:
        """The loss on ``(X, y)`` and its gradient for each trainable weight array.

        Parameters
        ----------
        training : bool
            Run layers in training mode (dropout active, BatchNormalization on the batch's
            statistics, which also updates its moving statistics, as Keras's
            ``model(x, training=True)`` does). False by default so that the result is a
            deterministic function of the weights (what gradient checks need).

        Returns
        -------
        loss : float
        grads : list of numpy.ndarray
            One per trainable weight, in :meth:`get_weights` order (W1, b1, W2, b2, ...) with
            the non-trainable weights (moving statistics, frozen layers) left out.
        """
        self._require_compiled("loss_and_gradients")
        self._sync_trainable()
        X, Y = self._prepare(X, y)
        y_hat = self._forward(X, training=training)
        loss = self._loss_and_backward(Y, y_hat)
        # copies: the gradients are views of a vector the next backward pass overwrites
        grads = [self.backend.to_numpy(layer.grads[k]).copy() for layer, k in self._param_slots]
        return float(self.backend.to_numpy(self.xp.asarray(loss))), grads

    # -- weights --------------------------------------------------------------------------------
    def get_weights(self) -> list:
        """Copies of the weights as NumPy arrays, in Keras order: W1, b1, W2, b2, ...

        Each layer's trainable weights, then its non-trainable ones: BatchNormalization gives
        gamma, beta, moving_mean, moving_variance.

        Returns
        -------
        list of numpy.ndarray
            ``W`` of shape ``(in_dim, units)`` and ``b`` of shape ``(units,)`` for each ``Dense``.
        """
        self._require_built("get_weights")
        return [
            self.backend.to_numpy(getattr(layer, store)[k]).copy()
            for layer, store, k in self._weight_slots
        ]

    def set_weights(self, weights: list) -> None:
        """Replace the weights from a list shaped like :meth:`get_weights` (checked first).

        Parameters
        ----------
        weights : list of array_like
            Arrays shaped like those of :meth:`get_weights`, in the same order.
        """
        self._require_built("set_weights")
        slots = self._weight_slots
        if not isinstance(weights, list | tuple) or len(weights) != len(slots):
            received = len(weights) if isinstance(weights, list | tuple) else type(weights).__name__
            raise ValueError(
                f"set_weights expects a list of {len(slots)} arrays (as get_weights returns), "
                f"received {received}."
            )
        arrays = []
        for (layer, store, k), w in zip(slots, weights, strict=True):
            w = _data.as_array(w, f"weights for {layer.name}.{k}")
            expected = tuple(getattr(layer, store)[k].shape)
            if tuple(w.shape) != expected:
                raise ValueError(
                    f"set_weights: {layer.name}.{k} expects shape {expected}, received "
                    f"{tuple(w.shape)}."
                )
            arrays.append(self.backend.asarray(self.backend.to_numpy(w), self.dtype))
        for (layer, store, k), w in zip(slots, arrays, strict=True):
            getattr(layer, store)[k] = w
        self._collect_params()

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(
                f"{what}() needs a built model: give the first layer input_dim=..., or fit it."
            )

    def count_params(self) -> int:
        """Total number of scalars in the weights, trainable or not (as Keras counts).

        Returns
        -------
        int
        """
        return sum(layer.count_params() for layer in self.layers)

    def _count_trainable(self) -> int:
        return sum(
            math.prod(layer.params[k].shape)
            for layer in self.layers
            if layer.trainable
            for k in layer.params
        )

    # -- moving and describing ------------------------------------------------------------------
    def to(self, backend: str, device: Any = None) -> Sequential:
        """Move the model (weights and optimizer state) to another backend/device; returns self.

        Parameters
        ----------
        backend : str
            A backend name, e.g. ``"numpy"``, ``"torch"``, ``"cupy"``.
        device : optional
            A device of that backend; its default when omitted.

        Returns
        -------
        Sequential
            ``self``.
        """
        target = _backend.resolve(backend, device)
        dtype = target.dtype(self._dtype_name)
        for layer in self.layers:
            if layer.built:
                for store in (layer.params, layer.buffers):
                    for k, p in store.items():
                        store[k] = target.asarray(p, dtype)
                layer.backend, layer.xp, layer.dtype = target, target.xp, dtype
                layer.grads = {}
                layer._has_forward = False
        if self.optimizer is not None:
            for s in self.optimizer.state:
                for k, v in s.items():
                    s[k] = target.asarray(v, dtype)
        self.backend, self.xp, self.dtype = target, target.xp, dtype
        self.streams.retarget(target)
        self._share_dropout_stream()
        if self.built:
            self._collect_params()
        return self

    def _share_dropout_stream(self) -> None:
        """Point every Dropout layer at the model's current dropout stream."""
        for layer in self.layers:
            if isinstance(layer, _layers.Dropout):
                layer.rng = self.streams.dropout

    def use_host_dropout(self) -> None:
        """Draw dropout masks on the host, from the seed: the same masks on every backend.

        On a GPU the masks are drawn on the device by default (no transfer per step), which
        gives other masks than the host stream; parity checks across backends use this.

        Returns
        -------
        None
        """
        self.streams.use_host_dropout()
        self._share_dropout_stream()

    def summary(self, print_fn: Any = print) -> str:
        """Print (and return) a table of the layers, their output shapes and parameter counts.

        Parameters
        ----------
        print_fn : callable, default print
            Called with the table; None only returns it.

        Returns
        -------
        str
            The table.
        """
        rows = [("Layer (type)", "Output Shape", "Param #")]
        dim = self.input_dim
        for layer in self.layers:
            dim = layer.output_dim(dim) if dim is not None else None
            shape = f"(None, {dim})" if dim is not None else "?"
            count = str(layer.count_params()) if layer.built else "0 (unbuilt)"
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, count))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "-" * sum(widths)
        out = [f'Model: "{self.name}"  (backend {self.backend.spec}, {self._dtype_name})', line]
        out.append("".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)))
        out.append("=" * sum(widths))
        for r in rows[1:]:
            out.append("".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        out.append("=" * sum(widths))
        total = self.count_params()
        trainable = self._count_trainable() if self.built else total
        out.append(f"Total params: {total}")
        out.append(f"Trainable params: {trainable}")
        out.append(f"Non-trainable params: {total - trainable}")
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    def get_config(self) -> dict[str, Any]:
        """Architecture and settings as JSON-able values (used by ``save``).

        Returns
        -------
        dict
            The name, dtype, seed and each layer's class name and config.
        """
        return {
            "name": self.name,
            "dtype": self._dtype_name,
            "seed": self.seed,
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
        }

    def explain(self, X: Any, y: Any, batch: int = 4, print_fn: Any = print) -> str:
        """Print one training step on ``batch`` rows as the equations of backpropagation.

        Runs on a copy: the model is not changed. See :mod:`backprop.explain`.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
            Inputs (any library).
        y : array_like, shape (n,) or (n, n_outputs)
            Targets.
        batch : int, default 4
            Number of rows (the first ones) of the step shown.
        print_fn : callable, default print
            Called with the text.

        Returns
        -------
        str
            The text printed.
        """
        from .explain import explain

        return explain(self, X, y, batch=batch, print_fn=print_fn)

    def save(self, path: str) -> None:
        """Save architecture, weights, compile settings and optimizer state (no pickle).

        Parameters
        ----------
        path : str or path-like
            The file to write (see ``docs/file-format.md``).
        """
        from .io import save

        save(self, path)

    def __repr__(self) -> str:
        return (
            f"Sequential({len(self.layers)} layers, backend={self.backend.spec!r}, "
            f"dtype={self._dtype_name!r})"
        )
