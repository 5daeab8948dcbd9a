"""Keras's calls on one batch (``model(X)``, ``*_on_batch``) and ``Sequential.pop``.

Each is the model's method, written as a function of the model (``self``) and bound in
``Sequential``'s class body, as ``backprop.trainer`` does for ``fit``. Each checks its input
through the data layer before anything changes, and runs what ``fit``, ``evaluate`` and
``predict`` run on a batch:

- ``train_on_batch`` is one step of the eager engine (``training.step``), its loss and metrics
  summed as ``fit`` sums an epoch's (``training.logs``): equal to a ``fit`` of one epoch with
  ``batch_size`` = the batch and ``shuffle=False``. The values are the batch's alone, as Keras 3
  returns them since keras-team/keras#22617 (which resets the metrics at each call; before it,
  they were running means over every call since the last ``reset_metrics``).
- ``test_on_batch`` is ``evaluate`` on one batch, ``predict_on_batch`` ``predict`` on one batch.
- ``model(X)`` is ``predict`` in one batch; ``model(X, training=True)`` runs the layers in
  training mode (dropout on, BatchNormalization on the batch's statistics, which it also folds
  into its moving statistics, as Keras's layer does when called in training mode).
"""

from __future__ import annotations

from typing import Any

from . import data as _data
from ._checks import check_bool
from .backend import array_backend_name, backend_of
from .trainer import on_device
from .training import compilation as _compilation
from .training import logs as _logs
from .training import loop as _loop
from .training import step as _step

Array = Any

__all__ = ["call", "pop", "predict_on_batch", "test_on_batch", "train_on_batch"]


@on_device
def call(self: Any, X: Any, training: bool | None = False) -> Any:
    """Outputs for ``X``: Keras's ``model(X)``, in one batch.

    Parameters
    ----------
    X : array_like, shape (n, *input_shape)
        Inputs (any library).
    training : bool, default False
        False (or None): inference, equal to :meth:`predict`. True: the layers in training
        mode: dropout masks drawn (from the model's dropout stream), BatchNormalization on the
        batch's statistics, which it also folds into its moving statistics (as Keras's layer
        does when called with ``training=True``; a frozen one runs in inference mode). No
        trainable weight and no optimizer state changes.

    Returns
    -------
    array, shape (n, *output_shape)
        In the library and on the device of ``X``, as :meth:`predict` returns.
    """
    training = False if training is None else check_bool(training, "training")
    if not training:
        return _loop.predict(self, X)
    source = backend_of(X) if array_backend_name(X) else None
    Xd, _ = self._prepare(X)
    out = self._forward(Xd, training=True)
    if source is None or source.name == "numpy":
        return self.backend.to_numpy(out)
    return source.asarray(out)


@on_device
def predict_on_batch(self: Any, x: Any) -> Any:
    """Outputs for ``x`` in one batch (inference mode): :meth:`predict` without batching.

    Parameters
    ----------
    x : array_like, shape (n, *input_shape)
        Inputs (any library).

    Returns
    -------
    array, shape (n, *output_shape)
        In the library and on the device of ``x``, as :meth:`predict` returns (Keras
        returns NumPy).
    """
    return _loop.predict(self, x)


def _results(logs: dict[str, float], return_dict: bool) -> Any:
    """Keras's return value: the dict, or the loss alone, or ``[loss, *metrics]``."""
    if return_dict:
        return logs
    values = list(logs.values())  # the loss first, then the metrics in compile's order
    return values[0] if len(values) == 1 else values


@on_device
def train_on_batch(
    self: Any,
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    class_weight: dict | None = None,
    return_dict: bool = False,
) -> Any:
    """One step of gradient descent on one batch; returns its loss and metrics.

    The step ``fit`` takes: ``train_on_batch(X, y)`` changes the model as
    ``fit(X, y, epochs=1, batch_size=len(X), shuffle=False)`` does and returns that epoch's
    loss and metrics. The values are this batch's alone (its outputs before the update), as
    Keras 3 returns since it resets the metrics at each call (keras-team/keras#22617).

    Parameters
    ----------
    x : array_like, shape (n, *input_shape)
        The batch's inputs (any library).
    y : array_like, shape (n,) or (n, n_outputs)
        Its targets.
    sample_weight : array_like, shape (n,), optional
        Each sample's weight in the loss, as in :meth:`fit`.
    class_weight : dict, optional
        ``{class index: weight}``, as in :meth:`fit`; not together with ``sample_weight``.
    return_dict : bool, default False
        Return ``{"loss": ..., metric: ...}`` instead of a list.

    Returns
    -------
    float or list of float or dict
        The loss alone when the model has no metrics, else ``[loss, *metrics]`` in
        ``compile``'s order; the dict with ``return_dict=True``. A loss that is not finite
        is returned as it is (``fit`` restores and raises; Keras's ``train_on_batch`` does
        not).

    Raises
    ------
    RuntimeError
        If the model is not compiled.
    ValueError, TypeError
        For input ``fit`` refuses; the model is left as it was.
    """
    _compilation.require_compiled(self, "train_on_batch")
    if y is None:
        raise TypeError("train_on_batch() needs labels: train_on_batch(x, y); received y=None.")
    return_dict = check_bool(return_dict, "return_dict")
    _compilation.check_optimizer_state(self)
    # every check runs before the model is built or touched, as in fit
    X, y = self._check(x, y)
    sample_weight, class_weight = _data.check_weights(
        sample_weight, class_weight, X.shape[0], "train_on_batch()"
    )
    X, Y = self._to_device(X, y)
    if class_weight is not None:
        sample_weight = _data.class_weight_to_sample_weight(class_weight, self.backend.to_numpy(Y))
    Y = _loop.with_weights(self, Y, sample_weight)
    # the step as the eager engine runs it: the penalty of the weights it starts from, the
    # step, then the loss and metrics of its outputs, summed as fit sums an epoch's
    n = X.shape[0]
    penalty = self._penalty()
    y_hat = _step.step(self, X, Y)
    z = self.layers[-1].z if self._fused else None
    sums = _logs.batch_sums(self, Y, y_hat, z, None if penalty is None else penalty * n)
    return _results(_logs.finish(self, sums, n), return_dict)


