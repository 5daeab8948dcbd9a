"""The engine of a fit on a by-rows source: one process, or each rank reading only its rows.

Under data parallelism (``fit(distributed=...)``) every rank draws the same global order from
the shared seed, as the sharded engine does on arrays in memory, and takes its contiguous part
of each global batch; here that part is *read* from the store (``source.read`` of the rank's
rows of ``order[lo:hi]``), so no rank reads, or holds, another rank's rows. The gradients are
summed over the ranks as for arrays: K ranks compute what one process computes with the same
global batch, to the order of floating-point additions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Engine
from .sharded import Sharded, data_fields, shard
from .streamed import Rows, Streamed, is_rows

Array = Any

# Rows of a store the ranks compare before training: the first and last few (where files
# and splits tend to differ) and a few drawn with a fixed seed in between. Reading them all
# would read the whole store on every rank; these cost one small read.
_ENDS = 4
_DRAWN = 8


def streamed_engine(comm: Any) -> Engine:
    """The engine that reads a by-rows source's batches (``comm``: the ranks, or None)."""
    if comm is None:
        return Streamed()
    return StreamedSharded(comm)


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
        fields = data_fields(None if is_rows(X) else X, Y, None if is_rows(Xv) else Xv)
        if is_rows(X):
            fields.update(store_fields(X.source, ""))
        if is_rows(Xv):
            fields.update(store_fields(Xv.source, "validation "))
        return fields

    def batch(self, model: Any, X: Any, Y: Any, order: Array | None, lo: int, hi: int):
        """The rank's rows ``order[lo:hi]``, read from the store; none read where it has none.

        A rank without rows in a batch (the last one, shorter than the ranks) still takes part
        in the step with an empty batch: that of its last batch's shapes (every rank has rows
        in an epoch's first batch, which holds at least as many rows as ranks).
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
    """The rows ``lo:hi`` of a by-rows source, as a source of its own (reads go to it)."""

    by_rows = True

    def __init__(self, source: Any, lo: int, hi: int):
        self.source, self.lo, self.n = source, lo, hi - lo
        self.kind = source.kind
        self.sample_shape = tuple(source.sample_shape)

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
