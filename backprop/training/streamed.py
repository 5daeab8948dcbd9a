"""The streamed engines: batches read from a store or pulled from a stream (issue 23).

Two kinds of input come here, as :func:`backprop.data.adapt` wraps them:

- **by rows**: a NumPy ``memmap``, an h5py or zarr dataset, a Dask array (:class:`Rows`). The
  engine is the eager one; only where a batch comes from differs: the rows ``order[lo:hi]``
  of the same seeded permutation an in-memory fit draws, read from the store, checked, and
  moved to the model's device one batch at a time. So a fit on a memmap trains on the same
  batches, in the same order, as the fit on the array in memory: the same numbers.
- **by batches**: a generator or another iterable, a torch ``DataLoader``, a ``PyDataset``
  (:class:`Batches`): the batches come as the source hands them out, each checked with
  :func:`backprop.data.check_batch` and named by its step (from 1) in any error.

Both read through a :class:`backprop.data.Prefetcher`: a background thread reads the next
batches (and, on CUDA, copies them to the device) while the current one trains. The thread
casts the host arrays to the model's dtype; the training thread then prepares the targets as
the loss takes them (``model._to_device``, a no-op move) and adds the weights' column. The
prefetcher is made in the training thread and always closed, whatever ends the epoch.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .. import callbacks as _callbacks
from .. import data as _data
from ..backend import to_numpy
from . import logs as _logs
from .base import Epoch
from .eager import Eager, epoch_of
from .probe import DEAD_CHECK_ROWS

Array = Any

#: batches read ahead of the one training (the prefetch thread's queue)
PREFETCH_DEPTH = 2


def _host(model: Any, x: Any, y: Any, w: Any) -> tuple:
    """Host arrays in the dtypes they take on the device: half the bytes to copy in float32.

    ``x`` and ``w`` in the model's dtype, ``y`` in it too (integers for a sparse loss, whose
    labels become one-hot rows on the device); arrays of another library pass as they are.
    """
    dtype = np.dtype(model._dtype_name)
    if isinstance(x, np.ndarray):
        x = x.astype(dtype, copy=False)
    if isinstance(y, np.ndarray):
        y = y.astype(np.int64 if model.loss.kind == "sparse" else dtype, copy=False)
    if w is not None:
        w = np.asarray(w).astype(dtype, copy=False)
    return x, y, w


def _on_device(model: Any, batch: tuple) -> tuple[Array, Array | None]:
    """A prefetched ``(x, y, w)`` as ``(x, Y)``: targets as the loss takes them, weights added."""
    x, y, w = batch
    if y is None:
        return model.backend.asarray(x, model.dtype), None
    x, Y = model._to_device(x, y)
    return x, with_weights(model, Y, w)


def _class_weights(class_weight: dict | None, y: Any, w: Any, where: str) -> Any:
    """The batch's weights from ``class_weight`` (its labels' classes), or ``w`` as it is."""
    if class_weight is None or y is None:
        return w
    if w is not None:  # as Keras refuses both
        raise ValueError(
            f"{where} carries sample weights and fit() was given class_weight: pass one of "
            "them. Multiply the class weights into the batches' sample weights yourself."
        )
    return _data.class_weight_to_sample_weight(class_weight, to_numpy(y))


class Rows:
    """The rows of a by-rows source as the loop sees them: a shape, and batches on the device.

    Parameters
    ----------
    model : Sequential
        A built model: the device, dtype and loss the batches are prepared for.
    source : Source
        A by-rows source (``source.by_rows``) from :func:`backprop.data.adapt`.
    class_weight : dict, optional
        Checked ``class_weight`` of ``fit``: each batch's weights from its labels.
    """

    def __init__(self, model: Any, source: Any, class_weight: dict | None = None):
        self.model, self.source, self.class_weight = model, source, class_weight
        self.shape = (int(source.n), *source.sample_shape)

    def host(self, rows: np.ndarray) -> tuple:
        """The rows ``rows`` as host arrays ``(x, y, w)`` in the device's dtypes (any thread).

        No rows (a rank without rows in a small batch) reads nothing: empty arrays.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size:
            x, y, w = self.source.read(rows)
        else:
            x, y, w = (
                None if a is None else np.empty((0, *a.shape[1:]), np.dtype(a.dtype))
                for a in (self.source.x, self.source.y, self.source.w)
            )
        if y is not None:
            w = _class_weights(self.class_weight, y, w, f"{self.source.name}")
        return _host(self.model, x, y, w)

    def read(self, rows: np.ndarray) -> tuple[Array, Array | None]:
        """The rows ``rows`` as ``(x, Y)`` on the device (``Y`` with the weights' column)."""
        return _on_device(self.model, self.host(rows))

    def slice(self, lo: int, hi: int) -> tuple[Array, Array | None]:
        """The rows ``lo:hi`` in their order, on the device."""
        return self.read(np.arange(lo, hi))

    def prefetch(self, rows: Iterator[np.ndarray]) -> _data.Prefetcher:
        """The batches of these rows, read ahead in a thread (``ready`` them in order)."""
        return _data.Prefetcher(rows, self.host, self.model.backend, PREFETCH_DEPTH)

    def ready(self, batch: tuple) -> tuple[Array, Array | None]:
        """A prefetched batch as ``(x, Y)`` on the device."""
        return _on_device(self.model, batch)

    def windows(self, batch_size: int) -> Iterator[tuple[Array, Array | None]]:
        """The rows in order, ``batch_size`` at a time, read ahead (evaluate, predict)."""
        n = self.shape[0]
        ranges = (np.arange(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size))
        with self.prefetch(ranges) as batches:
            self._prefetcher = batches
            for batch in batches:
                yield self.ready(batch)

    _prefetcher: Any = None  # the prefetcher of ``windows``, while they run

    def abandon(self) -> None:
        """An error ends ``windows``: stop its thread without waiting for a read in hand."""
        if self._prefetcher is not None:
            self._prefetcher.abandon()


