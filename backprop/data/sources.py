"""Sources: training data that is not an in-memory array, read a batch at a time.

Three kinds, as :func:`~backprop.data.adapters.adapt` picks them:

- :class:`RowSource` (``kind`` ``"sliceable"`` or ``"dask"``, ``by_rows``): arrays indexed by
  row that are not in memory, a NumPy ``memmap``, an h5py or zarr dataset, a Dask array. The
  loop asks for the rows of each batch (``read(rows)``): they are read in sorted order (a disk
  reads forward, Dask computes each chunk once) and put in the order asked.
- :class:`PyDatasetSource` (``"pydataset"``): batch ``i`` is ``dataset[i]``, ``len(dataset)``
  batches per epoch.
- :class:`IterableSource` (``"generator"``): a generator, an iterator or any other iterable
  of batches (a torch ``DataLoader``, a list of batches).

Everything here runs on the host, in NumPy, often in the prefetch thread; the move to the
model's device is the backend's (:mod:`backprop.backend.transfer`).
"""

from __future__ import annotations

import math
import os
import sys
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from .checks import as_array, check_sample_weight
from .pydataset import PyDataset

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the user's code, outside backprop.

    For the function that calls ``warnings.warn``: the number of frames up to the first one
    whose file lies outside the package (the user's ``fit``/``evaluate``/``predict`` call),
    however deep inside backprop the warning is raised.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


class DataReadError(ValueError):
    """Reading rows from a file or store failed (a truncated file, a disk error, ...)."""


def _preview(rows: np.ndarray) -> str:
    """The first few of ``rows``, for messages: ``[3, 17, 20, ... (4096 rows)]``."""
    head = ", ".join(str(int(r)) for r in rows[:5])
    return f"[{head}{', ...' if rows.size > 5 else ''}] ({rows.size} rows)"


class Source:
    """Training data the loop reads a batch at a time (see :func:`~backprop.data.adapters.adapt`).

    Attributes
    ----------
    kind : str
        ``"sliceable"``, ``"dask"``, ``"pydataset"`` or ``"generator"``.
    n : int or None
        The number of rows, where known (``by_rows`` sources).
    by_rows : bool
        True where the loop chooses the rows of each batch (:meth:`read`); False where the
        source hands out whole batches (:meth:`epoch`).
    name : str
        The argument's name, for messages.
    """

    kind: str = ""
    by_rows: bool = False
    n: int | None = None

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample of x."""
        raise NotImplementedError

    def steps(self, batch_size: int) -> int | None:
        """The number of batches in one epoch, or None where unknown."""
        raise NotImplementedError

    def split(self, fraction: float) -> tuple[Source, Source]:
        """``(train, validation)``: refused where the data cannot be split without reading it.

        Raises
        ------
        ValueError
            Always, for sources that are not read by rows.
        """
        raise ValueError(
            f"validation_split needs data that can be split by rows (arrays, a memmap, a Dask "
            f"array); {self.name} is a {self.kind}, which cannot be split without reading it. "
            "Pass validation_data=(x_val, y_val), a PyDataset or a generator (with "
            "validation_steps) instead."
        )

    def on_epoch_begin(self) -> None:
        """Called by the loop before each pass (a PyDataset's hook)."""

    def on_epoch_end(self) -> None:
        """Called by the loop after each epoch (a PyDataset's hook)."""

    def __repr__(self) -> str:
        known = f", n={self.n}" if self.n is not None else ""
        return f"<{type(self).__name__} kind={self.kind!r} of {self.name}{known}>"


# -- read by rows: memmaps, h5py/zarr datasets, Dask arrays -----------------------------------


def _is_dask(a: Any) -> bool:
    return type(a).__module__.startswith("dask")


def _mapped_file(a: Any) -> tuple[str, int] | None:
    """``(file name, bytes it must hold)`` of a NumPy memmap (a view of one included)."""
    if not isinstance(a, np.memmap):
        return None
    top = a
    while isinstance(top.base, np.memmap):  # a view: the memmap that owns the mapping
        top = top.base
    filename = getattr(top, "filename", None)
    if filename is None or top.offset is None:
        return None
    return str(filename), int(top.offset) + int(top.nbytes)


class RowSource(Source):
    """Rows of a sliceable store (``kind`` ``"sliceable"``) or a Dask array (``"dask"``).

    Parameters
    ----------
    x : sliceable
        ``shape``, ``dtype`` and ``__getitem__`` over rows (axis 0).
    y, w : sliceable or numpy.ndarray or None
        Targets and sample weights, ``x``'s number of rows (checked by
        :func:`~backprop.data.adapters.adapt`).
    kind : {"sliceable", "dask"}
    name : str
        The argument's name, for messages.
    start, n : int, optional
        The window of rows this source stands for (``split`` makes two windows of one store).

    Attributes
    ----------
    reads : int
        The rows read from the store so far (a row read twice counts twice; a row asked for
        twice in one batch is read once).
    """

    by_rows = True

    def __init__(
        self,
        x: Any,
        y: Any,
        w: Any,
        *,
        kind: str,
        name: str,
        start: int = 0,
        n: int | None = None,
    ) -> None:
        super().__init__(name)
        self.kind = kind
        self.x, self.y, self.w = x, y, w
        self.start = start
        self.n = int(x.shape[0]) - start if n is None else n
        self.reads = 0
        self._fancy = True  # whether the store takes an integer array as an index

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample of x: ``x.shape[1:]``."""
        return tuple(int(d) for d in self.x.shape[1:])

    def steps(self, batch_size: int) -> int:
        """``ceil(n / batch_size)``."""
        return math.ceil(self.n / batch_size)

    def split(self, fraction: float) -> tuple[RowSource, RowSource]:
        """``(train, validation)``: the last ``int(n * fraction)`` rows validate, as in memory.

        Nothing is read: the two sources are windows of the same store.

        Raises
        ------
        ValueError
            If either side would have no rows.
        """
        n_val = int(self.n * fraction)
        if n_val in (0, self.n):
            raise ValueError(
                f"validation_split={fraction} of {self.n} samples leaves {n_val} for "
                "validation; need at least one sample on each side."
            )
        parts = (self.x, self.y, self.w)
        cut = self.n - n_val
        train = RowSource(*parts, kind=self.kind, name=self.name, start=self.start, n=cut)
        val = RowSource(*parts, kind=self.kind, name=self.name, start=self.start + cut, n=n_val)
        return train, val

    def read(self, rows: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The rows ``rows`` of x (and y, w) as host NumPy arrays, in the order given.

        The store is read at the sorted unique rows (a disk reads forward; a Dask array
        computes each chunk once, on the user's default scheduler), then the rows are put in
        the order asked.

        Parameters
        ----------
        rows : array of int, shape (k,)
            Row indices in ``[0, n)``, any order, repeats allowed.

        Returns
        -------
        (x, y, w)
            NumPy arrays of ``k`` rows each (their own memory, never a view of the store);
            ``y``/``w`` None where not given.

        Raises
        ------
        DataReadError
            If the store fails to read (a file truncated or unreadable); the message names
            the rows.
        ValueError
            If a row is out of range, or x or y holds NaN or infinite values (named by row),
            or a weight is negative or not finite.
        """
        rows = np.asarray(rows)
        if rows.ndim != 1 or rows.dtype.kind not in "iu":
            raise TypeError(
                f"rows must be a 1-D array of integers, received {rows.dtype} of shape "
                f"{rows.shape}."
            )
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= self.n):
            raise ValueError(
                f"rows must lie in [0, {self.n}) for {self.name}, received values in "
                f"[{int(rows.min())}, {int(rows.max())}]."
            )
        wanted, order = np.unique(rows, return_inverse=True)
        absolute = wanted + self.start
        parts = self._read_sorted(absolute, rows)
        self.reads += int(wanted.size)
        x, y, w = (None if p is None else p[order] for p in parts)
        self._check_values(x, y, w, rows)
        return x, y, w

    def _read_sorted(self, absolute: np.ndarray, rows: np.ndarray) -> list[Any]:
        """x, y, w at the sorted unique ``absolute`` rows, as NumPy arrays of their own."""
        stores = (self.x, self.y, self.w)
        try:
            for a in stores:
                mapped = _mapped_file(a)
                if mapped is not None:
                    _check_file_size(*mapped)
            if not any(_is_dask(a) for a in stores):
                return [None if a is None else self._take(a, absolute) for a in stores]
            import dask  # a Dask array was given: dask is installed (and imported)

            # one compute for all on the default scheduler: chunks x and y share are read once
            lazy = {i: a[absolute] for i, a in enumerate(stores) if _is_dask(a)}
            done = dict(zip(lazy, dask.compute(*lazy.values()), strict=True))
            return [
                None if a is None else np.asarray(done[i]) if i in done else self._take(a, absolute)
                for i, a in enumerate(stores)
            ]
        except OSError as e:
            raise DataReadError(
                f"Reading rows {_preview(rows)} of {self.name} ({self.kind}) failed: {e}. "
                "Check that the file is complete and readable (was it truncated, or is it "
                "still being written?)."
            ) from e

    def _take(self, a: Any, absolute: np.ndarray) -> np.ndarray:
        """Rows ``absolute`` (sorted, unique) of the store ``a``, copied into new memory."""
        if isinstance(a, np.ndarray) and not isinstance(a, np.memmap):
            return a[absolute]  # an in-memory y or w: integer indexing copies
        lo, hi = int(absolute[0]), int(absolute[-1]) + 1
        if hi - lo == absolute.size:  # consecutive rows (an unshuffled batch): one slice
            return _own(a[lo:hi], a)
        if self._fancy:
            try:
                return _own(a[absolute], a)
            except (TypeError, IndexError, NotImplementedError):
                self._fancy = False  # a store that takes slices only (zarr's basic indexing)
        # runs of consecutive rows, one slice each
        breaks = np.flatnonzero(np.diff(absolute) != 1) + 1
        runs = np.split(absolute, breaks)
        return np.concatenate([_own(a[int(r[0]) : int(r[-1]) + 1], a) for r in runs])

    def _check_values(self, x: Any, y: Any, w: Any, rows: np.ndarray) -> None:
        """NaN and infinities in x or y, bad weights: refused, named by the source's row."""
        for a, what in ((x, "x"), (y, "y")):
            if a is None or a.dtype.kind != "f" or np.isfinite(a).all():
                continue
            i = int(np.argmin(np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)))
            raise ValueError(
                f"{what} of {self.name} contains NaN or infinite values (the first in row "
                f"{int(rows[i])}); clean or impute them first."
            )
        if w is not None:
            check_sample_weight(w, w.shape[0], f"sample_weight of {self.name}")


