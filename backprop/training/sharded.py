"""The sharded engine: synchronous data parallelism, the step of every rank.

The design of ChainerMN and Horovod. At the start, the ranks check that they run the same thing
(architecture, seed, optimizer, data) and rank 0's weights and optimizer state are broadcast.
Every epoch, each rank draws the same shuffled order (same seed) and takes its contiguous part
of each global batch; after the backward pass, the gradients, each scaled by the rank's share
of the batch, are summed over the ranks in one allreduce of the flat gradient buffer, and every
rank applies the same optimizer step to the same weights. Loss and metrics are sums over the
ranks, brought together once per epoch.

The communicator (the gradient reducer) is handed in: ``backprop.distributed`` makes it, this
engine only calls its collective operations.
"""

from __future__ import annotations

import json
from typing import Any

from . import step as _step
from .base import watches_batches
from .eager import Eager

Array = Any


def shard(lo: int, hi: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous part of the rows ``lo:hi``, split as evenly as possible.

    Parameters
    ----------
    lo, hi : int
        The global batch's rows.
    rank, size : int
        This rank and the number of ranks.

    Returns
    -------
    (int, int)
        This rank's rows; the parts of ranks 0 to size - 1 tile ``lo:hi`` in order.

    Examples
    --------
    >>> [shard(0, 10, r, 3) for r in range(3)]
    [(0, 3), (3, 6), (6, 10)]
    """
    m = hi - lo
    return lo + m * rank // size, lo + m * (rank + 1) // size


def any_rank(comm: Any, flag: Any) -> bool:
    """Whether ``flag`` is true on any rank: the same answer on every rank.

    For ``model.stop_training``, which a callback may set on one rank only (one that runs on
    rank 0 alone, or that looks at something of its own): a rank that stopped alone would
    leave the others waiting in a collective operation it never joins.
    """
    return any(comm.allgather(bool(flag)))


def data_fields(X: Array, Y: Array, Xv: Array | None) -> dict:
    """The data in the ranks' signature: the number of rows, the sample shape, the arrays.

    The communicator compares the arrays' fingerprints (rows spread through the whole array,
    column sums) and names the one that differs. A store read batch by batch puts a few of
    its rows here instead (``streamed_sharded.store_fields``).
    """
    return {
        "samples": int(X.shape[0]),
        "sample shape": tuple(int(d) for d in X.shape[1:]),
        "validation samples": None if Xv is None else int(Xv.shape[0]),
        "X": X,
        "y": Y,
        "validation X": Xv,
    }


def _signature(model: Any, data: dict, **settings: Any) -> dict:
    opt = model.optimizer
    # the layers' settings, not their names (which count the layers a process made before)
    layers = {
        f"layer {i + 1}": json.dumps(
            {
                "class": spec["class_name"],
                **{k: v for k, v in spec["config"].items() if k != "name"},
            },
            sort_keys=True,
            default=str,
        )
        for i, spec in enumerate(model.get_config()["layers"])
    }
    return {
        "layers": len(layers),
        **layers,
        "seed": model.seed,
        "backend": model.backend.name,
        "dtype": model._dtype_name,
        "loss": type(model.loss).__name__,
        "metrics": [name for name, _ in model.metrics],
        "optimizer": json.dumps(opt.get_config(), sort_keys=True, default=str),
        "optimizer iterations": opt.iterations,
        **data,
        **settings,
    }


def _begin(
    model: Any,
    comm: Any,
    X: Array,
    Y: Array,
    Xv: Array | None,
    batch_size: int,
    epochs: int,
    initial_epoch: int,
    shuffle: bool,
    data: dict | None = None,
) -> None:
    """Check that every rank runs the same training, then copy rank 0's state to all.

    ``data``: what the ranks compare of the data (:func:`data_fields` by default).

    Raises
    ------
    DistributedError (from the communicator)
        On every rank, if any rank's architecture, seed, dtype, loss, optimizer, data or
        settings differ from rank 0's (the message names the ranks and the differences).
    ValueError
        If there are fewer training rows than ranks, or the global batch is smaller than
        the number of ranks.
    """
    n = int(X.shape[0])
    if n < comm.size:  # before any exchange: each rank refuses on its own
        raise ValueError(
            f"There are {n} training rows for {comm.size} ranks: each rank needs at least one "
            f"row. Train on at least {comm.size} rows, or on at most {n} rank"
            + ("s" if n != 1 else "")
            + "."
        )
    if batch_size < comm.size:
        raise ValueError(
            f"batch_size is the global batch, split over the {comm.size} ranks; it must be at "
            f"least the number of ranks, received batch_size={batch_size}."
        )
    settings = dict(
        batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch, shuffle=shuffle
    )
    agree(model, comm, data_fields(X, Y, Xv) if data is None else data, settings)


def agree(model: Any, comm: Any, data: dict, settings: dict) -> None:
    """The ranks' check that they run the same training, then rank 0's state on every rank.

    Raises
    ------
    DistributedError (from the communicator)
        On every rank, if any rank's model, data (``data``) or ``settings`` differ from
        rank 0's.
    """
    comm.agree(
        _signature(model, data, **settings),
        "The ranks must run the same training (same model, seed, optimizer, data and fit "
        "settings on every rank)",
    )
    _broadcast_state(model, comm)


def _broadcast_state(model: Any, comm: Any) -> None:
    """Rank 0's weights, optimizer state and shuffling stream on every rank.

    With the same seed they agree already; the broadcast makes it true whatever happened to
    each rank's model before (another resume file, a different warm-up), as Horovod does.
    """
    xp, b = model.xp, model.backend
    model._theta = comm.broadcast(model._theta, b)
    model._bind_views()
    model._set_buffers(
        [xp.reshape(comm.broadcast(xp.reshape(v, (-1,)), b), v.shape) for v in model._get_buffers()]
    )
    for state in model.optimizer.state:
        for key in sorted(state):
            v = state[key]
            state[key] = xp.reshape(comm.broadcast(xp.reshape(v, (-1,)), b), v.shape)
    model.streams.shuffle.bit_generator.state = comm.bcast(
        model.streams.shuffle.bit_generator.state
    )
    # the same masks on every rank would drop the same units for different samples
    model.streams.for_rank(comm.rank, b)
    model._share_dropout_stream()


class Sharded(Eager):
    """The eager steps on this rank's part of each global batch, gradients summed over ranks.

    So ``fit(..., batch_size=B)`` on K ranks computes what one process computes with batch
    size B, up to the order of floating-point additions, however unevenly B splits over K.

    Parameters
    ----------
    comm : Communicator
        The ranks: ``rank``, ``size``, ``allreduce``, ``broadcast``, ``allgather``, ``bcast``.
    """

    name = "sharded"

    def __init__(self, comm: Any):
        self.comm = comm
        self.syncs: list[_BatchSync] = []
        # whether a callback on some rank may set stop_training after a batch (None: not
        # asked yet); then the ranks agree on it after each batch
        self.batch_hooks: bool | None = None

    def begin(self, model: Any, X: Array, Y: Array, Xv: Array | None, settings: dict) -> None:
        self.batch_hooks = None
        _begin(model, self.comm, X, Y, Xv, data=self.data_fields(X, Y, Xv), **settings)
        self.sync_batch_norms(model)

    def sync_batch_norms(self, model: Any) -> None:
        """Make BatchNormalization's sums over the batch go through the communicator.

        Its statistics are then those of the global batch, as in one process.
        """
        self.syncs = [_BatchSync(self.comm, model.backend) for _ in _batch_norms(model)]
        for layer, sync in zip(_batch_norms(model), self.syncs, strict=True):
            layer.sync = sync

    def data_fields(self, X: Array, Y: Array, Xv: Array | None) -> dict:
        """What the ranks compare of the data before training (:func:`data_fields`)."""
        return data_fields(X, Y, Xv)

    def end(self, model: Any) -> None:
        for layer in _batch_norms(model):
            layer.sync = None

    def run_epoch(
        self,
        model: Any,
        X: Array,
        Y: Array,
        order: Array | None,
        batch_size: int,
        steps: int,
        callbacks: Any,
    ) -> Any:
        """The eager epoch, after the ranks agree whether to stop and how often to ask."""
        self.before_epoch(model, callbacks)
        return super().run_epoch(model, X, Y, order, batch_size, steps, callbacks)

    def before_epoch(self, model: Any, callbacks: Any) -> None:
        """The ranks agree how often to ask for a stop, and whether one was set already."""
        if self.batch_hooks is None:  # once per fit: the ranks' callbacks may differ
            mine = any(watches_batches(c) for c in getattr(callbacks, "callbacks", []))
            self.batch_hooks = any_rank(self.comm, mine)
        # a stop set on some rank before the steps (on_train_begin, on_epoch_begin)
        model.stop_training = any_rank(self.comm, model.stop_training)

    def batch_logs(self, callbacks: Any) -> bool:
        """Whether the batch logs carry the running loss: as the ranks agreed.

        Their sums go over the ranks, so every rank computes them where any rank's callbacks
        watch the batches (the root-only ones run on rank 0 alone).
        """
        return bool(self.batch_hooks)

    def stopped(self, model: Any) -> bool:
        """A stop on any rank after this batch, asked only when a callback could set one."""
        if self.batch_hooks:
            model.stop_training = any_rank(self.comm, model.stop_training)
        return bool(model.stop_training)

    def rows(self, lo: int, hi: int) -> tuple[int, int]:
        r_lo, r_hi = shard(lo, hi, self.comm.rank, self.comm.size)
        self.sync_rows(hi - lo, r_hi - r_lo)
        return r_lo, r_hi

    def sync_rows(self, rows: int, local: int) -> None:
        """Set the step's rows, the global batch's and this rank's, for BatchNormalization."""
        for sync in self.syncs:
            sync.rows, sync.local = rows, local

    def step(self, model: Any, x: Array, y: Array, share: float) -> Array | None:
        """``step`` on this rank's shard of a global batch.

        Each rank's loss is the mean over its shard of ``m_r`` rows; the global batch's mean
        over ``m`` rows is the sum over ranks of ``(m_r / m)`` times each rank's mean. So each
        rank scales its gradient by ``share = m_r / m`` and one sum over the ranks gives the
        exact global gradient, however uneven the shards (an average of the ranks' means
        would not). A regularizer's gradient, added on every rank, sums to itself since the
        shares sum to one. A rank with no rows in this batch sends zeros. With sample
        weights (a last column of ``y``) each rank's loss is ``sum_r w_i L_i / m_r``; times
        ``share`` it is the rank's part of the global ``sum_i w_i L_i / m``, as above.
        """
        xp, comm = model.xp, self.comm
        if model._theta is None:  # nothing to learn: nothing to sum
            return _step.step(model, x, y) if x.shape[0] or self.syncs else None
        # a rank without rows still takes part in BatchNormalization's sums over the batch
        if x.shape[0] or self.syncs:
            y_hat = model._forward(x, training=True)
            _step.backward(model, y, y_hat)  # with the sample weights where y carries them
            g = model._flat_grads()
            if share != 1.0:
                g *= share
        else:
            y_hat, g = None, xp.zeros_like(model._theta)
        _step.update(model, comm.allreduce(g, model.backend))
        return y_hat if x.shape[0] else None

    def __repr__(self) -> str:
        return f"Sharded({self.comm!r})"