@on_device
def test_on_batch(
    self: Any, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
) -> Any:
    """Loss and metrics of one batch (inference mode): :meth:`evaluate` in one batch.

    Parameters
    ----------
    x : array_like, shape (n, *input_shape)
        The batch's inputs (any library).
    y : array_like, shape (n,) or (n, n_outputs)
        Its targets.
    sample_weight : array_like, shape (n,), optional
        Each sample's weight in the loss, as in :meth:`evaluate`.
    return_dict : bool, default False
        Return ``{"loss": ..., metric: ...}`` instead of a list.

    Returns
    -------
    float or list of float or dict
        As :meth:`train_on_batch` returns them; nothing in the model changes.
    """
    _compilation.require_compiled(self, "test_on_batch")
    if y is None:
        raise TypeError("test_on_batch() needs labels: test_on_batch(x, y); received y=None.")
    return_dict = check_bool(return_dict, "return_dict")
    return _results(_loop.evaluate(self, x, y, sample_weight=sample_weight), return_dict)


test_on_batch.__test__ = False  # a method of the model that pytest would take for a test


def pop(self: Any) -> Any:
    """Remove the last layer, and return it (Keras's ``Sequential.pop``).

    The model keeps the other layers' weights. A compiled model keeps its optimizer's state
    for them, and its step count, as Keras's optimizer does (its state is per weight): the
    popped layer's part goes, so no later step uses a state made for a weight that is gone.
    The metrics are set up again for the new output. The layer is free to join another model.
    After ``add`` of a new layer, compile again before training (``fit`` says so).

    Returns
    -------
    Layer
        The layer removed, with its weights.

    Raises
    ------
    IndexError
        If the model has no layers.
    """
    if not self.layers:
        raise IndexError(
            "pop() removes the last layer, but the model has no layers: add some with "
            "model.add(...) first."
        )
    opt = self.optimizer
    # the state is kept only where it was made for today's weights (fit would refuse it
    # otherwise, and still will: a layer was frozen or added since training began)
    keep = bool(opt is not None and opt.state and self.built and _state_is_current(self))
    layer = self.layers.pop()
    try:
        metrics = _metrics_for_output(self)
    except BaseException:  # the model as it was
        self.layers.append(layer)
        raise
    layer._model_token = None
    self.metrics = metrics
    if all(other.built for other in self.layers):
        self._collect_params()  # the remaining weights, packed anew
    if keep:
        _drop_popped_state(self)
    return layer


def _state_is_current(model: Any) -> bool:
    """Whether the optimizer's state was made for the weights the model trains now."""
    try:
        _compilation.check_optimizer_state(model)
    except ValueError:
        return False
    return True


def _metrics_for_output(model: Any) -> list:
    """The compiled metrics set up for the output of the layers now.

    ``"accuracy"`` depends on the output width. Left as they are where the output is not of
    shape ``(k,)`` yet (no loss takes it: a head is to be added).
    """
    if model.loss is None or not model.layers or not model.built:
        return model.metrics
    if len(model._output_shape_from(model.input_shape)) != 1:
        return model.metrics
    return _compilation.resolve_metrics(model)


def _drop_popped_state(model: Any) -> None:
    """Keep the optimizer's state of the weights theta holds now: its leading part.

    The layers pack their weights into theta in order, so the popped layer's were the last
    entries (per array with ``clipnorm``: the last arrays). The step count stays.
    """
    opt, xp = model.optimizer, model.xp
    if model._theta is None:
        opt.state = []
    elif opt.clipnorm is None:
        n = int(model._theta.shape[0])
        copy = model.backend.mutable  # a slice is a view there: the big array would stay
        opt.state = [
            {k: xp.asarray(v[:n], copy=True) if copy else v[:n] for k, v in s.items()}
            for s in opt.state
        ]
    else:
        opt.state = opt.state[: len(model._param_slots)]
    # the state is made for today's layout now: forget the old one, and let the check of fit
    # confirm the shapes and record the layout
    model._optimizer_layout = None
    _compilation.check_optimizer_state(model)
