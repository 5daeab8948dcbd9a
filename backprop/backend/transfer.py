"""Batches from the host to a backend's device, the copy overlapping the step where it can.

A :class:`Transfer` moves the host arrays of one batch in two halves: :meth:`Transfer.stage`
runs in the prefetch thread (the copy starts there), :meth:`Transfer.ready` in the thread that
trains (the batch is handed over there). On CuPy and on torch on CUDA the copy runs on a copy
stream of its own, from pinned host memory, so that it overlaps the step running on the compute
stream:

1. the host rows are copied into a pinned (page-locked) buffer: only pinned memory can be
   copied to the GPU asynchronously;
2. the device array is allocated in the compute stream's pool, and the copy stream first waits
   for an event recorded on the compute stream: memory the pool hands out again may still be
   read by steps queued before it was freed, and the copy must not overwrite it (the step that
   is running when batch k+2 is staged is step k, so the copy still overlaps step k+1);
3. the copy is queued on the copy stream and an event recorded after it; the prefetch thread
   waits for that event (the copy engine works while the GPU computes), and only then lets the
   pinned buffer go back to its pool;
4. :meth:`Transfer.ready` makes the compute stream wait for the copy's event (already done: a
   formality that keeps the order explicit) and returns the device arrays.

Every other backend (NumPy, torch on CPU, JAX, array_api_strict) gets ``backend.asarray``,
called in the prefetch thread.

This module names :class:`~backprop.backend.core.Backend` only for the annotations: it takes
the backend as an argument and imports nothing of the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .core import Backend


def uses_copy_stream(backend: Backend) -> bool:
    """Whether batches reach ``backend`` through pinned memory and a copy stream (CUDA).

    Parameters
    ----------
    backend : Backend
        The model's backend.

    Returns
    -------
    bool
        True for CuPy and for torch on a CUDA device.
    """
    if backend.name == "cupy":
        return True
    return backend.name == "torch" and getattr(backend.device, "type", None) == "cuda"


class Transfer:
    """Moves the host arrays of each batch to ``backend``'s device (see the module's notes).

    Create it in the thread that trains: on CUDA it takes that thread's current stream as the
    compute stream.

    Parameters
    ----------
    backend : Backend
        Where the batches go.

    Examples
    --------
    >>> import numpy as np
    >>> from backprop.backend import resolve
    >>> t = Transfer(resolve("numpy"))
    >>> x, none = t.ready(t.stage((np.ones((2, 3)), None)))
    >>> x.shape, none
    ((2, 3), None)
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.cuda = uses_copy_stream(backend)
        if not self.cuda:
            return
        if backend.name == "cupy":
            self._cp = importlib.import_module("cupy")
            with backend.device:
                self.compute = self._cp.cuda.get_current_stream()
                # non-blocking: no implicit synchronisation with the legacy default stream,
                # which is the compute stream unless the caller chose another
                self.copy_stream = self._cp.cuda.Stream(non_blocking=True)
        else:
            self._torch = importlib.import_module("torch")
            self.compute = self._torch.cuda.current_stream(backend.device)
            self.copy_stream = self._torch.cuda.Stream(device=backend.device)

    def stage(self, arrays: Any) -> Any:
        """Start moving a batch (run in the prefetch thread).

        Parameters
        ----------
        arrays : tuple or array
            The batch: a tuple of host NumPy arrays (None and non-NumPy items pass through
            untouched: arrays already on a device, missing targets), or one array. Each array
            goes over in its own dtype: cast on the host first (half the bytes for float32).

        Returns
        -------
        object
            What :meth:`ready` takes.
        """
        single = not isinstance(arrays, tuple | list)
        items = (arrays,) if single else tuple(arrays)
        if not self.cuda:
            moved = tuple(self._plain(a) for a in items)
            return single, moved, None
        if self.backend.name == "cupy":
            moved, event = self._stage_cupy(items)
        else:
            moved, event = self._stage_torch(items)
        return single, moved, event

    def ready(self, staged: Any) -> Any:
        """The batch on the device (run in the thread that trains).

        Parameters
        ----------
        staged : object
            What :meth:`stage` returned.

        Returns
        -------
        tuple or array
            As given to :meth:`stage`, the NumPy arrays replaced by device arrays.
        """
        single, moved, event = staged
        if event is not None:
            self.compute.wait_event(event)  # GPU-side: the step's kernels queue after the copy
        return moved[0] if single else moved

    # -- the two halves, per library ---------------------------------------------------------

    def _plain(self, a: Any) -> Any:
        return self.backend.asarray(a) if isinstance(a, np.ndarray) else a

    def _stage_cupy(self, items: tuple) -> tuple[tuple, Any]:
        cp = self._cp
        with self.backend.device:
            # every chunk the pool hands out below was freed after the work queued so far
            freed = self.compute.record()
            moved, keep = [], []
            for a in items:
                if not isinstance(a, np.ndarray):
                    moved.append(a)
                    continue
                host = np.ascontiguousarray(a)
                memory = cp.cuda.alloc_pinned_memory(max(host.nbytes, 1))
                pinned = np.frombuffer(memory, host.dtype, host.size).reshape(host.shape)
                pinned[...] = host
                keep.append(memory)
                with self.compute:  # allocated in the compute stream's pool (step 2)
                    out = cp.empty(host.shape, dtype=host.dtype)
                self.copy_stream.wait_event(freed)
                out.set(pinned, stream=self.copy_stream)
                moved.append(out)
            done = self.copy_stream.record()
            done.synchronize()  # this thread waits; the pinned buffers may be reused after
            del keep
        return tuple(moved), done

    def _stage_torch(self, items: tuple) -> tuple[tuple, Any]:
        torch = self._torch
        device = self.backend.device
        freed = self.compute.record_event()
        moved, keep = [], []
        for a in items:
            if not isinstance(a, np.ndarray):
                moved.append(a)
                continue
            # the tensor dtype of the NumPy dtype (from_numpy of the array itself would warn
            # about read-only input, a memmap's rows for instance)
            dtype = torch.from_numpy(np.empty(0, dtype=a.dtype)).dtype
            pinned = torch.empty(a.shape, dtype=dtype, pin_memory=True)
            pinned.numpy()[...] = a  # one host copy, into the pinned buffer
            keep.append(pinned)
            with torch.cuda.stream(self.compute):  # the compute stream's pool (step 2)
                out = torch.empty(a.shape, dtype=dtype, device=device)
            with torch.cuda.stream(self.copy_stream):
                self.copy_stream.wait_event(freed)
                out.copy_(pinned, non_blocking=True)
            moved.append(out)
        done = self.copy_stream.record_event()
        done.synchronize()  # this thread waits; the pinned buffers may be reused after
        del keep
        return tuple(moved), done