def _own(part: Any, store: Any) -> np.ndarray:
    """``part`` as a NumPy array with memory of its own (a memmap slice is only a view)."""
    out = np.asarray(part)
    if isinstance(store, np.ndarray) and np.may_share_memory(out, store):
        out = np.array(out, copy=True)  # the read happens here: pages come in from the file
    return out


def _check_file_size(filename: str, needed: int) -> None:
    """Refuse to read a memmap whose file is now shorter than the mapping.

    A read of a page beyond the end of the file kills the process (SIGBUS), which no
    ``except`` can catch: the size is checked before each read instead (one ``stat``).
    """
    size = os.stat(filename).st_size
    if size < needed:
        raise OSError(f"the file {filename!r} holds {size} bytes but the memmap needs {needed}")


# -- batches by index: PyDataset ---------------------------------------------------------------


_NOTHING = object()


def _first_x(batch: Any) -> Any:
    """The x of a batch (a tuple/list whose first item is x, or a bare array)."""
    if isinstance(batch, tuple | list):
        return batch[0] if batch else None
    return batch


def _shape_of(x: Any, name: str, what: str) -> tuple[int, ...]:
    """The sample shape of x in the first batch."""
    if x is None:
        raise TypeError(
            f"The first batch of {name} ({what}) has no x: expected a tuple (x, y) or "
            "(x, y, sample_weight)."
        )
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(as_array(x, "x"))
    if len(shape) < 2:
        raise ValueError(
            f"The first batch of {name} ({what}) has x of shape {tuple(shape)}; expected "
            "(batch_size, *sample_shape), at least 2-D. For one feature per sample use "
            "x.reshape(-1, 1)."
        )
    return tuple(int(d) for d in shape[1:])


