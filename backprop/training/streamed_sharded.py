"""The engine of a fit on a by-rows source: one process, or each rank reading only its rows."""

from __future__ import annotations

from typing import Any

from .base import Engine
from .streamed import Streamed


def streamed_engine(comm: Any) -> Engine:
    """The engine that reads a by-rows source's batches (``comm``: the ranks, or None)."""
    if comm is None:
        return Streamed()
    raise TypeError(
        "fit(distributed=...) takes in-memory arrays so far; a store read batch by batch "
        "(a memmap, h5py, zarr, Dask) trains in one process."
    )
