"""The data layer: the checks on user input, and the adapters of what is not an in-memory array.

The modules, each one concept:

- :mod:`~backprop.data.checks`: the checks on in-memory input, run once per call before
  anything touches the model, and :func:`to_device`, its move to the model's backend.
- :mod:`~backprop.data.adapters`: :func:`adapt`, which kind of input was passed (None for
  in-memory arrays, else the :class:`Source` that reads it).
- :mod:`~backprop.data.sources`: the sources, read by rows (memmaps, h5py/zarr, Dask) or by
  batches (a :class:`PyDataset`, generators and other iterables, a torch DataLoader).
- :mod:`~backprop.data.pydataset`: :class:`PyDataset`, Keras 3's batches-by-index dataset.
- :mod:`~backprop.data.batches`: :func:`check_batch`, one streamed batch checked as arrays are.
- :mod:`~backprop.data.prefetch`: :class:`Prefetcher`, the next batches read and sent to the
  device in a background thread while the current one trains.

Every name other modules use as ``backprop.data.NAME`` is bound here, as when the package was
one module ``data.py`` (the private helpers of the checks: ``backprop.data.checks._NAME``).
"""

from __future__ import annotations

from . import adapters, batches, checks, prefetch, pydataset, sources
from .adapters import adapt
from .batches import check_batch
from .checks import (
    as_array,
    check_class_weight,
    check_device,
    check_fraction,
    check_inputs,
    check_positive_int,
    check_sample_weight,
    check_weights,
    check_X,
    check_y,
    class_weight_to_sample_weight,
    split_weights,
    to_device,
)
from .prefetch import Prefetcher
from .pydataset import PyDataset
from .sources import DataReadError, IterableSource, PyDatasetSource, RowSource, Source

__all__ = [
    "DataReadError",
    "IterableSource",
    "Prefetcher",
    "PyDataset",
    "PyDatasetSource",
    "RowSource",
    "Source",
    "adapt",
    "adapters",
    "as_array",
    "batches",
    "check_X",
    "check_batch",
    "check_class_weight",
    "check_device",
    "check_fraction",
    "check_inputs",
    "check_positive_int",
    "check_sample_weight",
    "check_weights",
    "check_y",
    "checks",
    "class_weight_to_sample_weight",
    "prefetch",
    "pydataset",
    "sources",
    "split_weights",
    "to_device",
]
