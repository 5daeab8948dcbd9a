"""``adapt``: which kind of input the user passed, and the :class:`Source` that reads it.

One function picks by type, as Keras 3's ``get_data_adapter`` does; the loop sees only "None:
in-memory arrays, the usual path" or a :class:`~backprop.data.sources.Source`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import array_backend_name, to_numpy
from .checks import as_array, check_sample_weight
from .pydataset import PyDataset
from .sources import IterableSource, PyDatasetSource, RowSource, Source, _is_dask


def _is_batches(a: list | tuple) -> bool:
    """Whether a list/tuple holds batches ``(x, y)`` rather than data (rows, numbers).

    Batches: its first item is a tuple/list whose first item is an array of at least 2
    dimensions, or a tuple/list of 2 or 3 array-likes (nested lists included) with x at least
    2-D and the others of x's number of rows (:func:`_is_batch_of_lists`). Anything else
    (numbers, nested lists of numbers, a list of rows) is data that the in-memory checks
    judge, as before.
    """
    first = a[0] if a else None
    if not isinstance(first, list | tuple) or not first:
        return False
    if len(getattr(first[0], "shape", ())) >= 2:
        return True
    return _is_batch_of_lists(first)


def _is_batch_of_lists(item: list | tuple) -> bool:
    """Whether ``item`` reads as a batch ``(x, y[, w])`` given as Python lists.

    A 2-D X given as lists has numbers as the items of its rows, and a 3-D one rows of 1-D
    items, so neither is taken for a batch. A 4-D X whose samples have 2 or 3 rows would have
    the look of one; its rows all have one shape, which tells it apart when the sample is a
    list (a batch given as a list with x and y of one shape is then read as data too: give
    it as a tuple).
    """
    if len(item) not in (2, 3):
        return False
    parts = [p for p in item if p is not None]
    try:
        shapes = [np.shape(p) for p in parts]
    except ValueError:  # ragged: not an array-like
        return False
    x = shapes[0]
    if len(x) < 2 or any(len(s) < 1 or s[0] != x[0] for s in shapes[1:]):
        return False
    return isinstance(item, tuple) or any(s != x for s in shapes)


def _is_pydataset(x: Any) -> bool:
    if isinstance(x, PyDataset):
        return True
    # Keras's own PyDataset, or a look-alike: batches by index, and the epoch hook
    return (
        callable(getattr(x, "on_epoch_end", None))
        and hasattr(x, "__getitem__")
        and hasattr(x, "__len__")
        and not hasattr(x, "shape")
    )


def _is_sliceable(x: Any) -> bool:
    return all(hasattr(x, a) for a in ("shape", "dtype", "__getitem__", "__len__"))


def _host_module(x: Any) -> str:
    return type(x).__module__.partition(".")[0]


def _check_rows(a: Any, name: str, n: int) -> Any:
    """Check y or w beside a by-rows x: a store of ``n`` rows, or in-memory (made NumPy)."""
    if a is None:
        return None
    if _is_dask(a) or (_is_sliceable(a) and array_backend_name(a) is None):
        rows = a.shape[0]
        if rows != rows:  # NaN: a Dask array of unknown chunk sizes
            raise ValueError(
                f"{name} is a Dask array of unknown length; call {name}.compute_chunk_sizes() "
                "first."
            )
    else:
        a = to_numpy(as_array(a, name))  # in memory: on the host, as the rows are read there
        rows = a.shape[0] if a.ndim else None
    if rows != n:
        raise ValueError(
            f"x and {name} must have the same number of rows: x has {n}, {name} has {rows} "
            f"(shape {tuple(a.shape)})."
        )
    return a


def _row_source(x: Any, y: Any, sample_weight: Any, kind: str, name: str) -> RowSource:
    """A RowSource of a memmap/h5py/zarr/Dask x, its shape and dtype checked."""
    shape = tuple(x.shape)
    if kind == "dask" and any(d != d for d in shape):
        raise ValueError(
            f"{name} is a Dask array of unknown chunk sizes (shape {shape}); call "
            f"{name}.compute_chunk_sizes() first."
        )
    if len(shape) < 2:
        hint = (
            f" If each sample has a single feature, reshape it to ({shape[0]}, 1)." if shape else ""
        )
        raise ValueError(
            f"Expected {name} to be of shape (n_samples, ...), at least 2-D, received shape "
            f"{shape}.{hint}"
        )
    if 0 in shape:
        raise ValueError(f"{name} is empty: received shape {shape}.")
    dtype = np.dtype(x.dtype)
    if dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be numeric (floats or integers), received dtype {dtype} in a "
            f"{type(x).__name__}."
        )
    n = int(shape[0])
    y = _check_rows(y, "y", n)
    w = _check_rows(sample_weight, "sample_weight", n)
    if isinstance(w, np.ndarray) and not isinstance(w, np.memmap):
        w = check_sample_weight(w, n)
    return RowSource(x, y, w, kind=kind, name=name)


def adapt(x: Any, y: Any = None, sample_weight: Any = None, *, name: str = "x") -> Source | None:
    """The :class:`~backprop.data.sources.Source` that reads ``x``, or None for in-memory data.

    Parameters
    ----------
    x : object
        What the user passed to ``fit``, ``evaluate`` or ``predict``.
    y, sample_weight : object, optional
        Targets and weights beside a sliceable or Dask ``x`` (in memory or sliceable, with
        ``x``'s number of rows); must be None for a generator or a PyDataset, whose batches
        carry them.
    name : str, default "x"
        The argument's name, for messages.

    Returns
    -------
    Source or None
        None for in-memory arrays (a NumPy array that is not a memmap, an array of torch,
        CuPy, JAX or array_api_strict, lists of numbers, a pandas object, anything else the
        in-memory checks will judge); else a source of kind ``"sliceable"`` (a NumPy memmap,
        an h5py or zarr dataset: ``shape``, ``dtype``, ``__getitem__`` and ``__len__``),
        ``"dask"``, ``"pydataset"`` or ``"generator"`` (any other iterable, a torch
        DataLoader included).

    Raises
    ------
    TypeError
        If a sliceable ``x`` is not numeric.
    ValueError
        If ``y`` or ``sample_weight`` is given with a generator or a PyDataset, or has another
        number of rows than a sliceable ``x``, or ``x`` is not at least 2-D.

    Examples
    --------
    >>> import numpy as np
    >>> adapt(np.zeros((4, 2))) is None
    True
    >>> adapt(iter([(np.zeros((4, 2)), np.zeros(4))])).kind
    'generator'
    """
    if x is None or isinstance(x, str | bytes | dict):
        return None  # the in-memory checks refuse them, with their messages
    if isinstance(x, np.memmap):
        return _row_source(x, y, sample_weight, "sliceable", name)
    if array_backend_name(x) is not None or _host_module(x) in ("pandas", "scipy"):
        return None
    if isinstance(x, list | tuple) and not _is_batches(x):
        return None
    if _is_dask(x):
        return _row_source(x, y, sample_weight, "dask", name)
    if _is_pydataset(x):
        source: Source = PyDatasetSource(x, name)
    elif _is_sliceable(x):
        return _row_source(x, y, sample_weight, "sliceable", name)
    elif hasattr(x, "__iter__") or hasattr(x, "__next__"):
        source = IterableSource(x, name)
    else:
        return None
    for value, arg in ((y, "y"), (sample_weight, "sample_weight")):
        if value is not None:
            raise ValueError(
                f"{arg} must not be given when {name} is a {source.kind} ("
                f"{type(x).__name__}): its batches carry the targets and weights. Received "
                f"{arg} of type {type(value).__name__}; yield (x, y) or (x, y, sample_weight) "
                "batches instead."
            )
    return source
