"""Training a network: ``compile``, ``fit``, ``evaluate``, ``predict`` and the steps between.

Keras's ``Model`` inherits these from its ``Trainer``; here they are the training methods of
``Sequential``, written as functions of the model (``self``) and bound in its class body
(``fit = trainer.fit``), so that ``help(bp.Sequential)`` and the API reference show them as the
model's own. Each checks its input through the data layer (``backprop.data``) and hands over to
``backprop.training``: the loop (epochs, batches, callbacks) and the step engines.

``fit(distributed=...)`` finds the communicators by name in ``backprop.registry``, where
``backprop.distributed`` registers them when imported (``import backprop`` imports it): the
distributed package sits above the model and is never imported by it.
"""

from __future__ import annotations

import functools
from typing import Any

from . import callbacks as _callbacks
from . import data as _data
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import registry as _registry
from .training import compilation as _compilation
from .training import loop as _loop
from .training import probe as _probe
from .training import step as _step

Array = Any

# what backprop.distributed registers: an object with resolve(distributed, backend) and
# failures_told(comm) (its module comm)
COMMUNICATORS = ("distributed", "communicators")

#: rows per batch of ``predict`` when its ``batch_size`` is not given
PREDICT_BATCH_SIZE = 1024


def on_device(method: Any) -> Any:
    """Run a method with the model's device current (CuPy computes on the current GPU)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.backend.activate():
            return method(self, *args, **kwargs)

    return wrapper


# -- compile --------------------------------------------------------------------------------------


def compile(
    self: Any,
    loss: str | _losses.Loss = "binary_crossentropy",
    optimizer: str | _optimizers.Optimizer = "adam",
    metrics: list[str | _metrics.Metric] | None = None,
    weighted_metrics: list[str | _metrics.Metric] | None = None,
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
    weighted_metrics : list, optional
        Metrics weighted by the ``sample_weight`` (or ``class_weight``) of ``fit`` and
        ``evaluate``, as Keras's ``weighted_metrics``.
    """
    _compilation.compile(self, loss, optimizer, metrics, weighted_metrics)


def _require_compiled(self: Any, what: str) -> None:
    _compilation.require_compiled(self, what)


# -- data: checked by the data layer, then on the device -----------------------------------


