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

    The epoch's rows are gathered once in the shuffled order, then each batch is a
    contiguous slice (cheaper than a gather per batch). The loss and metrics are computed
    once per epoch from the outputs every step produced, and the steps stop after any batch
    where a callback sets ``model.stop_training``. When a callback watches the batches, each
    step's loss and metric statistics are added up as it runs and read back for its
    ``on_train_batch_end`` logs (the running averages since the epoch began, as in Keras 3):
    a host synchronisation per step that no other fit pays.
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
        xp, n = model.xp, X.shape[0]
        if order is not None:
            X, Y = xp.take(X, order, axis=0), xp.take(Y, order, axis=0)
        fused, last = model._fused, model.layers[-1]
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
            y_hat = self.step(model, X[lo:hi, ...], Y[lo:hi, ...], (hi - lo) / size)
            if y_hat is not None:
                outputs.append(y_hat)
                targets.append(Y[lo:hi, ...])
                batches.append(i)
            if fused and hi > lo:
                logits.append(last.z)  # the fused loss needs the logits
            if penalty is not None:
                penalties.append(penalty * (hi - lo))
            logs = {"batch": i, "size": size}
            if watched:
                z = last.z if fused and hi > lo else None
                part = self.batch_part(model, Y[lo:hi, ...], y_hat, z, penalty, hi - lo)
                running = part if running is None else running + part
                # the rows of every rank so far: the sums are added over the ranks
                logs.update(_logs.finish(model, running, min((i + 1) * batch_size, n)))
            if hooked:
                callbacks.on_train_batch_end(i, logs)
            steps_run = i + 1
            if self.stopped(model):  # as in Keras, a callback can stop after any batch
                break
        n = min(steps_run * batch_size, n)  # the rows trained on
        Y = self.seen(xp, Y, targets, n)
        Y_hat = xp.concat(outputs, axis=0) if len(outputs) > 1 else outputs[0]
        Z = (xp.concat(logits, axis=0) if len(logits) > 1 else logits[0]) if logits else None
        dead = [xp.all(layer.z <= 0) for layer in relu_hidden(model)]
        total_loss, totals = _logs.epoch_sums(model, Y, Y_hat, Z, penalties, dead)
        sizes = [y_hat.shape[0] for y_hat in outputs]
        sums = _logs.stack(model, total_loss, totals)
        return Epoch(sums, n, len(dead), (Y, Y_hat, Z, sizes), None, batches, steps_run)

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

    def step(self, model: Any, x: Array, y: Array, share: float) -> Array | None:
        """One step on the batch ``(x, y)``; returns its outputs."""
        return _step.step(model, x, y)

    def seen(self, xp: Any, Y: Array, targets: list, n: int) -> Array:
        """The targets of the rows trained on: the first ``n`` of the epoch's order."""
        return Y if n == Y.shape[0] else Y[:n, ...]
