"""The streamed engine: batches read from a store that is not in memory (issue 23).

A NumPy ``memmap``, an h5py or zarr dataset, a Dask array: ``backprop.data.adapt`` wraps
them in a source whose ``read(rows)`` gives host arrays of those rows (read in sorted order,
then put in the order asked). The engine is the eager one; only where a batch comes from
differs: the rows ``order[lo:hi]`` of the same seeded permutation an in-memory fit draws,
read from the store, checked, and moved to the model's device one batch at a time. So a fit
on a memmap trains on the same batches, in the same order, as the fit on the array in
memory: the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .eager import Eager

Array = Any


class Rows:
    """The rows of a by-rows source as the loop sees them: a shape, and batches on the device.

    Parameters
    ----------
    model : Sequential
        A built model: the device, dtype and loss the batches are prepared for.
    source : Source
        A by-rows source (``source.by_rows``) from :func:`backprop.data.adapt`.
    """

    def __init__(self, model: Any, source: Any):
        self.model, self.source = model, source
        self.shape = (int(source.n), *source.sample_shape)

    def read(self, rows: np.ndarray) -> tuple[Array, Array | None]:
        """The rows ``rows`` as ``(x, Y)`` on the device (``Y`` with the weights' column)."""
        model = self.model
        x, y, w = self.source.read(np.asarray(rows, dtype=np.int64))
        if y is None:
            return model.backend.asarray(x, model.dtype), None
        x, Y = model._to_device(x, y)
        return x, with_weights(model, Y, w)

    def slice(self, lo: int, hi: int) -> tuple[Array, Array | None]:
        """The rows ``lo:hi`` in their order, on the device."""
        return self.read(np.arange(lo, hi))


def host_rows(model: Any, order: Array | None, lo: int, hi: int) -> np.ndarray:
    """The store's rows of the epoch's ``lo:hi``: the permutation's, or ``lo:hi`` itself."""
    if order is None:
        return np.arange(lo, hi)
    return np.asarray(model.backend.to_numpy(order[lo:hi]), dtype=np.int64)


class Streamed(Eager):
    """The eager steps on batches read from a by-rows source, one batch at a time."""

    name = "streamed"

    def batch(self, model: Any, X: Any, Y: Any, order: Array | None, lo: int, hi: int):
        """The rows ``order[lo:hi]`` read from the store and moved to the device."""
        return X.read(host_rows(model, order, lo, hi))


def is_rows(X: Any) -> bool:
    """Whether ``X`` is a streamed source's :class:`Rows` (not an array on the device)."""
    return isinstance(X, Rows)


def with_weights(model: Any, Y: Array, sample_weight: Any) -> Array:
    """``Y`` with the sample weights as one more column (``Y`` itself without weights).

    The engines gather the column with the rows; :func:`backprop.training.logs.split` takes
    it off again where the loss and metrics are computed.
    """
    if sample_weight is None:
        return Y
    xp = model.xp
    w = model.backend.asarray(sample_weight, model.dtype)
    return xp.concat([Y, xp.reshape(w, (-1, 1))], axis=1)