#: the datasets already warned about their workers (once each)
_WARNED: weakref.WeakSet = weakref.WeakSet()


def _warn_workers(dataset: Any, name: str) -> None:
    """Warn once per dataset that ``workers > 1`` and ``use_multiprocessing`` are ignored."""
    workers = getattr(dataset, "workers", 1)
    multi = getattr(dataset, "use_multiprocessing", False)
    if not ((isinstance(workers, int) and workers > 1) or multi):
        return
    try:
        if dataset in _WARNED:
            return
        _WARNED.add(dataset)
    except TypeError:  # not hashable or not weakly referable: warn each time
        pass
    warnings.warn(
        f"{name} ({type(dataset).__name__}) has workers={workers!r} and "
        f"use_multiprocessing={multi!r}: both are ignored. backprop reads the batches of a "
        "PyDataset in order in one background thread, a few batches ahead of the step; no "
        "worker threads or processes are started.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


class PyDatasetSource(Source):
    """Batches ``dataset[0]``, ..., ``dataset[len - 1]`` of a PyDataset, each epoch.

    Parameters
    ----------
    dataset : PyDataset
        Or any object with ``__len__``, ``__getitem__`` and ``on_epoch_end`` (Keras's).
    name : str
        The argument's name, for messages.
    """

    kind = "pydataset"
    what = "the PyDataset"

    def __init__(self, dataset: Any, name: str) -> None:
        super().__init__(name)
        self.dataset = dataset
        self._first = _NOTHING  # batch 0, read for sample_shape and handed out once
        _warn_workers(dataset, name)

    def _len(self) -> int:
        n = len(self.dataset)
        if not isinstance(n, int) or n < 1:
            raise ValueError(
                f"{self.name} ({type(self.dataset).__name__}) must have at least one batch: "
                f"len() returned {n!r}."
            )
        return n

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample, from batch 0 (read once, and used by the first epoch)."""
        if self._first is _NOTHING:
            self._len()
            self._first = self.dataset[0]
        return _shape_of(_first_x(self._first), self.name, self.what)

    def peek(self) -> Any:
        """Batch 0, read once: the first epoch hands it out again, not read a second time."""
        _ = self.sample_shape  # reads batch 0 if it is not read yet
        return self._first

    def steps(self, batch_size: int | None = None) -> int:
        """``len(dataset)`` (the batch size is the dataset's)."""
        return self._len()

    def epoch(self, keep: bool = False) -> Iterator[Any]:
        """The batches of one epoch: ``dataset[i]`` for i in ``range(len(dataset))``.

        ``keep`` is unused: each epoch starts at batch 0.
        """
        for i in range(self._len()):
            if i == 0 and self._first is not _NOTHING:
                batch, self._first = self._first, _NOTHING
                yield batch
            else:
                yield self.dataset[i]

    def on_epoch_begin(self) -> None:
        """The dataset's ``on_epoch_begin`` (as Keras 3 calls it, before each pass).

        A dataset that defines the hook may change its batches there (shuffle them): batch 0,
        read early for the sample shape, is then dropped and read again after the hook.
        """
        hook = getattr(self.dataset, "on_epoch_begin", None)
        if hook is None:
            return
        hook()
        if getattr(type(self.dataset), "on_epoch_begin", None) is not PyDataset.on_epoch_begin:
            self._first = _NOTHING

    def on_epoch_end(self) -> None:
        """The dataset's ``on_epoch_end``."""
        hook = getattr(self.dataset, "on_epoch_end", None)
        if hook is not None:
            hook()


# -- batches in sequence: generators and other iterables ---------------------------------------


class IterableSource(Source):
    """The batches of a generator, an iterator or another iterable (a torch DataLoader).

    An iterator (a generator) cannot restart: every epoch pulls from the same one, as Keras
    does with ``steps_per_epoch``. Another iterable (a list of batches, a DataLoader) is
    iterated afresh each epoch.

    Parameters
    ----------
    data : iterable
        Yields batches ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.
    name : str
        The argument's name, for messages.
    """

    kind = "generator"
    what = "the generator"

    def __init__(self, data: Any, name: str) -> None:
        super().__init__(name)
        self.data = data
        self.one_shot = iter(data) is data  # an iterator: one stream for all epochs
        self._it: Iterator[Any] | None = data if self.one_shot else None
        self._first = _NOTHING  # the first batch, peeked for sample_shape, handed out once

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample, from the first batch (peeked, then yielded as usual)."""
        if self._first is _NOTHING:
            if self._it is None:
                self._it = iter(self.data)
            try:
                self._first = next(self._it)
            except StopIteration:
                raise ValueError(
                    f"{self.name} ({type(self.data).__name__}) yielded no batch. Pass a "
                    "generator that yields (x, y) batches."
                ) from None
        return _shape_of(_first_x(self._first), self.name, self.what)

    def peek(self) -> Any:
        """The first batch, pulled once: the first epoch hands it out again."""
        _ = self.sample_shape  # pulls the first batch if it is not pulled yet
        return self._first

    def steps(self, batch_size: int | None = None) -> int | None:
        """The batches per epoch: None for an iterator, else ``len(data)`` where it has one.

        None (unknown: the loop uses steps_per_epoch) for an iterator and for an iterable
        without a length; ``len(data)`` for an iterable that has a length and restarts each
        epoch (a DataLoader, a list of batches).
        """
        if self.one_shot:
            return None
        try:
            return len(self.data)
        except TypeError:  # no __len__, or a DataLoader over an IterableDataset
            return None

    def epoch(self, keep: bool = False) -> Iterator[Any]:
        """The batches of one epoch: the next ones of the iterator, or a fresh pass.

        Parameters
        ----------
        keep : bool, default False
            Whether an iterable that restarts goes on with the pass the last epoch left
            (``steps_per_epoch`` given, as Keras 3 keeps one iterator across epochs) rather
            than starting a fresh one. A generator always goes on.
        """
        if self._first is not _NOTHING:
            batch, self._first = self._first, _NOTHING
            yield batch
        elif not self.one_shot and not (keep and self._it is not None):
            self._it = iter(self.data)
        it = self._it
        if not self.one_shot and not keep:
            self._it = None  # the next epoch starts a fresh pass
        # not ``yield from it``: an epoch stopped partway (steps_per_epoch) and collected
        # would close the user's generator through it, and the next epoch find it finished
        for batch in it:
            yield batch
