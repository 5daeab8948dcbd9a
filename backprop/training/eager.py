"""The eager engine: the steps of an epoch one by one, on any backend."""

from __future__ import annotations

from typing import Any

from .. import callbacks as _callbacks
from . import logs as _logs
from . import step as _step
from .base import Engine, Epoch
from .probe import relu_hidden

Array = Any


class Eager(Engine):
    """One step at a time: forward, backward, the optimizer's in-place update.

    Each batch's rows are gathered by index from the epoch's shuffled order (one ``take``
    per batch; a slice of the data without shuffling): the training set is never copied,
    so the memory a fit needs above the data is that of a few batches. The loss and metrics
    are computed once per epoch from the outputs every step produced, and the steps stop
    after any batch where a callback sets ``model.stop_training``. When a callback watches
    the batches, each step's loss and metric statistics are added up as it runs and read
    back for its ``on_train_batch_end`` logs (the running averages since the epoch began, as
    in Keras 3): a host synchronisation per step that no other fit pays.
    """

    name = "eager"

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
        n = X.shape[0]
        fused, first, last = model._fused, model.layers[0], model.layers[-1]
        outputs, logits, penalties, targets, batches = [], [], [], [], []
        steps_run = 0
        watched, running = self.batch_logs(callbacks), None
        # the hooks are called only where some callback (the progress bar too) defines one:
        # the base class's are no-ops, and a step of a small network costs tens of microseconds
        hooked = any(
            _callbacks.overrides(cb, *_callbacks.TRAIN_BATCH_HOOKS) for cb in callbacks.callbacks
        )
        for i in range(steps):
            lo = i * batch_size
            hi = min(lo + batch_size, n)
            size = hi - lo
            if hooked:
                callbacks.on_train_batch_begin(i)
            penalty = model._penalty()  # the weights this step starts from
            lo, hi = self.rows(lo, hi)
            xb, yb = self.batch(model, X, Y, order, lo, hi)
            y_hat = self.step(model, xb, yb, (hi - lo) / size)
            if y_hat is not None:
                outputs.append(y_hat)
                targets.append(yb)
                batches.append(i)
            if fused and hi > lo:
                logits.append(last.z)  # the fused loss needs the logits
            if penalty is not None:
                penalties.append(penalty * (hi - lo))
            logs = {"batch": i, "size": size}
            if watched:
                z = last.z if fused and hi > lo else None
                part = self.batch_part(model, yb, y_hat, z, penalty, hi - lo)
                running = part if running is None else running + part
                # the rows of every rank so far: the sums are added over the ranks
                logs.update(_logs.finish(model, running, min((i + 1) * batch_size, n)))
            if hooked:
                callbacks.on_train_batch_end(i, logs)
            steps_run = i + 1
            # the step is done: the first layer's cache of the batch (for its backward pass)
            # is let go with the batch, so the next gather does not hold two batches at once
            if getattr(first, "x", None) is xb:
                first.x = None
            xb = yb = None
            if self.stopped(model):  # as in Keras, a callback can stop after any batch
                break
        n = min(steps_run * batch_size, n)  # the rows trained on
        return epoch_of(model, targets, outputs, logits, penalties, n, batches, steps_run)

    def batch_logs(self, callbacks: _callbacks.CallbackList) -> bool:
        """Whether the train-batch logs carry the running loss and metrics this fit."""
        return callbacks.watching(*_callbacks.TRAIN_BATCH_HOOKS)

    def batch_part(
        self, model: Any, y: Array, y_hat: Array | None, z: Array | None, penalty: Any, rows: int
    ) -> Array:
        """The step's loss and metric sums for the running batch logs (zeros without rows)."""
        if y_hat is None:  # a rank with no rows in this batch adds nothing to the sums
            n_stats = sum(m.n_stats for _, m in model.metrics)
            return model.backend.zeros((1 + n_stats,), model.dtype)
        return _logs.batch_sums(model, y, y_hat, z, None if penalty is None else penalty * rows)

    def stopped(self, model: Any) -> bool:
        """Whether a callback stopped training after this batch."""
        return bool(model.stop_training)

    def rows(self, lo: int, hi: int) -> tuple[int, int]:
        """The rows of the batch ``lo:hi`` this process trains on: all of them."""
        return lo, hi

    def batch(self, model: Any, X: Array, Y: Array, order: Array | None, lo: int, hi: int):
        """The rows ``lo:hi`` of the epoch, on the device (a gather by index from ``order``)."""
        return batch(model.xp, X, Y, order, lo, hi)

    def step(self, model: Any, x: Array, y: Array, share: float) -> Array | None:
        """One step on the batch ``(x, y)``; returns its outputs."""
        return _step.step(model, x, y)


def batch(xp: Any, X: Array, Y: Array, order: Array | None, lo: int, hi: int) -> tuple:
    """The rows ``lo:hi`` of the epoch: a slice of ``(X, Y)``, or gathered through ``order``.

    One ``take`` per batch of the rows the permutation names there: the same rows, in the
    same order, as slicing the whole set gathered in that order, without its copy.
    """
    if order is None:
        return X[lo:hi, ...], Y[lo:hi, ...]
    rows = order[lo:hi]
    return xp.take(X, rows, axis=0), xp.take(Y, rows, axis=0)


def epoch_of(
    model: Any,
    targets: list,
    outputs: list,
    logits: list,
    penalties: list,
    n: int,
    batches: list[int] | None,
    steps_run: int,
) -> Epoch:
    """The :class:`Epoch` of steps run one by one, from each step's targets and outputs.

    The epoch's loss and metrics are computed once, here, from what every step produced
    (each list joined, then dropped, in turn: one list's parts and its join at a time).
    """
    xp = model.xp
    sizes = [y_hat.shape[0] for y_hat in outputs]
    Y, Y_hat, Z = _join(xp, targets), _join(xp, outputs), _join(xp, logits)
    dead = [xp.all(layer.z <= 0) for layer in relu_hidden(model)]
    total_loss, totals = _logs.epoch_sums(model, Y, Y_hat, Z, penalties, dead)
    sums = _logs.stack(model, total_loss, totals)
    return Epoch(sums, n, len(dead), (Y, Y_hat, Z, sizes), None, batches, steps_run)


def _join(xp: Any, parts: list) -> Array | None:
    """The batches' arrays joined along the rows (None for none); empties ``parts``.

    Emptied so that the parts are freed as soon as they are joined, before the next list is:
    the epoch's outputs, targets and logits are then never held twice at once.
    """
    if not parts:
        return None
    joined = xp.concat(parts, axis=0) if len(parts) > 1 else parts[0]
    parts.clear()
    return joined
