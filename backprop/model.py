"""The Sequential model: the network, a stack of layers, and its backpropagation.

One training step is the whole algorithm::

    y_hat = forward(x)                      # each layer caches what its backward needs
    L, dL/dy_hat = loss(y, y_hat)           # or dL/dz when the output activation is fused
    for layer in reversed(layers):          # the chain rule, layer by layer
        dy = layer.backward(dy)             # fills layer.grads
    params = optimizer.apply(params, grads)

This module is the network: its layers, forward and backward, its weights in and out, moving
it between backends. What it hands over to lives on the floors below, none of which imports it:

- ``backprop.parameters``: the weights as views of one flat vector (``FlatParameters``, the
  base class of ``Sequential``);
- ``backprop.trainer``: ``compile``, ``fit``, ``evaluate``, ``predict``, ``train_step``,
  ``loss_and_gradients``, ``dead_layers`` (Keras's ``Trainer`` methods, bound here), which
  check input through ``backprop.data`` and hand over to ``backprop.training``;
- ``backprop.calls``: ``model(X)``, ``predict_on_batch``, ``train_on_batch``,
  ``test_on_batch`` and ``pop``; ``backprop.weights``: ``get_weights``, ``set_weights`` and
  ``weights``, ``trainable_weights``, ``non_trainable_weights`` (Keras's handles);
- ``backprop.summary`` (``summary``), ``backprop.explain`` (``explain``), ``backprop.io``
  (``save``; ``bp.load`` builds a ``Sequential`` through ``backprop.registry``, where this
  module registers it) and ``backprop.clone`` (``bp.clone_model``).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

from . import backend as _backend
from . import callbacks as _callbacks
from . import calls as _calls
from . import data as _data
from . import explain as _explain
from . import io as _io
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import registry as _registry
from . import summary as _summary
from . import trainer as _trainer
from . import weights as _weights
from ._checks import check_bool
from .parameters import FlatParameters, check_input_fits
from .rng import Streams
from .trainer import on_device as _on_device
from .training.errors import DeadNetworkWarning, NonFiniteLossError

__all__ = ["DeadNetworkWarning", "NonFiniteLossError", "Sequential"]

Array = Any

# each model's token: the layers and the optimizer it owns record it (ids can be reused)
_TOKENS = itertools.count()


@contextlib.contextmanager
def _unbuilt_if_failing(layer: _layers.Layer) -> Any:
    """Run ``layer.build``; if it raises, put the layer back as it was before (unbuilt).

    ``Layer.build`` marks the layer built before its initializers draw: one that raises would
    leave it looking built with some params missing, and reusing it would fail far away
    (``KeyError: 'b'``). Restored, the cause can be fixed and the layer used again.
    """
    before = {k: dict(v) if isinstance(v, dict) else v for k, v in vars(layer).items()}
    try:
        yield
    except BaseException:
        vars(layer).clear()
        vars(layer).update(before)
        raise


class Sequential(FlatParameters):
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
        self._weighted_metric_specs: list[str | _metrics.Metric] = []
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
        if self.input_shape is not None:  # the first layer knows its input: build what is new
            try:
                self.build(self.input_shape)
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
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one input sample, no batch axis: ``(28, 28, 1)``, ``(k,)`` (None: unknown)."""
        return self.layers[0].input_shape if self.layers else None

    @property
    def input_dim(self) -> int | None:
        """Number of input features, the last entry of ``input_shape`` (None: unknown)."""
        return self.layers[0].input_dim if self.layers else None

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one output sample (no batch axis)."""
        return self._output_shape_from(self.input_shape)

    @property
    def output_dim(self) -> int:
        """Number of output units (the losses and metrics take outputs ``(n, output_dim)``)."""
        return self._out_dim_from(self.input_shape)

    def build(self, input_shape: int | tuple[int, ...]) -> None:
        """Create every layer's parameters for samples of shape ``input_shape``.

        Parameters
        ----------
        input_shape : int or tuple of int
            Shape of one sample, ``(28, 28, 1)`` or ``(k,)`` (Keras's ``(None, 28, 28, 1)``,
            with the batch axis, is read the same); an int ``k`` is short for ``(k,)``.
        """
        if not self.layers:
            raise ValueError("The model has no layers: add some with model.add(...) first.")
        if isinstance(input_shape, tuple | list) and input_shape and input_shape[0] is None:
            input_shape = tuple(input_shape[1:])  # Keras's batch axis
        if not isinstance(input_shape, tuple | list):
            _data.check_positive_int(input_shape, "input_shape")
        shape = _layers.core._check_input_shape(input_shape, self.name)
        for i, layer in enumerate(self.layers):
            if not layer.built:
                if i > 0:
                    check_input_fits(layer, shape)
                with _unbuilt_if_failing(layer):
                    layer.build_from_shape(shape, *self._build_args(layer))
            shape = layer.compute_output_shape(shape)
        self._collect_params()

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

    def _output_shape_from(self, input_shape: int | tuple[int, ...]) -> tuple[int, ...]:
        if not self.layers:  # (after pop() too: the input is no output)
            raise ValueError("The model has no layers: add some with model.add(...) first.")
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def _out_dim_from(self, input_shape: int | tuple[int, ...]) -> int:
        shape = self._output_shape_from(input_shape)
        if len(shape) != 1:
            raise ValueError(
                f"The model outputs samples of shape {shape}, but the losses and metrics take "
                "outputs of shape (n, k): end the model with bp.layers.Flatten() (or a global "
                "pooling layer) and a Dense layer."
            )
        return shape[0]

    # -- training: Keras's Trainer methods, written in backprop/trainer.py -------------------------
    compile = _trainer.compile
    fit = _trainer.fit
    evaluate = _trainer.evaluate
    predict = _trainer.predict
    train_step = _trainer.train_step
    loss_and_gradients = _trainer.loss_and_gradients
    dead_layers = _trainer.dead_layers
    _require_compiled = _trainer._require_compiled
    # the input checks (backprop.data) and the move to the device, which the loop calls
    _check = _trainer._check
    _to_device = _trainer._to_device
    _prepare = _trainer._prepare

    # -- weights: NumPy copies, and Keras's handles (backprop/weights.py) -------------------------
    get_weights = _weights.get_weights
    set_weights = _weights.set_weights
    weights = property(_weights.weights)
    trainable_weights = property(_weights.trainable_weights)
    non_trainable_weights = property(_weights.non_trainable_weights)

    # -- Keras's calls on one batch, and pop (backprop/calls.py) ---------------------------------
    __call__ = _calls.call
    predict_on_batch = _calls.predict_on_batch
    train_on_batch = _calls.train_on_batch
    test_on_batch = _calls.test_on_batch
    pop = _calls.pop

    def count_params(self) -> int:
        """Total number of scalars in the weights, trainable or not (as Keras counts).

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
        return _summary.summary(self, print_fn)

    def get_config(self) -> dict[str, Any]:
        """Architecture and settings as JSON-able values (used by ``save``).

        Returns
        -------
        dict
            The name, dtype, seed, each layer's class name and config, and (built) the
            ``input_shape`` it was built for (Keras's ``build_input_shape``).
        """
        config = {
            "name": self.name,
            "dtype": self._dtype_name,
            "seed": self.seed,
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
        }
        if self.built:
            config["input_shape"] = list(self.input_shape)
        return config

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
        return _explain.explain(self, X, y, batch=batch, print_fn=print_fn)

    def save(self, path: str) -> None:
        """Save architecture, weights, compile settings and optimizer state (no pickle).

        Parameters
        ----------
        path : str or path-like
            The file to write (see ``docs/file-format.md``).
        """
        _io.save(self, path)

    def load_weights(self, path: str) -> None:
        """Load the weights of a file written by :meth:`save` into this model (Keras's name).

        The weights only, as Keras's ``load_weights``: the optimizer (its state, step count
        and learning rate) and the random streams stay this model's, so a model can take
        trained weights and be compiled anew, e.g. to fine-tune. ``bp.load(path)`` builds a
        new model with everything the file holds instead.

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save` (``.npz`` may be left out).

        Raises
        ------
        RuntimeError
            If the model is not built.
        ValueError
            If the file is damaged, or holds another architecture (other layer classes or
            weight shapes); the model is left as it was.
        FileNotFoundError
            If there is no file at ``path``.
        """
        _io.restore(self, _io.read(path))

    def _restore_training_state(self, path: str, comm: Any = None) -> None:
        """Weights, optimizer state, step count, learning rate and random streams of a file.

        What ``BackupAndRestore`` resumes from (private: the public ways are
        :meth:`load_weights` and ``bp.load``). With ``comm``, every rank calls it: rank 0
        reads ``path`` and every rank restores that, keeping its own dropout stream. Raises
        as :meth:`load_weights`, and also for an uncompiled model (``RuntimeError``) or a
        file with no optimizer state or another optimizer's (``ValueError``).
        """
        own_dropout = comm is not None and not comm.is_root
        _io.restore(self, _io.read(path, comm), training_state=True, own_dropout=own_dropout)

    def __repr__(self) -> str:
        return (
            f"Sequential({len(self.layers)} layers, backend={self.backend.spec!r}, "
            f"dtype={self._dtype_name!r})"
        )


# bp.load builds the model it reads through the registry: io sits below this module
_registry.register("model", "Sequential", Sequential)