def epoch_rows(
    model: Any,
    order: Array | None,
    n: int,
    batch_size: int,
    steps: int,
    part: Callable[[int, int], tuple[int, int]] | None = None,
) -> Iterator[np.ndarray]:
    """The store's rows of each step of the epoch, for the prefetcher to read in turn.

    The permutation's rows (brought to the host once, here, in the training thread), or the
    rows in order; ``part(lo, hi)`` is the part of a batch this process reads (a rank's).
    """
    host_order = None if order is None else np.asarray(model.backend.to_numpy(order))

    def rows() -> Iterator[np.ndarray]:
        for i in range(steps):
            lo, hi = i * batch_size, min((i + 1) * batch_size, n)
            if part is not None:
                lo, hi = part(lo, hi)
            yield np.arange(lo, hi) if host_order is None else host_order[lo:hi]

    return rows()


class Streamed(Eager):
    """The eager steps on batches read from a by-rows source, read ahead in a thread.

    ``run_epoch`` lays out the rows of every step as the eager engine will ask for them
    (``rows(lo, hi)`` of each batch, through the epoch's order, brought to the host once),
    and a :class:`~backprop.data.Prefetcher` reads them ahead; ``batch`` takes the next.
    """

    name = "streamed"
    _batches: Any = None  # the epoch's prefetcher, while run_epoch runs

    def run_epoch(self, model, X, Y, order, batch_size, steps, callbacks) -> Epoch:
        """The eager epoch, its batches read ahead of the steps."""
        rows = epoch_rows(model, order, X.shape[0], batch_size, steps, self.rows)
        self._batches = X.prefetch(rows)  # made in the training thread (CUDA's stream)
        try:
            return super().run_epoch(model, X, Y, order, batch_size, steps, callbacks)
        except BaseException:
            self._batches.abandon()  # raise now, not after the read in hand
            raise
        finally:
            self._batches.close()
            self._batches = None

    def batch(self, model: Any, X: Any, Y: Any, order: Array | None, lo: int, hi: int):
        """The rows ``order[lo:hi]``, read from the store ahead, on the device."""
        return X.ready(next(self._batches))


class RanOut(UserWarning):
    """A generator ran out of batches before the epoch's steps were done."""


