"""The captured engine on a store read by rows: each batch copied into buffers the recording holds.

A recorded step (:mod:`~backprop.training.captured`) reads and writes only arrays that outlive
it. In memory it gathers its rows from the whole training set on the device; a store (a
memmap, h5py, zarr, Dask) is never whole on the device, so here the step reads two fixed device
arrays instead, ``x`` and the targets (with the sample weights' column) of ``batch_size`` rows:

1. the :class:`~backprop.data.Prefetcher` reads the rows ``order[lo:hi]`` of the next steps from
   the store in its thread and moves them to the device (on CUDA from pinned memory on a copy
   stream, while the current step runs), as for the eager streamed engine;
2. before each replay the batch is copied into the buffers on the compute stream (a copy on
   the device: after the previous replay has read them, before this one does);
3. the recording replays on them. The short last batch has its own recording, which reads the
   first rows of the same buffers.

The rest is the in-memory captured engine's: the learning rates, the step counter, the epoch's
sums and each step's loss on the device, written by the host once per epoch. So a fit on a
store trains on the same batches, in the same order, with the same recorded step as the fit on
the arrays in memory: the same numbers.

A model whose step cannot be recorded (Dropout, ``clipnorm``), found once the model is built,
and an epoch whose callbacks watch each batch run the eager streamed steps instead.
"""

from __future__ import annotations

from typing import Any

from .. import callbacks as _callbacks
from . import captured as _captured
from .base import Epoch
from .streamed import Streamed, epoch_rows

Array = Any

_CAPTURED = "each step recorded once as a CUDA graph and replayed"


def can_record(model: Any, callbacks: list | None = None) -> bool:
    """Whether a fit of ``model`` on a store can run :class:`CapturedStreamed`.

    As :func:`~backprop.training.choose.choose_engine` decides for arrays in memory: the model
    asks for it (``capture=True``), its backend records (CuPy, torch on CUDA) and updates in
    place, and no callback watches each batch. A model not built yet (its first rows build it)
    is taken: what it holds is looked at again once it is built (:meth:`CapturedStreamed.begin`).
    """
    b = model.backend
    if not (model.capture and b.can_capture and b.mutable):
        return False
    if any(_watches(c) for c in callbacks or []):
        return False
    return not model.built or _captured.supports(model)


def _watches(callback: Any) -> bool:
    if isinstance(callback, _callbacks.History | _callbacks.ProgbarLogger):
        return False
    return _callbacks.overrides(callback, *_callbacks.TRAIN_BATCH_HOOKS)


class _Buffers(_captured._Static):
    """The in-memory engine's static arrays, with the batch buffers instead of the data.

    ``X`` and ``Y`` are made from the first batch (its trailing shape and dtype) with
    ``batch_size`` rows; the steps of the fit copy their batches into them.
    """

    def __init__(self, model: Any, X: Any, steps: int, batch_size: int):
        super().__init__(model, X, None, False, steps)
        self.X = self.Y = None
        self.batch_size = batch_size

    def load(self, model: Any, x: Array, Y: Array, size: int) -> None:
        """Copy a batch of ``size`` rows into the buffers' first rows (made on the first)."""
        if self.X is None:
            b, rows = model.backend, self.batch_size
            self.X = b.zeros((rows, *x.shape[1:]), x.dtype)
            self.Y = b.zeros((rows, *Y.shape[1:]), Y.dtype)
        for name, buffer, a in (("x", self.X, x), ("targets", self.Y, Y)):
            if tuple(a.shape) != (size, *buffer.shape[1:]) or a.dtype != buffer.dtype:
                # cannot happen for a store (every batch has its shape); a clear error if it did
                raise RuntimeError(
                    f"The batch's {name} has shape {tuple(a.shape)} and dtype {a.dtype}; the "
                    f"recorded step reads {size} rows of shape {tuple(buffer.shape[1:])} and "
                    f"dtype {buffer.dtype}. Pass Sequential(capture=False) to train eagerly."
                )
            if size == buffer.shape[0]:
                buffer[...] = a
            else:
                buffer[:size, ...] = a


class CapturedStreamed(_captured.Captured):
    """The captured steps on batches read from a store, copied into buffers the replays read.

    Parameters
    ----------
    capture : callable
        ``capture(fn) -> replay`` (:meth:`Backend.capture`), as for
        :class:`~backprop.training.captured.Captured`.
    """

    name = "captured streamed"

    def __init__(self, capture: Any):
        super().__init__(capture)
        self.reason = f"the batches read into fixed device buffers: {_CAPTURED}"
        self._eager: Streamed | None = None  # the eager steps, where the step cannot be recorded
        self._batches: Any = None  # the epoch's prefetcher, while run_epoch runs
        self._rows: Any = None  # the store's Rows, while run_epoch runs

    def begin(self, model: Any, X: Any, Y: Any, Xv: Any, settings: dict) -> None:
        """Look at the built model: the eager streamed steps where its step cannot be recorded."""
        super().begin(model, X, Y, Xv, settings)
        why = _captured.why_not(model)
        if why is None:
            self._eager = None
            if _CAPTURED not in self.reason:  # the loop's words on the input, and how it runs
                self.reason = f"{self.reason}; {_CAPTURED}" if self.reason else _CAPTURED
            return
        self._eager = Streamed()
        self.name, self.reason = Streamed.name, why

    def end(self, model: Any) -> None:
        if self._eager is not None:
            self._eager.end(model)
        super().end(model)

    def run_epoch(self, model, X, Y, order, batch_size, steps, callbacks) -> Epoch:
        """The captured epoch, its batches read ahead and copied into the buffers one by one."""
        if self._eager is None and callbacks.watching(*_callbacks.TRAIN_BATCH_HOOKS):
            # a callback reads the running loss after each step: the eager steps give it (a
            # choice made without the callbacks; the loop's choice leaves these out)
            self._eager = Streamed()
        if self._eager is not None:
            return self._eager.run_epoch(model, X, Y, order, batch_size, steps, callbacks)
        self._rows = X
        rows = epoch_rows(model, order, X.shape[0], batch_size, steps)
        self._batches = X.prefetch(rows)  # made in the training thread (CUDA's stream)
        try:
            # the order is the prefetcher's: the recorded step reads the buffers in turn
            return super().run_epoch(model, X, Y, None, batch_size, steps, callbacks)
        finally:
            self._batches.close()
            self._batches = self._rows = None

    def _static(self, model: Any, X: Any, Y: Any, shuffled: bool, steps: int) -> _Buffers:
        return _Buffers(model, X, steps, self._batch_size)

    def _check_recordings(self, model, X, Y, shuffled, batch_size, steps):
        self._batch_size = batch_size
        super()._check_recordings(model, X, Y, shuffled, batch_size, steps)

    def _feed(self, model: Any, size: int, batch_size: int) -> None:
        """The next batch from the prefetcher, copied into the buffers."""
        x, Y = self._rows.ready(next(self._batches))
        self.static.load(model, x, Y, size)

    def _gather(self, model: Any, size: int, batch_size: int) -> Any:
        """The buffers (their first ``size`` rows: views at the same addresses)."""
        st = self.static
        if size == st.X.shape[0]:
            x, y = st.X, st.Y
        else:
            x, y = st.X[:size, ...], st.Y[:size, ...]
        return lambda: (x, y)

    def __repr__(self) -> str:
        return f"CapturedStreamed({self.capture!r})"