def _batch_norms(model: Any) -> list:
    """The layers that normalise over the batch while training (BatchNormalization)."""
    return [layer for layer in model.layers if hasattr(layer, "sync")]


class _BatchSync:
    """BatchNormalization's means over the global batch, from every rank's sums.

    Forward: ``mean = allreduce(sum over this rank's rows) / m`` (``m`` the global batch), the
    same statistics on every rank as in one process. Backward: each rank's gradients are of its
    own mean loss, ``share = m_r / m`` of the global one, so the global gradient on its rows is
    ``share`` times its own; the mean of that over the batch, divided by ``share`` to stay in the
    rank's scale (the engine multiplies the flat gradient by ``share`` at the end), is
    ``allreduce(share * sum over the rank's rows) / m_r``.
    """

    def __init__(self, comm: Any, backend: Any):
        self.comm, self.backend = comm, backend
        self.rows = self.local = 0

    def batch_mean(self, local_sum: Array) -> Array:
        return self.comm.allreduce(local_sum, self.backend) / self.rows

    def grad_mean(self, local_sum: Array) -> Array:
        share = self.local / self.rows
        total = self.comm.allreduce(local_sum * share, self.backend)
        # a rank without rows has no gradient to correct (and would divide by zero)
        return total / self.local if self.local else total
