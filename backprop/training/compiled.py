"""The compiled engine: a whole epoch as one program (``jax.jit`` + ``lax.scan`` on JAX).

The program is the same Array API code the eager engine runs, traced once per data shape:
the shuffle, every step (forward, backward, the optimizer's update) looped by
``Backend.scan``, the short last batch, the epoch's loss and metric sums and the dead-layer
flags. The host keeps the step count, the learning-rate schedule and the subnormal flush.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import callbacks as _callbacks
from .. import layers as _layers
from . import logs as _logs
from . import step as _step
from .base import Engine, Epoch
from .probe import relu_hidden

Array = Any


def program(model: Any, batch_size: int) -> Any:
    """The model's epoch compiled as one program, or None where it runs step by step.

    None on a backend that does not compile, and for models the program cannot hold:
    dropout (host-drawn masks) and per-array clipping. ``compile()`` drops the program; the
    cache key covers what changes without a compile.
    """
    opt = model.optimizer
    if (
        model._theta is None
        or opt.clipnorm is not None
        or any(isinstance(layer, _layers.Dropout) for layer in model.layers)
    ):
        return None
    key = (
        model.backend,
        batch_size,
        tuple(model._bounds),
        tuple(map(id, model.layers)),
        model._trainable_key,
        _constants(model),
    )
    if model._compiled is None or model._compiled[0] != key:
        epoch = functools.partial(pure_epoch, model, batch_size=batch_size)
        model._compiled = (key, model.backend.compile(epoch))
    return model._compiled[1]


def _constants(model: Any) -> tuple:
    """The settings the program holds as constants (compared, never hashed).

    The optimizer's (except the learning rate, an input of each step) and every layer's
    (activations' and regularizers' parameters). A change between epochs
    (``optimizer.momentum = 0.5`` in a callback) traces a new program instead of running the
    old one.
    """
    opt = {k: v for k, v in model.optimizer.get_config().items() if k != "learning_rate"}
    return opt, [layer.get_config() for layer in model.layers]


def pure_step(
    model: Any, theta: Array, state: dict, buffers: list, x: Array, y: Array, lr: Any, t: Any
) -> tuple:
    """One step as a function of its inputs only (what the compiled epoch loops over).

    ``buffers`` are the weights outside ``theta`` (moving statistics, frozen layers): inputs
    and outputs of the step, so the program carries BatchNormalization's updates from step to
    step. Returns the new ``theta``, state and buffers, the step's ``y_hat`` and logits, the
    batch's
    regularization penalty times its rows (of the weights the step started from), and
    one dead-layer flag per hidden ReLU layer. The flags are outputs, not read from
    ``layer.z`` after the loop: inside ``lax.scan`` that attribute holds the loop's tracer,
    which must not escape it.
    """
    xp = model.xp
    model._theta = theta
    model._bind_views(compiled=False)
    model._set_buffers(buffers)
    penalty = model._penalty()
    penalty = model.backend.zeros((), model.dtype) if penalty is None else penalty * x.shape[0]
    y_hat = model._forward(x, training=True)
    _step.backward(model, y, y_hat)
    state = dict(state)
    theta = model.optimizer.step([theta], [model._flat_grads()], [state], lr, t, xp)[0]
    theta = model._constrain(theta)  # Keras: each weight projected after its update
    dead = [xp.all(layer.z <= 0) for layer in relu_hidden(model)]
    # the logits are a fused loss's (its last layer is a Dense or Activation); any other loss
    # needs none, and its last layer may have no z (a normalization): y_hat takes the place
    z = model.layers[-1].z if model._fused else y_hat
    return theta, state, model._get_buffers(), y_hat, z, penalty, *dead


def pure_epoch(
    model: Any, theta, state, buffers, X, Y, order, rates, *, batch_size: int
) -> tuple[Array, dict, list, Array, Array, Array, Array]:
    """One epoch as a function of its inputs only (what ``jax.jit`` traces).

    The full batches run in one compiled loop (``Backend.scan``) over the epoch's order
    reshaped ``(steps, batch_size)``, each step gathering its rows of ``X``; the short last
    batch after it. Returns the new ``theta``, state and buffers, the epoch's sums (loss, metric
    statistics, dead-layer flags of the last batch), and the shuffled ``Y``, ``y_hat``
    and logits (to find a bad batch after a non-finite loss). ``rates`` holds each
    step's learning rate (row 0) and step number ``t`` (row 1).
    """
    xp, n = model.xp, X.shape[0]
    if order is not None:
        # the targets in the epoch's order, for the epoch's sums (a copy of the targets only:
        # the rows of X are gathered one batch at a time inside the steps)
        Y = xp.take(Y, order, axis=0)
    lrs, ts = rates[0, ...], rates[1, ...]  # each step's learning rate and t
    full = n // batch_size
    m = full * batch_size
    outputs, logits, penalties, dead = [], [], [], []

    def scan_step(carry: tuple, inputs: tuple) -> tuple:
        """``pure_step`` in the form ``lax.scan`` loops: (carry, inputs) -> (carry, outputs).

        ``inputs`` holds the step's rows of ``X`` (unshuffled: a slice) or their indices in
        the epoch's order, gathered here: one batch at a time, never the whole set.
        """
        rows, y, lr, t = inputs
        x = rows if order is None else xp.take(X, rows, axis=0)
        theta, state, buffers, *outputs = pure_step(model, *carry, x, y, lr, t)
        return (theta, state, buffers), tuple(outputs)

    if full:
        if order is None:
            rows = xp.reshape(X[:m, ...], (full, batch_size, *X.shape[1:]))
        else:
            rows = xp.reshape(order[:m], (full, batch_size))
        Yb = xp.reshape(Y[:m, ...], (full, batch_size, *Y.shape[1:]))
        inputs = (rows, Yb, lrs[:full], ts[:full])
        (theta, state, buffers), out = model.backend.scan(
            scan_step, (theta, state, buffers), inputs
        )
        k = out[0].shape[-1]
        outputs.append(xp.reshape(out[0], (m, k)))
        logits.append(xp.reshape(out[1], (m, k)))
        penalties.append(xp.sum(out[2]))
        dead = [flags[-1] for flags in out[3:]]  # the flags of the last full batch
    if m < n:
        theta, state, buffers, y_hat, z, penalty, *dead = pure_step(
            model,
            theta,
            state,
            buffers,
            X[m:, ...] if order is None else xp.take(X, order[m:], axis=0),
            Y[m:, ...],
            lrs[full],
            ts[full],
        )
        outputs.append(y_hat)
        logits.append(z)
        penalties.append(penalty)
    # once per epoch here, not every flush_every steps: see Optimizer.flush_every
    model.optimizer._flush_subnormals(xp, [state])
    Y_hat = xp.concat(outputs, axis=0) if len(outputs) > 1 else outputs[0]
    Z = xp.concat(logits, axis=0) if len(logits) > 1 else logits[0]
    total_loss, totals = _logs.epoch_sums(
        model, Y, Y_hat, Z if model._fused else None, penalties, dead
    )
    return theta, state, buffers, xp.stack([total_loss, *totals]), Y, Y_hat, Z


class Compiled(Engine):
    """The epoch as one program; the host keeps the step count, schedule and flush.

    Parameters
    ----------
    epoch : callable
        The compiled program of :func:`program`.
    """

    name = "compiled"

    def __init__(self, epoch: Any):
        self.epoch = epoch

    def run_epoch(
        self,
        model: Any,
        X: Array,
        Y: Array,
        order: Array | None,
        batch_size: int,
        steps: int,
        callbacks: _callbacks.CallbackList,
    ) -> Epoch:
        opt, b, n = model.optimizer, model.backend, X.shape[0]
        # the same program while nothing it holds changed; a new one after a callback changed
        # a setting between epochs
        self.epoch = program(model, batch_size) or self.epoch
        if len(opt.state) != 1:
            opt.build([model._theta])
        first = opt.iterations
        # the learning rate and t of each step, in one transfer; t in the model's float dtype
        # (an integer array would promote beta**t to float64)
        rates = [opt.learning_rates(steps), list(range(first + 1, first + steps + 1))]
        rates = b.asarray(rates, model.dtype)
        theta, buffers = model._theta, model._get_buffers()
        try:
            theta, state, buffers, sums, Y, Y_hat, Z = self.epoch(
                theta, opt.state[0], buffers, X, Y, order, rates
            )
        except BaseException:  # a failed trace leaves its placeholders: put the weights back
            model._theta = theta
            model._bind_views()
            model._set_buffers(buffers)
            raise
        model._theta, opt.state = theta, [state]
        model._bind_views()
        model._set_buffers(buffers)
        opt.iterations = first + steps
        sizes = [min(batch_size, n - lo) for lo in range(0, n, batch_size)]
        # after the program: chosen only when no callback watches the batches (the progress
        # bar reads the count)
        for i, size in enumerate(sizes):
            callbacks.on_train_batch_begin(i)
            callbacks.on_train_batch_end(i, {"batch": i, "size": size})
        Z = Z if model._fused else None
        return Epoch(sums, n, len(relu_hidden(model)), (Y, Y_hat, Z, sizes))