class Batches:
    """A source that hands out whole batches (a generator, a PyDataset), as the loop sees it.

    Parameters
    ----------
    model : Sequential
        A built model: the device, dtype and loss the batches are prepared for.
    source : Source
        A source that is not read by rows (``source.epoch()`` gives the batches of a pass).
    steps : int or None
        Batches per pass (``steps_per_epoch``, ``validation_steps``, the source's length), or
        None: until the source runs out.
    needs_y : bool
        Whether each batch must carry targets (fit, evaluate; not predict).
    probe : array
        The first batch's x (up to :data:`DEAD_CHECK_ROWS` rows), on the device: the rows
        the dead-network check looks at.
    class_weight : dict, optional
        Checked ``class_weight`` of ``fit``: each batch's weights from its labels.
    keep : bool, default False
        Whether each pass goes on where the last one stopped (``steps_per_epoch`` given: as
        Keras 3, one iterator of a list of batches or a DataLoader across the epochs).
    training : bool, default False
        Whether these are a fit's training batches (an error's note then says which weights
        the model holds).
    """

    def __init__(
        self, model, source, steps, *, needs_y, probe=None, class_weight=None, keep=False,
        training=False,
    ):  # fmt: skip
        self.model, self.source, self.steps = model, source, steps
        self.keep, self.training = keep, training
        self.needs_y, self.probe, self.class_weight = needs_y, probe, class_weight
        self.sample_shape = tuple(source.sample_shape)
        self.epochs = 0  # passes begun
        self.ran_out: int | None = None  # the step (from 1) that found no batch, if any

    def host(self, item: tuple[int, Any]) -> tuple:
        """Batch number ``step`` checked, as host arrays in the device's dtypes (any thread)."""
        step, batch = item
        source, model = self.source, self.model
        x, y, w = _data.check_batch(
            batch, step, self.sample_shape, needs_y=self.needs_y, what=source.what,
            dtype=model._dtype_name,
        )  # fmt: skip
        if not self.needs_y:
            return _host(model, x, None, None)
        where = f"batch {step} of {source.what}"
        try:  # the targets against the loss (class range, one-hot width), as arrays are
            n_out = model._out_dim_from(self.sample_shape)
            y = _data.check_y(
                y, int(x.shape[0]), model.loss.kind, n_out, dtype=model._dtype_name,
                loss=model.loss.name,
            )  # fmt: skip
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}: {e}") from None
        return _host(model, x, y, _class_weights(self.class_weight, y, w, where))

    _prefetcher: Any = None  # the pass's prefetcher, while one runs

    def abandon(self) -> None:
        """An error ends the pass: stop its thread without waiting (it may be in user code)."""
        if self._prefetcher is not None:
            self._prefetcher.abandon()

    def passes(self) -> Iterator[tuple[Array, Array | None]]:
        """One pass: its batches on the device, read ahead; ``ran_out`` set where it ran dry.

        An error raised by the source (or by a batch's checks) reaches the caller at the
        batch it concerns, with a note naming it; the prefetch thread is closed on every way
        out.
        """
        self.epochs += 1
        self.ran_out = None
        self.source.on_epoch_begin()  # as Keras 3, before each pass (fit, evaluate, predict)
        batches = self.source.epoch(keep=self.keep)
        if self.steps is not None:  # bound before the thread: a one-shot generator loses none
            batches = itertools.islice(batches, self.steps)
        taken = 0
        with _data.Prefetcher(
            enumerate(batches, start=1), self.host, self.model.backend, PREFETCH_DEPTH
        ) as prefetched:
            self._prefetcher = prefetched
            while True:
                try:
                    batch = next(prefetched)
                except StopIteration:
                    break
                except Exception as e:
                    if not any(f"batch {taken + 1} of" in str(a) for a in e.args):
                        weights = (
                            "; the model holds the weights of the last complete step"
                            if self.training  # evaluate and predict change no weight
                            else ""
                        )
                        e.add_note(
                            f"Raised while reading batch {taken + 1} of {self.source.what} "
                            f"({self.source.name}){weights}."
                        )
                    raise
                taken += 1
                yield _on_device(self.model, batch)
        if taken < (self.steps or 1):  # none at all, or fewer than the steps asked
            self.ran_out = taken + 1
        else:
            self.source.on_epoch_end()


