"""The engines of a fit on a source read batch by batch: one process, or each rank its part.

Under data parallelism (``fit(distributed=...)``) every rank draws the same global order from
the shared seed, as the sharded engine does on arrays in memory, and takes its contiguous part
of each global batch; here that part is *read* from the store (``source.read`` of the rank's
rows of ``order[lo:hi]``), so no rank reads, or holds, another rank's rows. The gradients are
summed over the ranks as for arrays: K ranks compute what one process computes with the same
global batch, to the order of floating-point additions.

A generator or a PyDataset cannot be split by rows: under data parallelism each rank trains
on its own stream, and step ``i``'s global batch is the ranks' ``i``-th batches together
(:class:`StreamedBatchesSharded`, which says what that means for exactness).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from .base import Engine, Epoch
from .captured_streamed import CapturedStreamed, can_record
from .sharded import Sharded, agree, data_fields, shard
from .streamed import Rows, Streamed, StreamedBatches, is_batches, is_rows

Array = Any

# Rows of a store the ranks compare before training: the first and last few (where files
# and splits tend to differ) and a few drawn with a fixed seed in between. Reading them all
# would read the whole store on every rank; these cost one small read.
_ENDS = 4
_DRAWN = 8


def streamed_engine(comm: Any, model: Any = None, callbacks: list | None = None) -> Engine:
    """The engine that reads a by-rows source's batches.

    Parameters
    ----------
    comm : Communicator or None
        The ranks of a data-parallel fit, or None: one process.
    model : Sequential, optional
        The model (built or not). In one process, where its step can be recorded as a CUDA
        graph (as :func:`~backprop.training.choose.choose_engine` decides for arrays in
        memory), the captured streamed engine: each batch copied into fixed device buffers
        that the recording reads. Without it, the eager streamed steps.
    callbacks : list of Callback, optional
        The fit's callbacks: one that watches each batch keeps the eager steps.

    Returns
    -------
    Engine
    """
    if comm is not None:
        return StreamedSharded(comm)
    if model is not None and can_record(model, callbacks):
        return CapturedStreamed(model.backend.capture)
    return Streamed()


def batches_engine(comm: Any) -> Engine:
    """The engine of a fit on a generator or a PyDataset (``comm``: the ranks, or None)."""
    if comm is None:
        return StreamedBatches()
    return StreamedBatchesSharded(comm)


class StreamedSharded(Streamed, Sharded):
    """The sharded steps, each rank reading only its part of each global batch from the store.

    ``Sharded`` gives the rank's rows of each global batch (:meth:`Sharded.rows`), the step
    (its gradient scaled by the rank's share and summed over the ranks) and the agreement at
    the start; ``Streamed`` reads those rows, ``order[lo:hi]`` of the rank's ``lo:hi``, from
    the store. Before training the ranks compare the store's number of rows, sample shape,
    dtype and a digest of a few of its rows (:func:`store_fields`), not the whole store.

    Parameters
    ----------
    comm : Communicator
        The ranks.
    """

    name = "streamed sharded"

    def __init__(self, comm: Any):
        Sharded.__init__(self, comm)
        Streamed.__init__(self)
        self._empty: tuple | None = None
        self._layout = (0, 1)  # (rows, global batch size) of the epoch running

    def run_epoch(self, model, X, Y, order, batch_size, steps, callbacks):
        """The streamed epoch over this rank's rows (the global batches' layout kept)."""
        self._layout = (int(X.shape[0]), int(batch_size))
        return super().run_epoch(model, X, Y, order, batch_size, steps, callbacks)

    def rows(self, lo: int, hi: int) -> tuple[int, int]:
        """The rank's part of the global batch ``lo:hi``, and nothing else.

        The streamed epoch asks for the rows of every step ahead, from its reading thread:
        the step's bookkeeping (BatchNormalization's rows) waits for :meth:`batch`, in the
        training thread, just before the step.
        """
        return shard(lo, hi, self.comm.rank, self.comm.size)

    def data_fields(self, X: Any, Y: Array, Xv: Any) -> dict:
        """What the ranks compare of the data: a few rows of each store (:func:`store_fields`)."""
        fields = data_fields(X, Y, Xv)  # the rows and sample shape; the stores replaced:
        if is_rows(X):
            fields.update(store_fields(X.source, ""))
        if is_rows(Xv):
            fields["validation X"] = None
            fields.update(store_fields(Xv.source, "validation "))
        return fields

    def batch(self, model: Any, X: Any, Y: Any, order: Array | None, lo: int, hi: int):
        """The rank's rows ``order[lo:hi]``, read from the store; none read where it has none.

        A rank without rows in a batch (the last one, shorter than the ranks) still takes part
        in the step with an empty batch: that of its last batch's shapes (every rank has rows
        in an epoch's first batch, which holds at least as many rows as ranks). Only an
        epoch's last batch can leave a rank without rows, so the batch the reading thread
        laid out for it (none to read) is simply never taken.
        """
        n, batch_size = self._layout
        # the global batch of this part: the part starts less than a batch after its start
        start = lo // batch_size * batch_size
        self.sync_rows(min(start + batch_size, n) - start, hi - lo)
        if hi > lo:
            xb, yb = super().batch(model, X, Y, order, lo, hi)
            self._empty = (xb[:0, ...], None if yb is None else yb[:0, ...])
            return xb, yb
        if self._empty is None:  # cannot happen: the first global batch has >= size rows
            raise RuntimeError("A rank has no rows in the first batch of an epoch.")
        return self._empty

    def __repr__(self) -> str:
        return f"StreamedSharded({self.comm!r})"


def store_fields(source: Any, prefix: str) -> dict:
    """What the ranks compare of a by-rows source, from a few rows only.

    The number of rows and the sample shape are in the signature already; here the rows
    :func:`fingerprint_rows` picks, read as host arrays (x, y and the sample weights): the
    communicator compares their dtype and a digest of their values and column sums.

    Parameters
    ----------
    source : Source
        A by-rows source (``read``, ``n``).
    prefix : str
        ``""`` for the training data, ``"validation "`` for the validation data.
    """
    x, y, w = source.read(fingerprint_rows(int(source.n)))
    return {f"{prefix}X": x, f"{prefix}y": y, f"{prefix}sample weights": w}


def fingerprint_rows(n: int) -> np.ndarray:
    """The rows of an ``n``-row store the ranks compare: the ends and a few seeded ones.

    The same rows on every rank that has ``n`` rows (the seed is fixed), sorted.

    Examples
    --------
    >>> fingerprint_rows(6).tolist()
    [0, 1, 2, 3, 4, 5]
    >>> rows = fingerprint_rows(1000)
    >>> rows.size, rows[:4].tolist(), rows[-4:].tolist()
    (16, [0, 1, 2, 3], [996, 997, 998, 999])
    """
    if n <= 2 * _ENDS + _DRAWN:
        return np.arange(n)
    middle = np.arange(_ENDS, n - _ENDS)
    drawn = np.random.default_rng(0).choice(middle, _DRAWN, replace=False)
    return np.unique(np.concatenate([np.arange(_ENDS), drawn, np.arange(n - _ENDS, n)]))


def rank_part(X: Any, Y: Array | None, lo: int, hi: int) -> tuple[Any, Array | None]:
    """The rows ``lo:hi`` of ``(X, Y)``: slices of arrays, or a window of a store's rows.

    For the loop's validation data under data parallelism, where each rank evaluates its
    part: a :class:`~backprop.training.streamed.Rows` (``Y`` None) becomes the rows of the
    window ``lo:hi`` of the same store, read only when evaluated.
    """
    if is_rows(X):
        return Rows(X.model, _Window(X.source, lo, hi)), None
    return X[lo:hi, ...], Y[lo:hi, ...]


class _Window:
    """The rows ``lo:hi`` of a by-rows source, as a source of its own (reads go to it).

    Everything else (``name``, ``kind``, ...) is the source's.
    """

    def __init__(self, source: Any, lo: int, hi: int):
        self.source, self.lo, self.n = source, lo, hi - lo
        self.sample_shape = tuple(source.sample_shape)

    def __getattr__(self, name: str) -> Any:
        if name == "source":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    def read(self, rows: np.ndarray) -> tuple:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= self.n):
            raise ValueError(
                f"rows must lie in [0, {self.n}) for this rank's window of {self.source!r}, "
                f"received values in [{int(rows.min())}, {int(rows.max())}]."
            )
        return self.source.read(rows + self.lo)

    def __repr__(self) -> str:
        return f"<rows {self.lo}:{self.lo + self.n} of {self.source!r}>"


class StreamedBatchesSharded(StreamedBatches, Sharded):
    """Data parallelism on generators or PyDatasets: each rank trains on its own stream.

    Step ``i`` trains on the global batch made of every rank's ``i``-th batch, in rank order:
    each rank's gradient is weighted by its share of the global batch's rows and summed over
    the ranks, as the sharded engine does with each rank's part of a global batch. So K ranks
    compute what one process computes on a stream whose ``i``-th batch is the ranks' ``i``-th
    batches put together, to the order of floating-point additions; it equals a one-process
    fit on another stream only where the ranks' streams split that stream's batches so (rank
    ``r`` giving the rows ``shard(lo, hi, r, K)`` of each of its batches ``lo:hi``). The
    ranks' batches may have any sizes: each step first gathers them (one small collective).

    Every rank takes the same number of steps: where one rank's stream runs dry, every rank
    ends the epoch at that step (the batches the others drew for it are not trained on),
    warns that the input ran out, and training stops, as in one process.

    Parameters
    ----------
    comm : Communicator
        The ranks.
    """

    name = "streamed sharded"

    def __init__(self, comm: Any):
        Sharded.__init__(self, comm)
        self._rows = 0  # the rows of the step's global batch
        self._trained = 0  # the rows of the epoch's global batches so far

    def begin(self, model: Any, X: Any, Y: Any, Xv: Any, settings: dict) -> None:
        """The ranks agree on the model, the settings and the streams' sample shape and steps.

        The streams themselves differ from rank to rank: only their shape and their number of
        batches per epoch are compared.

        Raises
        ------
        TypeError
            If the validation data is a stream too (each rank evaluates its part of arrays
            or of a store).
        """
        if is_batches(Xv):
            raise TypeError(
                "fit(distributed=...) validates on arrays or stores read by rows (each rank "
                "evaluates its part of the rows); received a "
                f"{Xv.source.kind} as validation_data. Pass validation_data=(x_val, y_val)."
            )
        self.batch_hooks = None
        data = {
            "samples": None,
            "sample shape": tuple(X.sample_shape),
            "steps per epoch": X.steps,
            "validation samples": None if Xv is None else int(Xv.shape[0]),
        }
        if is_rows(Xv):
            data.update(store_fields(Xv.source, "validation "))
        else:
            data["validation X"] = Xv
        agree(model, self.comm, data, settings)
        self.sync_batch_norms(model)

    def run_epoch(self, model, X, Y, order, batch_size, steps, callbacks) -> Epoch:
        """One pass over every rank's stream, the ranks' ``i``-th batches as one global batch."""
        self.before_epoch(model, callbacks)
        self._trained = 0
        agreed = _Agreed(X, self)
        result = StreamedBatches.run_epoch(
            self, model, agreed, Y, order, batch_size, steps, callbacks
        )
        return dataclasses.replace(result, n=self._trained)  # the rows over all the ranks

    def global_rows(self, size: int) -> int:
        """The rows of the step's global batch (this rank's batch has ``size``)."""
        return self._rows

    def step(self, model: Any, x: Array, y: Array, share: float) -> Array | None:
        """The sharded step on this rank's batch, its share that of the global batch's rows."""
        local = int(x.shape[0])
        self.sync_rows(self._rows, local)
        return Sharded.step(self, model, x, y, local / self._rows)

    def __repr__(self) -> str:
        return f"StreamedBatchesSharded({self.comm!r})"


class _Agreed:
    """A stream's batches that end at the same step on every rank.

    Wraps a :class:`~backprop.training.streamed.Batches`; tells the engine the rows of each
    global batch.
    """

    def __init__(self, X: Any, engine: StreamedBatchesSharded):
        self._X, self._engine = X, engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._X, name)

    def passes(self) -> Iterator[tuple[Array, Array | None]]:
        X, engine = self._X, self._engine
        inner = X.passes()
        try:
            for step in itertools.count(1):
                batch = next(inner, None)
                # every rank's rows at this step (None: its stream ended)
                sizes = engine.comm.allgather(None if batch is None else int(batch[0].shape[0]))
                if None in sizes:
                    if any(size is not None for size in sizes):  # the streams' lengths differ
                        X.ran_out = X.ran_out or step
                    return
                engine._rows = sum(sizes)
                engine._trained += engine._rows
                yield batch
        finally:
            inner.close()
