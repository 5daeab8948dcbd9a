"""``Prefetcher``: the next batches read (and sent to the device) while the current one trains.

One background thread pulls batches from an iterator, converts each (reads the rows from a
file, checks it), starts its copy to the device (:class:`~backprop.backend.transfer.Transfer`)
and puts it in a bounded queue; the training thread takes them in order. The thread never runs
more than ``depth`` batches ahead, an exception in it is raised in the training thread at the
batch it concerns, and it always stops: when the batches run out, at :meth:`Prefetcher.close`,
at the end of a ``with`` block, or when the prefetcher is garbage collected. Every wait has a
timeout, so that neither side can wait forever on the other.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..backend import Transfer

_POLL = 0.05  # seconds between looks at the other side while waiting on the queue
_ITEM, _ERROR, _END = "item", "error", "end"


def _stager(convert: Callable[[Any], Any], transfer: Transfer | None) -> Callable[[Any], Any]:
    """``batch -> convert(batch)``, its copy to the device started where there is one."""
    if transfer is None:
        return convert
    return lambda batch: transfer.stage(convert(batch))


def _produce(
    batches: Iterator[Any], stage: Callable[[Any], Any], q: queue.Queue, stop: threading.Event
) -> None:
    """The thread: stage each batch into ``q`` until the batches end or ``stop`` is set."""
    try:
        for batch in batches:
            if stop.is_set() or not _put(q, stop, (_ITEM, stage(batch))):
                return
        _put(q, stop, (_END, None))
    except Exception as e:  # handed to the consumer, raised there at this batch
        _put(q, stop, (_ERROR, e))


def _put(q: queue.Queue, stop: threading.Event, message: tuple[str, Any]) -> bool:
    """Queue ``message``; False if the consumer closed the prefetcher meanwhile."""
    while not stop.is_set():
        try:
            q.put(message, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


class Prefetcher:
    """Iterate ``convert(batch)`` for each batch, computed up to ``depth`` batches ahead.

    Parameters
    ----------
    batches : iterator
        The batches (e.g. the rows of each batch, or a generator's batches). It is read only
        as far as the consumer goes plus ``depth``: bound it (``itertools.islice``) where
        batches read ahead would be lost, as from a generator shared across epochs.
    convert : callable
        ``convert(batch)``: the batch as host arrays (a tuple of NumPy arrays and None, or
        one array), in the dtypes they should have on the device. Runs in the thread.
    backend : Backend or None
        The model's backend: each converted batch is moved there (on CUDA through pinned
        memory and a copy stream); None leaves the batches as ``convert`` made them.
    depth : int, default 2
        How many batches may be ready ahead of the one in use; 0 runs everything in the
        calling thread, with no thread at all.

    Examples
    --------
    >>> with Prefetcher(iter(range(4)), lambda i: i * i, None) as batches:
    ...     list(batches)
    [0, 1, 4, 9]
    """

    def __init__(
        self,
        batches: Iterator[Any],
        convert: Callable[[Any], Any],
        backend: Any = None,
        depth: int = 2,
    ) -> None:
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ValueError(f"depth must be an integer >= 0, received {depth!r}.")
        self._batches = iter(batches)
        # made here, in the training thread: on CUDA its stream is the compute stream
        self._transfer = None if backend is None else Transfer(backend)
        self._stage = _stager(convert, self._transfer)
        self.depth = depth
        self._done = False
        self._abandoned = False
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        if depth:
            self._queue: queue.Queue = queue.Queue(maxsize=depth)
            # the thread holds the queue and the stop flag, not the prefetcher: a prefetcher
            # dropped unclosed is collected, and its __del__ stops the thread
            self.thread = threading.Thread(
                target=_produce,
                args=(self._batches, self._stage, self._queue, self._stop),
                name="backprop-prefetch",
                daemon=True,  # a consumer that never closes it cannot keep the process alive
            )
            self.thread.start()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        if self.thread is None:
            try:
                staged = self._stage(next(self._batches))
            except BaseException:  # the end, or an error: nothing comes after either
                self._done = True
                raise
            return self._ready(staged)
        kind, value = self._get()
        if kind == _ITEM:
            return self._ready(value)
        self.close()
        if kind == _ERROR:
            raise value  # the original exception, with its traceback from the thread
        raise StopIteration

    def _ready(self, staged: Any) -> Any:
        return staged if self._transfer is None else self._transfer.ready(staged)

    def _get(self) -> tuple[str, Any]:
        while True:
            try:
                return self._queue.get(timeout=_POLL)
            except queue.Empty:
                if not self.thread.is_alive() and self._queue.empty():
                    # the thread ended without a word (only a crash of the interpreter's own
                    # could do that): never wait for a batch that will not come
                    return _ERROR, RuntimeError("the prefetch thread stopped without a batch")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread: it finishes the batch in hand (if any) and reads no further.

        Parameters
        ----------
        timeout : float, default 5.0
            Seconds to wait for the thread to end (a batch in hand is read to its end; the
            thread is a daemon, so one stuck longer cannot keep the process alive).
        """
        self._done = True
        self._stop.set()
        thread = self.thread
        if thread is None or not thread.is_alive():
            return
        if self._abandoned:  # an error path: the thread may be stuck in user code
            timeout = 0
        while True:  # make room, so that a producer waiting to put sees the stop at once
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if thread is not threading.current_thread():
            thread.join(timeout)

    def abandon(self) -> None:
        """Stop the thread without waiting for it: the way out of an error.

        The thread may be stuck in the user's code (a generator blocked in ``next()``); it
        ends when that call returns, and stages nothing after it (the stop is checked
        first), so it never calls into the model again. Later :meth:`close` calls do not
        wait either.
        """
        self._abandoned = True
        self.close(timeout=0)

    @property
    def alive(self) -> bool:
        """Whether the background thread is still running."""
        return self.thread is not None and self.thread.is_alive()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            self.abandon()  # an error: raise it now, not after the thread's batch
        else:
            self.close()

    def __del__(self) -> None:
        if getattr(self, "_stop", None) is not None:
            self.close(timeout=0)
