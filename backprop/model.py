"""The Sequential model: a stack of layers, trained by backpropagation.

One training step is the whole algorithm::

    y_hat = forward(x)                      # each layer caches what its backward needs
    L, dL/dy_hat = loss(y, y_hat)           # or dL/dz when the output activation is fused
    for layer in reversed(layers):          # the chain rule, layer by layer
        dy = layer.backward(dy)             # fills layer.grads
    params = optimizer.apply(params, grads)

``fit`` moves the data onto the model's backend and device once, keeps the epoch's loss and
metric sums on the device, and reads them back once per epoch.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from typing import Any

from . import backend as _backend
from . import callbacks as _callbacks
from . import data as _data
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._checks import is_int
from .distributed import parallel as _parallel
from .rng import Streams

Array = Any


def _on_device(method: Any) -> Any:
    """Run a method with the model's device current (CuPy computes on the current GPU)."""

    @functools.wraps(method)
    def wrapper(self: Sequential, *args: Any, **kwargs: Any) -> Any:
        with self.backend.activate():
            return method(self, *args, **kwargs)

    return wrapper


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (the weights are restored before raising)."""


class DeadNetworkWarning(RuntimeWarning):
    """A hidden ReLU layer outputs zero for every training sample: nothing below it can learn."""


# rows of the training data used to look for dead layers: enough to see a live unit
_DEAD_CHECK_ROWS = 512

# each model's token: the layers and the optimizer it owns record it (ids can be reused)
_TOKENS = itertools.count()


def _watches_batches(callback: _callbacks.Callback) -> bool:
    """Whether a callback's ``on_batch_end`` may look at the model after each step.

    History and the progress bar read only the batch's index and size; any other callback
    that overrides ``on_batch_end`` (or a LambdaCallback given one) may read the weights.
    """
    if isinstance(callback, _callbacks.History | _callbacks.ProgbarLogger):
        return False
    hook = getattr(type(callback), "on_batch_end", None)
    return hook is not _callbacks.Callback.on_batch_end or "on_batch_end" in vars(callback)


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
    ):
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
        for layer in layers or []:
            self.add(layer)

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

    def _collect_params(self) -> None:
        """Pack every weight into one flat vector ``theta``; the layers hold views of it.

        One vector makes the optimizer's update a dozen whole-vector operations instead of a
        dozen per weight array, and the update, done in place, reaches every layer's view.
        """
        xp = self.xp
        self._param_slots = [(layer, k) for layer in self.layers for k in layer.params]
        params = [layer.params[k] for layer, k in self._param_slots]
        self._shapes = [tuple(p.shape) for p in params]
        self._bounds, start = [], 0
        for shape in self._shapes:
            self._bounds.append((start, start + math.prod(shape)))
            start += math.prod(shape)
        # concat copies: the model never shares memory with arrays a user handed in
        self._theta = xp.concat([xp.reshape(p, (-1,)) for p in params]) if params else None
        self._bind_views()

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

    def _flat_grads(self) -> Array:
        xp = self.xp
        grads = [layer.grads[k] for layer, k in self._param_slots]
        return xp.concat([g if g.ndim == 1 else xp.reshape(g, (-1,)) for g in grads])

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
        if not self.layers:
            raise ValueError("compile() needs layers: add them before compiling.")
        # everything is resolved before anything is assigned: a compile that raises leaves
        # the model as it was
        loss = _losses.get(loss)
        optimizer = _optimizers.get(optimizer)
        if metrics is None:
            metrics = []
        if isinstance(metrics, str | _metrics.Metric):
            metrics = [metrics]
        if not isinstance(metrics, list | tuple):
            raise TypeError(
                "metrics must be a list of names or Metric instances, received "
                f"{type(metrics).__name__}."
            )
        specs = list(metrics)
        resolved = self._resolve_metrics(specs, loss)
        self._claim(optimizer)
        self.loss, self.optimizer = loss, optimizer
        self._metric_specs, self.metrics = specs, resolved
        self._compiled = None  # the compiled epoch depends on the loss, optimizer and metrics

    def _claim(self, optimizer: _optimizers.Optimizer) -> None:
        """Make ``optimizer`` this model's; refuse one that another model trains with.

        An optimizer's moments and step count belong to the weights it updated (as in Keras 3
        and PyTorch, where an optimizer is built for one set of variables): a second model
        would inherit them, or fail on their shapes.
        """
        owner = getattr(optimizer, "_model_token", None)
        if owner is not None and owner != self._token:
            raise ValueError(
                f"This {type(optimizer).__name__} instance already trains another model: an "
                "optimizer's state (moments, step count) belongs to the weights it updates. "
                "Give each model its own optimizer, e.g. "
                "optimizer=bp.optimizers.get(other.optimizer.get_config())."
            )
        if optimizer.state and not self._state_fits(optimizer):
            optimizer.state, optimizer.iterations = [], 0  # made for other weights: rebuild
        optimizer._model_token = self._token

    def _state_fits(self, optimizer: _optimizers.Optimizer) -> bool:
        """Whether the optimizer's state has the shapes of this model's weights."""
        if not self.built or self._theta is None:
            return not optimizer.state
        if optimizer.clipnorm is None:
            shapes = [tuple(self._theta.shape)]
        else:
            shapes = [tuple(layer.params[k].shape) for layer, k in self._param_slots]
        return len(optimizer.state) == len(shapes) and all(
            tuple(v.shape) == shape
            for s, shape in zip(optimizer.state, shapes, strict=True)
            for v in s.values()
        )

    def _check_optimizer_state(self) -> None:
        """Refuse to train with optimizer state made for other weights (model.add after fit)."""
        if self.optimizer.state and not self._state_fits(self.optimizer):
            raise ValueError(
                f"The optimizer's state was made for other weights than the model's "
                f"{self.count_params()} parameters (a layer was added after training began?). "
                "Call model.compile(...) again: its state is rebuilt for the new weights."
            )

    def _resolve_metrics(
        self, specs: list | None = None, loss: _losses.Loss | None = None
    ) -> list[tuple[str, _metrics.Metric]]:
        """``(name, Metric)`` for each spec; names as given, instances under their own name."""
        specs = self._metric_specs if specs is None else specs
        loss = self.loss if loss is None else loss
        out = self.output_dim if self.built else 1
        resolved = []
        for spec in specs:
            metric = _metrics.get(spec, loss.kind, out)
            name = spec if isinstance(spec, str) else metric.name
            resolved.append((name, metric))
        return resolved

    def _require_compiled(self, what: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(
                f"{what}() needs a compiled model: call model.compile(loss=..., optimizer=...) "
                "first."
            )

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

    def _update(self, g: Array | None = None) -> None:
        """The optimizer's step on the flat vector (per weight array for per-array clipnorm).

        ``g`` is the flat gradient when it comes from elsewhere (summed over ranks), else the
        layers' gradients are used.
        """
        xp, opt = self.xp, self.optimizer
        if self._theta is None:
            return
        if opt.clipnorm is None:
            theta = opt.apply([self._theta], [self._flat_grads() if g is None else g], xp)[0]
            if theta is not self._theta:  # immutable arrays (JAX): the update rebound it
                self._theta = theta
                self._bind_views()
            return
        views = [layer.params[k] for layer, k in self._param_slots]
        if g is None:
            grads = [layer.grads[k] for layer, k in self._param_slots]
        else:
            grads = [
                xp.reshape(g[a:b], shape)
                for (a, b), shape in zip(self._bounds, self._shapes, strict=True)
            ]
        new = opt.apply(views, grads, xp)
        if any(W is not V for W, V in zip(new, views, strict=True)):
            for (layer, k), W in zip(self._param_slots, new, strict=True):
                layer.params[k] = W
            self._collect_params()

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
        y_hat = self._forward(x, training=True)
        loss = self._loss_and_backward(y, y_hat)
        self._update()
        return loss, y_hat

    def _step(self, x: Array, y: Array) -> Array:
        """``train_step`` without the loss value.

        ``fit`` computes an epoch's loss once, from the outputs its steps produced, instead of
        once per step.
        """
        y_hat = self._forward(x, training=True)
        self._backward_from_loss(y, y_hat)
        self._update()
        return y_hat

    def _step_shard(self, x: Array, y: Array, share: float) -> Array | None:
        """``_step`` on this rank's shard of a global batch (data-parallel training).

        Each rank's loss is the mean over its shard of ``m_r`` rows; the global batch's mean
        over ``m`` rows is the sum over ranks of ``(m_r / m)`` times each rank's mean. So each
        rank scales its gradient by ``share = m_r / m`` and one sum over the ranks gives the
        exact global gradient, however uneven the shards (an average of the ranks' means
        would not). A regularizer's gradient, added on every rank, sums to itself since the
        shares sum to one. A rank with no rows in this batch sends zeros.
        """
        xp, comm = self.xp, self._comm
        if self._theta is None:  # nothing to learn: nothing to sum
            return self._step(x, y) if x.shape[0] else None
        if x.shape[0]:
            y_hat = self._forward(x, training=True)
            self._backward_from_loss(y, y_hat)
            g = self._flat_grads()
            if share != 1.0:
                g *= share
        else:
            y_hat, g = None, xp.zeros_like(self._theta)
        self._update(comm.allreduce(g, self.backend))
        return y_hat

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
                self.metrics = self._resolve_metrics()
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
            return self._fit(*args, callbacks, initial_epoch)
        return _parallel.fit(self, distributed, *args, callbacks, initial_epoch)

    @_on_device
    def _fit(
        self,
        X: Any,
        y: Any,
        epochs: int,
        batch_size: int | None,
        shuffle: bool,
        validation_data: tuple[Any, Any] | None,
        validation_split: float,
        verbose: int,
        callbacks: list[_callbacks.Callback] | None,
        initial_epoch: int,
    ) -> _callbacks.History:
        self._require_compiled("fit")
        if y is None:
            raise TypeError("fit() needs labels: fit(X, y, ...); received y=None.")
        if isinstance(validation_data, tuple | list) and any(v is None for v in validation_data):
            raise TypeError("validation_data needs features and labels: (X_val, y_val).")
        _data.check_positive_int(epochs, "epochs")
        _data.check_positive_int(batch_size, "batch_size", allow_none=True)
        validation_split = _data.check_fraction(validation_split, "validation_split")
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, received verbose={verbose!r}.")
        if validation_data is not None and (
            not isinstance(validation_data, tuple | list) or len(validation_data) != 2
        ):
            raise ValueError(
                "validation_data must be a tuple (X_val, y_val), received "
                f"{type(validation_data).__name__}."
            )
        if not is_int(initial_epoch):
            raise TypeError(f"initial_epoch must be an integer, received {initial_epoch!r}.")
        initial_epoch = int(initial_epoch)
        if not 0 <= initial_epoch < epochs:
            raise ValueError(
                f"initial_epoch must be in [0, epochs={epochs}), received {initial_epoch}."
            )
        if callbacks is not None and not isinstance(callbacks, list | tuple):
            raise TypeError(
                "callbacks must be a list of Callback instances, e.g. callbacks=[History()]; "
                f"received {type(callbacks).__name__}."
            )
        for c in callbacks or []:
            if not isinstance(c, _callbacks.Callback):
                raise TypeError(f"callbacks must be Callback instances, received {c!r}.")
        self._check_optimizer_state()
        # every check runs before the model is built or touched
        X, y = self._check(X, y)
        n_val = int(X.shape[0] * validation_split) if validation_data is None else 0
        if validation_split and validation_data is None and n_val in (0, X.shape[0]):
            raise ValueError(
                f"validation_split={validation_split} of {X.shape[0]} samples leaves "
                f"{n_val} for validation; need at least one sample on each side."
            )
        if validation_data is not None:
            Xv, yv = self._check(*validation_data, name="X_val", n_features=X.shape[1])
        X, Y = self._to_device(X, y)
        if validation_data is not None:
            Xv, Yv = self._to_device(Xv, yv)
        elif n_val:
            X, Xv, Y, Yv = X[:-n_val, ...], X[-n_val:, ...], Y[:-n_val, ...], Y[-n_val:, ...]
        else:
            Xv = Yv = None

        n = X.shape[0]
        batch_size = min(batch_size or 32, n)
        steps = math.ceil(n / batch_size)
        n_val = None if Xv is None else Xv.shape[0]
        comm = self._comm
        if comm is not None:
            _parallel.begin(self, X, Y, Xv, batch_size, epochs, initial_epoch, shuffle)
            if Xv is not None:  # each rank evaluates its part of the validation rows
                lo, hi = _parallel.shard(0, n_val, comm.rank, comm.size)
                Xv, Yv = Xv[lo:hi, ...], Yv[lo:hi, ...]
            if not comm.is_root:  # rank 0 speaks and writes for all
                verbose = 0
                callbacks = [c for c in callbacks or [] if not c.root_only]
        self.history = _callbacks.History()
        # History after the user's callbacks, so it records what they add to the logs
        cbs = [*(callbacks or []), self.history]
        if verbose:
            cbs.append(_callbacks.ProgbarLogger(verbose))
        params = {
            "epochs": epochs,
            "steps": steps,
            "verbose": verbose,
            "samples": n,
            "do_validation": Xv is not None,
        }
        cb = _callbacks.CallbackList(cbs, self, params)

        self.stop_training = False
        probe = X[: min(n, _DEAD_CHECK_ROWS), ...]
        warned = self._warn_dead(probe, when="at initialisation" if epochs else "")
        cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch)
            snapshot = self._snapshot()
            logs = self._train_epoch(X, Y, batch_size, steps, shuffle, cb)
            if not math.isfinite(logs["loss"]):
                self._nonfinite(epoch, logs["loss"], snapshot, callbacks or [])
            if Xv is not None:
                val = self._evaluate_device(Xv, Yv, n_total=n_val)
                logs.update({f"val_{k}": v for k, v in val.items()})
            # the last batch's flags come back with the metrics; a full probe confirms them
            if logs.pop("_dead_in_last_batch", False) and not warned:
                warned = self._warn_dead(probe, when=f"after epoch {epoch + 1}")
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end()
        return self.history

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
        hidden = self._relu_hidden()
        if not hidden:
            return []
        compiled = self._compiled_probe()
        if compiled is None:
            flags = self._dead_flags(self._theta, X)
        else:
            theta = self._theta
            try:
                flags = compiled(theta, X)
            finally:  # the trace left its placeholders in the layers
                self._theta = theta
                self._bind_views()
        return [
            layer.name
            for layer, dead in zip(hidden, self.backend.to_numpy(flags), strict=True)
            if dead
        ]

    def _dead_flags(self, theta: Array, X: Array) -> Array:
        """For each hidden ReLU layer, whether all its pre-activations on ``X`` are <= 0."""
        xp = self.xp
        if theta is not self._theta:  # a traced theta (the compiled probe)
            self._theta = theta
            self._bind_views(compiled=False)
        self._forward(X, training=False)
        return xp.stack([xp.all(layer.z <= 0) for layer in self._relu_hidden()])

    def _compiled_probe(self) -> Any:
        """``_dead_flags`` compiled (JAX: one call instead of an eager forward), or None."""
        key = (self.backend, tuple(self._bounds))
        if getattr(self, "_probe", (None, None))[0] != key:
            self._probe = (key, self.backend.compile(self._dead_flags))
        return self._probe[1]

    def _warn_dead(self, X: Array, when: str) -> bool:
        dead = self.dead_layers(X)
        if dead and (self._comm is None or self._comm.is_root):
            warnings.warn(
                f"Dead network {when}: every unit of hidden layer(s) {', '.join(dead)} is "
                "inactive (ReLU input <= 0) on the training data, so no gradient reaches the "
                "layers below and the model predicts a constant. Remedies: another seed, "
                "kernel_initializer='he_uniform', activation='leaky_relu', or a lower learning "
                "rate.",
                DeadNetworkWarning,
                stacklevel=3,
            )
        return bool(dead)

    def _train_epoch(self, X, Y, batch_size, steps, shuffle, cb) -> dict[str, float]:
        xp, n, b = self.xp, X.shape[0], self.backend
        order = b.asarray(self.streams.permutation(n), b.int_dtype) if shuffle else None
        comm = self._comm
        # a callback that looks at the model after each batch needs each step to have run
        # when it is called: the compiled epoch runs them all in one program
        per_step = comm is not None or any(_watches_batches(c) for c in cb.callbacks)
        compiled = None if per_step else self._compiled_epoch(batch_size)
        if compiled is not None:
            sums, Y, Y_hat, Z = self._run_epoch(compiled, X, Y, order, steps)
            sizes = [min(batch_size, n - lo) for lo in range(0, n, batch_size)]
            self._epoch_outputs = (Y, Y_hat, Z, sizes)
            for step, size in enumerate(sizes):
                cb.on_batch_end(step, {"batch": step, "size": size})
            return self._finish_logs(sums, n, n_extra=len(self._relu_hidden()))
        if order is not None:
            # one gather per epoch, then contiguous slices: cheaper than a gather per batch
            X, Y = xp.take(X, order, axis=0), xp.take(Y, order, axis=0)
        outputs, logits, penalties, targets = self._eager_epoch(X, Y, batch_size, steps, cb)
        if self.stop_training:  # stopped after a batch: the logs cover the rows trained on
            n = min(self._steps_run * batch_size, n)
            Y = Y[:n, ...]
        if comm is not None:  # the loss and metrics of the rows this rank saw, summed later
            Y = xp.concat(targets, axis=0) if len(targets) > 1 else targets[0]
        Y_hat = xp.concat(outputs, axis=0) if len(outputs) > 1 else outputs[0]
        Z = (xp.concat(logits, axis=0) if len(logits) > 1 else logits[0]) if logits else None
        self._epoch_outputs = (Y, Y_hat, Z, [y_hat.shape[0] for y_hat in outputs])
        dead = [xp.all(layer.z <= 0) for layer in self._relu_hidden()]
        return self._logs(*self._epoch_sums(Y, Y_hat, Z, penalties, dead), n, n_extra=len(dead))

    def _epoch_sums(self, Y, Y_hat, Z, penalties: list, dead: list) -> tuple:
        """The epoch's summed loss and metric statistics, and the dead-layer flags.

        The loss and the metrics of every step, computed once from the outputs each step
        produced (with that step's weights): the numbers per-step sums would give, for a
        handful of operations per epoch instead of a dozen per step.
        """
        xp = self.xp
        total_loss = self._loss_value(Y, Y_hat, Z) * Y.shape[0]
        if penalties:
            total_loss = total_loss + xp.sum(xp.stack(penalties))
        totals = [t for _, m in self.metrics for t in m.stats(Y, Y_hat, xp)]
        flags = [xp.astype(flag, total_loss.dtype) for flag in dead]
        return total_loss, [*totals, *flags]

    def _eager_epoch(self, X, Y, batch_size: int, steps: int, cb) -> tuple[list, ...]:
        """The steps of an epoch one by one; on data-parallel ranks, this rank's shards.

        Returns the outputs, logits (fused losses) and regularization penalties of every step,
        and the targets of the rows this rank saw (data-parallel only).
        """
        n, fused, last, comm = X.shape[0], self._fused, self.layers[-1], self._comm
        outputs, logits, penalties, targets = [], [], [], []
        for step in range(steps):
            lo = step * batch_size
            hi = min(lo + batch_size, n)
            size = hi - lo
            penalty = self._penalty()  # the weights this step starts from
            if comm is None:
                outputs.append(self._step(X[lo:hi, ...], Y[lo:hi, ...]))
            else:
                lo, hi = _parallel.shard(lo, hi, comm.rank, comm.size)
                y_hat = self._step_shard(X[lo:hi, ...], Y[lo:hi, ...], (hi - lo) / size)
                if y_hat is not None:
                    outputs.append(y_hat)
                    targets.append(Y[lo:hi, ...])
            if fused and hi > lo:
                logits.append(last.z)  # the fused loss needs the logits
            if penalty is not None:
                penalties.append(penalty * (hi - lo))
            cb.on_batch_end(step, {"batch": step, "size": size})
            self._steps_run = step + 1
            if self.stop_training:  # as in Keras, a callback can stop after any batch
                break
        return outputs, logits, penalties, targets

    def _compiled_epoch(self, batch_size: int) -> Any:
        """A whole epoch compiled as one program (JAX), or None to run it step by step.

        The program is this class's own Array API code, traced once per data shape: the
        shuffle, every step (forward, backward, the optimizer's update) looped by
        ``lax.scan``, the short last batch, the epoch's loss and metric sums and the
        dead-layer flags. Dropout (host-drawn masks) and per-array clipping keep the eager
        path.
        """
        opt = self.optimizer
        if (
            self._theta is None
            or opt.clipnorm is not None
            or any(isinstance(layer, _layers.Dropout) for layer in self.layers)
        ):
            return None
        # compile() drops the program; the key covers what changes without a compile
        key = (self.backend, batch_size, tuple(self._bounds), tuple(map(id, self.layers)))
        if self._compiled is None or self._compiled[0] != key:
            epoch = functools.partial(self._pure_epoch, batch_size=batch_size)
            self._compiled = (key, self.backend.compile(epoch))
        return self._compiled[1]

    def _pure_step(self, theta: Array, state: dict, x: Array, y: Array, lr: Any, t: Any) -> tuple:
        """One step as a function of its inputs only (what the compiled epoch loops over).

        Returns the new ``theta`` and state, the step's ``y_hat`` and logits, the batch's
        regularization penalty times its rows (of the weights the step started from), and
        one dead-layer flag per hidden ReLU layer. The flags are outputs, not read from
        ``layer.z`` after the loop: inside ``lax.scan`` that attribute holds the loop's tracer,
        which must not escape it.
        """
        xp = self.xp
        self._theta = theta
        self._bind_views(compiled=False)
        penalty = self._penalty()
        penalty = self.backend.zeros((), self.dtype) if penalty is None else penalty * x.shape[0]
        y_hat = self._forward(x, training=True)
        self._backward_from_loss(y, y_hat)
        state = dict(state)
        theta = self.optimizer.step([theta], [self._flat_grads()], [state], lr, t, xp)[0]
        dead = [xp.all(layer.z <= 0) for layer in self._relu_hidden()]
        return theta, state, y_hat, self.layers[-1].z, penalty, *dead

    def _scan_step(self, carry: tuple, inputs: tuple) -> tuple:
        """``_pure_step`` in the form ``lax.scan`` loops: (carry, inputs) -> (carry, outputs)."""
        theta, state, *outputs = self._pure_step(*carry, *inputs)
        return (theta, state), tuple(outputs)

    def _pure_epoch(
        self, theta, state, X, Y, order, rates, *, batch_size: int
    ) -> tuple[Array, dict, Array, Array, Array, Array]:
        """One epoch as a function of its inputs only (what ``jax.jit`` traces).

        The full batches run in one compiled loop (``Backend.scan``), the short last batch
        after it. Returns the new ``theta`` and state, the epoch's sums (loss, metric
        statistics, dead-layer flags of the last batch), and the shuffled ``Y``, ``y_hat``
        and logits (to find a bad batch after a non-finite loss). ``rates`` holds each
        step's learning rate (row 0) and step number ``t`` (row 1).
        """
        xp, n = self.xp, X.shape[0]
        if order is not None:
            X, Y = xp.take(X, order, axis=0), xp.take(Y, order, axis=0)
        lrs, ts = rates[0, ...], rates[1, ...]  # each step's learning rate and t
        full = n // batch_size
        m = full * batch_size
        outputs, logits, penalties, dead = [], [], [], []
        if full:
            Xb = xp.reshape(X[:m, ...], (full, batch_size, *X.shape[1:]))
            Yb = xp.reshape(Y[:m, ...], (full, batch_size, *Y.shape[1:]))
            inputs = (Xb, Yb, lrs[:full], ts[:full])
            (theta, state), out = self.backend.scan(self._scan_step, (theta, state), inputs)
            k = out[0].shape[-1]
            outputs.append(xp.reshape(out[0], (m, k)))
            logits.append(xp.reshape(out[1], (m, k)))
            penalties.append(xp.sum(out[2]))
            dead = [flags[-1] for flags in out[3:]]  # the flags of the last full batch
        if m < n:
            theta, state, y_hat, z, penalty, *dead = self._pure_step(
                theta, state, X[m:, ...], Y[m:, ...], lrs[full], ts[full]
            )
            outputs.append(y_hat)
            logits.append(z)
            penalties.append(penalty)
        # once per epoch here, not every flush_every steps: see Optimizer.flush_every
        self.optimizer._flush_subnormals(xp, [state])
        Y_hat = xp.concat(outputs, axis=0) if len(outputs) > 1 else outputs[0]
        Z = xp.concat(logits, axis=0) if len(logits) > 1 else logits[0]
        total_loss, totals = self._epoch_sums(Y, Y_hat, Z if self._fused else None, penalties, dead)
        return theta, state, xp.stack([total_loss, *totals]), Y, Y_hat, Z

    def _run_epoch(self, compiled: Any, X: Array, Y: Array, order: Any, steps: int) -> tuple:
        """Run the compiled epoch: the host keeps the step count, schedule and flush."""
        opt, b = self.optimizer, self.backend
        if len(opt.state) != 1:
            opt.build([self._theta])
        first = opt.iterations
        # the learning rate and t of each step, in one transfer; t in the model's float dtype
        # (an integer array would promote beta**t to float64)
        rates = [opt.learning_rates(steps), list(range(first + 1, first + steps + 1))]
        rates = b.asarray(rates, self.dtype)
        theta = self._theta
        try:
            theta, state, sums, Y, Y_hat, Z = compiled(theta, opt.state[0], X, Y, order, rates)
        except BaseException:  # a failed trace leaves its placeholders: put the weights back
            self._theta = theta
            self._bind_views()
            raise
        self._theta, opt.state = theta, [state]
        self._bind_views()
        opt.iterations = first + steps
        return sums, Y, Y_hat, Z if self._fused else None

    def _loss_value(self, Y: Array, Y_hat: Array, Z: Array | None) -> Array:
        if Z is not None:
            return self.loss.from_logits(Y, Z, Y_hat, self.xp)[0]
        return self.loss.forward(Y, Y_hat, self.xp)

    def _snapshot(self) -> tuple:
        """Copies of the weights and optimizer state (the updates happen in place)."""
        xp, opt = self.xp, self.optimizer
        if not self.backend.mutable:  # immutable arrays are their own snapshot
            return self._theta, [dict(s) for s in opt.state], opt.iterations
        theta = None if self._theta is None else xp.asarray(self._theta, copy=True)
        state = [{k: xp.asarray(v, copy=True) for k, v in s.items()} for s in opt.state]
        return theta, state, opt.iterations

    def _restore(self, snapshot: tuple) -> None:
        theta, state, iterations = snapshot
        if theta is not None:
            self._theta = theta
            self._bind_views()
        self.optimizer.state, self.optimizer.iterations = state, iterations

    def _nonfinite(self, epoch: int, loss: float, snapshot: tuple, callbacks: list) -> None:
        """A NaN/inf epoch loss: restore the epoch's starting point, then stop or raise."""
        Y, Y_hat, Z, sizes = self._epoch_outputs
        where, lo = f"epoch {epoch + 1}", 0
        for i, size in enumerate(sizes):  # the slow path: find the first bad batch
            rows = slice(lo, lo + size)
            lo += size
            value = self._loss_value(
                Y[rows, ...], Y_hat[rows, ...], None if Z is None else Z[rows, ...]
            )
            if not math.isfinite(float(self.backend.to_numpy(value))):
                where = f"epoch {epoch + 1}, batch {i + 1} of {len(sizes)}"
                break
        terminate = [c for c in callbacks if isinstance(c, _callbacks.TerminateOnNaN)]
        if not terminate or terminate[0].restore_weights:
            self._restore(snapshot)
        if terminate:
            return  # the callback stops training quietly, as Keras's does
        raise NonFiniteLossError(
            f"The loss became {loss} at {where}. The weights and optimizer state were restored "
            f"to their values at the start of epoch {epoch + 1}. Lower the learning rate, clip "
            "the gradients (e.g. optimizer=Adam(clipnorm=1.0)) or look for extreme values in "
            "the data; pass callbacks=[TerminateOnNaN()] to stop without an error."
        )

    def _relu_hidden(self) -> list[_layers.Layer]:
        return [
            layer
            for layer in self.layers[:-1]
            if getattr(getattr(layer, "activation", None), "name", None) == "relu"
        ]

    def _accumulate(self, totals: list[Any], y: Array, y_hat: Array) -> list[Any]:
        stats = [s for _, m in self.metrics for s in m.stats(y, y_hat, self.xp)]
        if not totals:
            return stats
        return [a + b for a, b in zip(totals, stats, strict=True)]

    def _logs(self, total_loss: Any, totals: list[Any], n: int, n_extra: int = 0) -> dict:
        """Bring the epoch's device sums to the host in one transfer and finish the metrics.

        ``n_extra`` trailing entries of ``totals`` are dead-layer flags of the last batch.
        """
        return self._finish_logs(self.xp.stack([total_loss, *totals]), n, n_extra)

    def _finish_logs(self, sums: Array, n: int, n_extra: int = 0) -> dict:
        """``_logs`` from the sums already stacked into one array."""
        if self._comm is not None:  # one sum over the ranks per epoch
            sums = self._comm.allreduce(sums, self.backend)
        host = [float(v) for v in self.backend.to_numpy(sums)]
        logs: dict[str, Any] = {}
        if n_extra:
            logs["_dead_in_last_batch"] = any(host[-n_extra:])
            host = host[:-n_extra]
        logs = {"loss": host[0] / n, **logs}
        i, k = 1, self.output_dim
        for name, metric in self.metrics:
            logs[name] = float(metric.result(host[i : i + metric.n_stats], n, k))
            i += metric.n_stats
        return logs

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
        self._require_compiled("evaluate")
        if y is None:
            raise TypeError("evaluate() needs labels: evaluate(X, y); received y=None.")
        _data.check_positive_int(batch_size, "batch_size", allow_none=True)
        X, Y = self._prepare(X, y)
        result = self._evaluate_device(X, Y, batch_size)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
        return result

    @_on_device
    def _evaluate_device(
        self, X, Y, batch_size: int | None = None, n_total: int | None = None
    ) -> dict[str, float]:
        """Loss and metrics of ``(X, Y)`` on the device; ``n_total`` rows over all ranks."""
        n = X.shape[0]
        batch_size = min(batch_size or n, n) or 1
        total_loss, totals = 0.0, []
        if not n:  # a rank with no validation rows adds zeros to the sums
            total_loss = self.backend.zeros((), self.dtype)
            totals = [total_loss for _, m in self.metrics for _ in range(m.n_stats)]
        fused = self._fused
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            xb, yb = X[lo:hi, ...], Y[lo:hi, ...]
            y_hat = self._forward(xb, training=False)
            if fused:
                loss, _ = self.loss.from_logits(yb, self.layers[-1].z, y_hat, self.xp)
            else:
                loss = self.loss.forward(yb, y_hat, self.xp)
            total_loss = total_loss + loss * (hi - lo)
            totals = self._accumulate(totals, yb, y_hat)
        for layer in self.layers:
            penalty = layer.penalty()
            if penalty is not None:
                total_loss = total_loss + penalty * n
        return self._logs(total_loss, totals, n if n_total is None else n_total)

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
        _data.check_positive_int(batch_size, "batch_size", allow_none=True)
        source = _backend.backend_of(X) if _backend.array_backend_name(X) else None
        Xd, _ = self._prepare(X)
        n = Xd.shape[0]
        batch_size = min(batch_size or n, n)
        parts = [
            self._forward(Xd[lo : min(lo + batch_size, n), ...], training=False)
            for lo in range(0, n, batch_size)
        ]
        out = parts[0] if len(parts) == 1 else self.xp.concat(parts, axis=0)
        if source is None or source.name == "numpy":
            return self.backend.to_numpy(out)
        return source.asarray(out)

    # -- gradients as host arrays ---------------------------------------------------------------
    @_on_device
    def loss_and_gradients(self, X: Any, y: Any, training: bool = False) -> tuple[float, list]:
        """The loss on ``(X, y)`` and its gradient for each weight array.

        Parameters
        ----------
        training : bool
            Run layers in training mode (dropout active). False by default so that the result
            is a deterministic function of the weights (what gradient checks need).

        Returns
        -------
        loss : float
        grads : list of numpy.ndarray
            Aligned with :meth:`get_weights` (W1, b1, W2, b2, ...).
        """
        self._require_compiled("loss_and_gradients")
        X, Y = self._prepare(X, y)
        y_hat = self._forward(X, training=training)
        loss = self._loss_and_backward(Y, y_hat)
        grads = [self.backend.to_numpy(layer.grads[k]) for layer, k in self._param_slots]
        return float(self.backend.to_numpy(self.xp.asarray(loss))), grads

    # -- weights --------------------------------------------------------------------------------
    def get_weights(self) -> list:
        """Copies of the weights as NumPy arrays, in Keras order: W1, b1, W2, b2, ...

        Returns
        -------
        list of numpy.ndarray
            ``W`` of shape ``(in_dim, units)`` and ``b`` of shape ``(units,)`` for each ``Dense``.
        """
        self._require_built("get_weights")
        return [self.backend.to_numpy(layer.params[k]).copy() for layer, k in self._param_slots]

    def set_weights(self, weights: list) -> None:
        """Replace the weights from a list shaped like :meth:`get_weights` (checked first).

        Parameters
        ----------
        weights : list of array_like
            Arrays shaped like those of :meth:`get_weights`, in the same order.
        """
        self._require_built("set_weights")
        slots = self._param_slots
        if not isinstance(weights, list | tuple) or len(weights) != len(slots):
            received = len(weights) if isinstance(weights, list | tuple) else type(weights).__name__
            raise ValueError(
                f"set_weights expects a list of {len(slots)} arrays (as get_weights returns), "
                f"received {received}."
            )
        arrays = []
        for (layer, k), w in zip(slots, weights, strict=True):
            w = _data.as_array(w, f"weights for {layer.name}.{k}")
            expected = tuple(layer.params[k].shape)
            if tuple(w.shape) != expected:
                raise ValueError(
                    f"set_weights: {layer.name}.{k} expects shape {expected}, received "
                    f"{tuple(w.shape)}."
                )
            arrays.append(self.backend.asarray(self.backend.to_numpy(w), self.dtype))
        for (layer, k), w in zip(slots, arrays, strict=True):
            layer.params[k] = w
        self._collect_params()

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(
                f"{what}() needs a built model: give the first layer input_dim=..., or fit it."
            )

    def count_params(self) -> int:
        """Total number of trainable scalars.

        Returns
        -------
        int
        """
        return sum(layer.count_params() for layer in self.layers)

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
                for k, p in layer.params.items():
                    layer.params[k] = target.asarray(p, dtype)
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
        out.append(f"Total params: {self.count_params()}")
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