def _check(
    self: Any,
    X: Any,
    y: Any = None,
    name: str = "X",
    n_features: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> tuple[Any, Any]:
    """Validate X (and y against the loss and output width) without touching the model.

    ``X`` must have samples of the model's ``input_shape`` (or of ``input_shape`` /
    ``(n_features,)`` when given: the validation data of a model built by ``fit``).
    """
    if input_shape is None and n_features is not None:
        input_shape = (n_features,)
    return _data.check_inputs(
        X,
        y,
        n_features=None,
        input_shape=input_shape or self.input_shape,
        layer=self.layers[0].name if self.layers else None,
        backend=self.backend,
        dtype=self._dtype_name,
        loss_kind=None if y is None else self.loss.kind,
        n_outputs=self._out_dim_from,
        name=name,
        loss=None if y is None else self.loss.name,
    )


def _to_device(self: Any, X: Any, y: Any = None) -> tuple[Array, Array | None]:
    """Build if needed, then move checked X (and y, in the loss's layout) to the device."""
    if not self.built:
        self.build(tuple(X.shape[1:]))
        if self.loss is not None:  # "accuracy" depends on the output width
            self.metrics = _compilation.resolve_metrics(self)
    n_outputs = self.output_dim if y is not None else 0
    return _data.to_device(X, y, self.backend, self.dtype, self.loss, n_outputs)


def _prepare(self: Any, X: Any, y: Any = None) -> tuple[Array, Array | None]:
    return _to_device(self, *_check(self, X, y))


# -- steps --------------------------------------------------------------------------------


@on_device
def train_step(self: Any, x: Array, y: Array) -> tuple[Array, Array]:
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


# -- training ------------------------------------------------------------------------------


@on_device
def fit(
    self: Any,
    X: Any,
    y: Any = None,
    epochs: int = 1,
    batch_size: int | None = 32,
    shuffle: bool = True,
    validation_data: tuple[Any, Any] | None = None,
    validation_split: float = 0.0,
    verbose: int | str = "auto",
    callbacks: list[_callbacks.Callback] | None = None,
    initial_epoch: int = 0,
    distributed: Any = None,
    sample_weight: Any = None,
    class_weight: dict | None = None,
    validation_freq: int | list[int] = 1,
    validation_batch_size: int | None = None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
) -> _callbacks.History:
    """Train for ``epochs`` passes over ``(X, y)`` in shuffled mini-batches.

    Parameters
    ----------
    X : array_like, store, generator or PyDataset
        NumPy data or an array of any supported library, shape (n_samples, n_features); a
        store read batch by batch (a NumPy memmap, an h5py or zarr dataset, a Dask array);
        or batches ``(x, y)``/``(x, y, sample_weight)`` from a generator, an iterable (a
        torch ``DataLoader``) or a :class:`backprop.data.PyDataset` (see docs/data.md).
    y : array_like, shape (n_samples,) or (n_samples, n_outputs)
        Labels in the loss's layout (0/1, one-hot, integer classes or real values). None
        for a generator or a PyDataset, whose batches carry them.
    epochs : int
        Passes over the data.
    batch_size : int or None
        Samples per step (None: 32, Keras's default); larger than n means full batch.
        Unused for a generator or a PyDataset: their batches are as they come.
    shuffle : bool
        Reshuffle the samples each epoch (from the model's seeded host generator). A
        generator or a PyDataset keeps its own order.
    validation_data : tuple, generator or PyDataset, optional
        ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)`` (arrays or stores), or
        batches from a generator or a PyDataset. Evaluated after each epoch (weighted by
        ``sample_weight_val`` when given); adds ``val_*`` keys to the history.
    validation_split : float
        Fraction of the data, taken from the end before shuffling, held out for validation.
        Refused for a generator or a PyDataset (they cannot be split without reading them),
        as Keras: pass ``validation_data``.
    verbose : {"auto", 0, 1, 2}
        Silent, a progress bar per epoch, or one line per epoch; ``"auto"`` is 1 (Keras 3).
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
        writes checkpoints. A store (memmap, h5py, zarr, Dask): each rank reads only its
        rows of each global batch. A generator or a PyDataset: each rank's own stream, step
        i's global batch the ranks' i-th batches (docs/data.md says when that equals one
        process).
    sample_weight : array_like, shape (n_samples,), optional
        Each sample's weight in the loss (finite, >= 0). As Keras's default reduction
        ``"sum_over_batch_size"``: a batch's loss is ``sum_i w_i L_i`` divided by its rows
        (not by the sum of the weights). Regularization penalties are not weighted; the
        ``metrics`` are not either. A ``validation_split`` takes the weights of its rows.
    class_weight : dict, optional
        ``{class index: weight}``: each row weighs its class's weight (binary labels
        rounded, one-hot rows by their largest entry, integer labels as they are; classes
        missing from the dict weigh 1, as in Keras). Not together with ``sample_weight``.
        The training rows only: the rows of a ``validation_split`` are not weighted (Keras 3).
    validation_freq : int or list of int, default 1
        Validate after every ``validation_freq``-th epoch, or after the epochs listed
        (counted from 1: ``[1, 5, 10]``), as in Keras; the other epochs' logs have no
        ``val_*`` keys.
    validation_batch_size : int, optional
        Rows per validation batch. Unset, the validation rows run in one batch, as before
        (Keras uses ``batch_size``; a large validation set wants a value here, which bounds
        the memory the validation takes).
    steps_per_epoch : int, optional
        The batches of a generator or a PyDataset per epoch, as Keras: unset, an epoch is
        the whole source (its length, or until a generator runs out, after which training
        stops). A generator that runs out before ``steps_per_epoch`` ends the epoch and the
        training with a warning naming the batch. Arrays and stores take their
        ``ceil(rows / batch_size)`` steps (refused with them).
    validation_steps : int, optional
        The batches of a validation generator or PyDataset per validation (unset: all).

    Returns
    -------
    History
        ``history.history`` maps ``"loss"``, metric names and ``"val_*"`` to per-epoch lists.
    """
    args = (X, y, epochs, batch_size, shuffle, validation_data, validation_split, verbose)
    weights = dict(
        sample_weight=sample_weight,
        class_weight=class_weight,
        validation_freq=validation_freq,
        validation_batch_size=validation_batch_size,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
    )
    if distributed is None or distributed is False:
        return _loop.fit(self, *args, callbacks, initial_epoch, **weights)
    # the distributed package sits above the model: it registered its communicators by name
    comms = _registry.lookup(
        *COMMUNICATORS,
        hint="fit(distributed=...) needs backprop.distributed, which registers them when "
        "imported: import backprop.distributed (import backprop does).",
    )
    comm = comms.resolve(distributed, self.backend)
    with comms.failures_told(comm):
        return _loop.fit(self, *args, callbacks, initial_epoch, comm=comm, **weights)


@on_device
def dead_layers(self: Any, X: Any) -> list[str]:
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
@on_device
def evaluate(
    self: Any,
    X: Any,
    y: Any = None,
    batch_size: int | None = None,
    verbose: int | str = 0,
    callbacks: list[_callbacks.Callback] | None = None,
    sample_weight: Any = None,
    return_dict: bool = True,
    steps: int | None = None,
    distributed: Any = None,
) -> dict[str, float] | float | list[float]:
    """Loss and metrics on ``(X, y)`` (inference mode: no dropout).

    Parameters
    ----------
    X : array_like, shape (n, n_features), store, generator or PyDataset
        Inputs (any library), a store read batch by batch, or batches ``(x, y)`` from a
        generator, an iterable or a PyDataset (as ``fit`` takes them).
    y : array_like, shape (n,) or (n, n_outputs)
        Targets (None for a generator or a PyDataset).
    batch_size : int, optional
        Rows per batch; all at once when omitted (a store: 1024 rows; a generator or a
        PyDataset: its own batches).
    verbose : {0, 1, 2, "auto"}, default 0
        Whether to print the results (``"auto"``: 1). Silent by default, unlike Keras.
    callbacks : list of Callback, optional
        Called as Keras's ``evaluate`` calls them: ``on_test_begin``, then
        ``on_test_batch_begin``/``on_test_batch_end`` around each batch (the end's logs: the
        running loss and metrics), then ``on_test_end`` with the results.
    sample_weight : array_like, shape (n,), optional
        Each sample's weight in the loss and the ``weighted_metrics``, as in ``fit``.
    return_dict : bool, default True
        True: the dict below. False: Keras's plain result, the loss as a float without
        metrics, else ``[loss, *metrics]`` in the metrics' order. The default differs from
        Keras's (False) because code written for this library reads the dict.
    steps : int, optional
        The batches of a generator or a PyDataset to evaluate (unset: all of them).
    distributed : bool, str or Communicator, optional
        As in ``fit``: every rank calls ``evaluate`` with the same data and evaluates its
        part of the rows (a store: reads only them); the results are those of one process.
        The ranks first check that they hold the same data (a store: 16 of its rows).

    Returns
    -------
    dict, float or list of float
        ``{"loss": ..., "accuracy": ..., ...}`` (or as ``return_dict`` says).
    """
    if not isinstance(return_dict, bool):
        raise TypeError(f"return_dict must be True or False, received {return_dict!r}.")
    if distributed is None or distributed is False:
        result = _loop.evaluate(
            self, X, y, batch_size, verbose, callbacks=callbacks, sample_weight=sample_weight,
            steps=steps,
        )  # fmt: skip
    else:  # the ranks' check, then each rank its part (backprop.distributed registered it)
        hint = (
            "evaluate(distributed=...) needs backprop.distributed, which registers it when "
            "imported: import backprop.distributed (import backprop does)."
        )
        comm = _registry.lookup(*COMMUNICATORS, hint=hint).resolve(distributed, self.backend)
        result = _registry.lookup("distributed", "evaluate", hint=hint)(
            self, X, y, comm, batch_size=batch_size, verbose=verbose, callbacks=callbacks,
            sample_weight=sample_weight, steps=steps,
        )  # fmt: skip
    if return_dict:
        return result
    values = list(result.values())
    return values[0] if len(values) == 1 else values


@on_device
def predict(
    self: Any,
    X: Any,
    batch_size: int | None = None,
    callbacks: list[_callbacks.Callback] | None = None,
    verbose: int | str = 0,
    steps: int | None = None,
) -> Any:
    """Outputs ``y_hat`` for ``X`` (inference mode).

    The result is of the input's library and device: NumPy in gives NumPy out; a CuPy, torch
    or array_api_strict array in gives the same library, on the same device, out.

    Parameters
    ----------
    X : array_like, shape (n, n_features), store, generator or PyDataset
        Inputs (any library), a store read batch by batch, or batches ``(x,)`` (or
        ``(x, y)``: ``y`` unused) from a generator, an iterable or a PyDataset (NumPy out).
    batch_size : int, optional
        Rows per batch; unset, batches of 1024 rows (Keras uses 32): large enough that the
        per-batch overhead stays small, small enough that the memory ``predict`` takes above
        the data and the outputs stays that of one batch's activations.
    callbacks : list of Callback, optional
        Called as Keras's ``predict`` calls them: ``on_predict_begin``, then
        ``on_predict_batch_begin``/``on_predict_batch_end`` around each batch (the end's
        logs: ``{"outputs": y_hat}`` of the batch, on the model's device), then
        ``on_predict_end``.
    verbose : {0, 1, 2, "auto"}, default 0
        1 or ``"auto"``: a progress bar over the batches. Silent by default, unlike Keras.
    steps : int, optional
        The batches of a generator or a PyDataset to predict (unset: all of them).

    Returns
    -------
    y_hat : array, shape (n, n_outputs)
        The predictions, in the library and on the device of ``X``.
    """
    if batch_size is None:
        batch_size = PREDICT_BATCH_SIZE
    return _loop.predict(self, X, batch_size, callbacks=callbacks, verbose=verbose, steps=steps)


# -- gradients as host arrays ---------------------------------------------------------------
@on_device
def loss_and_gradients(self: Any, X: Any, y: Any, training: bool = False) -> tuple[float, list]:
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