class StreamedBatches(Eager):
    """The eager steps on the batches a generator or a PyDataset hands out, as they come.

    The batches may have any number of rows; the epoch's loss and metrics are those of the
    rows trained, and the steps stop where the source runs out, or where a callback sets
    ``model.stop_training``.
    """

    name = "streamed"

    def global_rows(self, size: int) -> int:
        """The rows of a step's global batch: this process's (one process)."""
        return size

    def run_epoch(self, model, X, Y, order, batch_size, steps, callbacks) -> Epoch:
        """One pass over ``X`` (a :class:`Batches`); ``order`` and ``batch_size`` are unused."""
        fused, last = model._fused, model.layers[-1]
        outputs, logits, penalties, targets = [], [], [], []
        watched, running = self.batch_logs(callbacks), None
        hooked = any(
            _callbacks.overrides(cb, *_callbacks.TRAIN_BATCH_HOOKS) for cb in callbacks.callbacks
        )
        rows = steps_run = 0
        passes = X.passes()
        try:
            for i, (xb, yb) in enumerate(passes):
                size = int(xb.shape[0])
                total = self.global_rows(size)  # the global batch's rows (over the ranks)
                if hooked:
                    callbacks.on_train_batch_begin(i)
                penalty = model._penalty()  # the weights this step starts from
                y_hat = self.step(model, xb, yb, 1.0)
                outputs.append(y_hat)
                targets.append(yb)
                if fused:
                    logits.append(last.z)  # the fused loss needs the logits
                if penalty is not None:
                    penalties.append(penalty * size)
                rows += total
                logs = {"batch": i, "size": total}
                if watched:
                    z = last.z if fused else None
                    part = self.batch_part(model, yb, y_hat, z, penalty, size)
                    running = part if running is None else running + part
                    logs.update(_logs.finish(model, running, rows))
                if hooked:
                    callbacks.on_train_batch_end(i, logs)
                steps_run = i + 1
                if self.stopped(model):
                    break
        except BaseException:
            X.abandon()  # raise now: the thread may be blocked in the user's generator
            raise
        finally:
            passes.close()  # a pass left early (a callback stopped it): its thread stops now
        if not steps_run:
            return Epoch(None, 0, 0, (None, None, None, []), None, None, 0)
        del xb, yb
        return epoch_of(model, targets, outputs, logits, penalties, rows, None, steps_run)


def ran_out_warning(
    X: Batches, epoch: int | None, what: str = "training", steps_name: str = "steps_per_epoch"
) -> None:
    """Warn that ``X`` ran out at step ``X.ran_out`` (as Keras's "Your input ran out of data").

    ``steps_name``: the argument that set ``X.steps`` (``steps_per_epoch`` in training,
    ``validation_steps`` in a fit's validation, ``steps`` in evaluate and predict). The
    warning points at the user's ``fit``/``evaluate``/``predict`` call.
    """
    steps = X.steps
    if steps is not None and what == "training":
        advice = (
            f"Make sure it can give at least steps_per_epoch * epochs batches "
            f"(steps_per_epoch={steps})."
        )
    elif steps is not None:
        per = " per validation" if steps_name == "validation_steps" else ""
        advice = f"Make sure it can give {steps_name}={steps} batches{per}."
    else:
        advice = (
            "A generator is one stream for all epochs: pass steps_per_epoch (and make it "
            "endless), or an iterable that restarts (a list of batches, a DataLoader, a "
            "PyDataset)."
        )
    during = f" of epoch {epoch + 1}" if epoch is not None else ""
    warnings.warn(
        f"Your input ran out of data at batch {X.ran_out}{during} ({X.source.name}, "
        f"{X.source.what}); interrupting {what}. {advice}",
        RanOut,
        stacklevel=_data.sources.user_stacklevel(),
    )


def probe_rows(model: Any, x: Any) -> Array:
    """The first rows of a batch's x on the device: the dead-network check's rows."""
    return model.backend.asarray(x[:DEAD_CHECK_ROWS, ...], model.dtype)


def is_rows(X: Any) -> bool:
    """Whether ``X`` is a streamed source's :class:`Rows` (not an array on the device)."""
    return isinstance(X, Rows)


def is_batches(X: Any) -> bool:
    """Whether ``X`` is a generator's or a PyDataset's :class:`Batches`."""
    return isinstance(X, Batches)


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
