"""What a step engine is: it runs the steps of an epoch and gives back the epoch's sums.

Every engine computes the same numbers (the tests hold them to each other); they differ in
how the steps execute. The loop around them (``loop.py``) does the rest of ``fit``, and
``choose.py`` picks the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import callbacks as _callbacks

Array = Any


@dataclass
class Epoch:
    """What an engine gives back for one epoch, still on the device.

    Attributes
    ----------
    sums : array, shape (1 + n_stats + n_flags,)
        The summed loss, the metrics' statistics and the last batch's dead-layer flags.
    n : int
        The rows the steps trained on (fewer than the data when a callback stopped early).
    n_flags : int
        How many dead-layer flags end ``sums``.
    outputs : tuple
        ``(Y, Y_hat, Z, sizes)``: the targets in the order trained, the outputs, the logits
        (fused losses, else None) and each batch's rows, to find a batch whose loss is not
        finite.
    batch_losses : array of shape (steps,), optional
        Each step's loss, where the engine kept them instead of the outputs (the captured
        engine); the first non-finite one names the bad batch.
    batches : list of int, optional
        The step of each entry of ``sizes``, where not every step has one (a rank of a
        data-parallel fit without rows in some batches); by default entry ``i`` is step ``i``.
    steps : int, optional
        The steps run (fewer than the epoch's when a callback stopped early); by default
        ``len(sizes)``.
    """

    sums: Array
    n: int
    n_flags: int
    outputs: tuple
    batch_losses: Array | None = None
    batches: list[int] | None = None
    steps: int | None = None


class Engine:
    """How the steps of an epoch execute.

    ``run_epoch(model, X, Y, order, batch_size, steps, callbacks)`` trains ``model`` on one
    pass over ``(X, Y)`` (rows in ``order`` when it is not None) in batches of
    ``batch_size``, calling ``callbacks.on_train_batch_begin`` before and
    ``callbacks.on_train_batch_end`` after each step, and returns an :class:`Epoch`. An
    engine that runs the steps before their hooks (the compiled epoch) is chosen only when
    no callback watches the batches (:func:`watches_batches`).
    """

    name = "engine"
    #: why :func:`~backprop.training.choose.choose_engine` picked it (``history.params``)
    reason = ""

    def begin(self, model: Any, X: Array, Y: Array, Xv: Array | None, settings: dict) -> None:
        """Called once before the first epoch (the sharded engine checks the ranks here)."""

    def end(self, model: Any) -> None:
        """Called once after the last epoch, also when training stopped on an error."""

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
        """Train one pass over the data; returns an :class:`Epoch`.

        Parameters
        ----------
        model : Sequential
            A compiled, built model.
        X, Y : arrays, shape (n, n_features) and (n, n_outputs)
            The data on the model's device (targets as the loss prepared them).
        order : array of int, shape (n,), or None
            The epoch's shuffled order of the rows.
        batch_size, steps : int
            Rows per step, and steps in the epoch.
        callbacks : CallbackList
            ``on_train_batch_begin``/``on_train_batch_end`` are called around each step.

        Returns
        -------
        Epoch
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def watches_batches(callback: _callbacks.Callback) -> bool:
    """Whether a callback may look at the model around each training step.

    True when it overrides a train-batch hook (``on_train_batch_begin/end`` or their
    aliases ``on_batch_begin/end``; a LambdaCallback given one): then each step must have
    run when its hook is called, and the batch logs carry the running loss and metrics.
    History and the progress bar read only the batch's index and size.
    """
    if isinstance(callback, _callbacks.History | _callbacks.ProgbarLogger):
        return False
    return _callbacks.overrides(callback, *_callbacks.TRAIN_BATCH_HOOKS)
