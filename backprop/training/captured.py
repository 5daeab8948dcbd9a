"""The captured engine: a training step recorded once as a CUDA graph, then replayed.

A small network's step on a GPU is bound by the host: some sixty array operations of 15-30 us
of launch overhead each, for a few microseconds of GPU work. Recorded once
(:meth:`Backend.capture`), the step's kernels replay for one launch. A replay repeats the
device work on the addresses recorded, so the step reads and writes only arrays that outlive
it:

- theta and the optimizer state (updated in place), and the flat gradient vector the layers
  write into; the moving statistics (copied back into their arrays after each step);
- the epoch's row order, learning rates and step numbers ``t``, written once per epoch, and a
  step counter ``k`` on the device: step ``k`` gathers rows ``k B ... k B + B - 1`` of the
  order, indexes its learning rate and ``t`` with ``k``, and increments ``k``;
- the epoch's sums (each step adds its loss times its rows and its metric statistics), each
  hidden ReLU layer's largest ``z`` (each step overwrites them: the last batch's give the
  dead-layer flags) and each step's loss (to name the batch whose loss was not finite).

One graph per batch shape: the full batches, and the short last batch. The first step of
each shape runs for real before it is recorded. A model the step cannot hold (dropout, whose
masks come from a generator a graph cannot record; per-array clipping) trains eagerly.

A store read by rows (a memmap, h5py, zarr, Dask) is never whole on the device: there the
step reads fixed batch buffers instead of gathering from the data (:mod:`.captured_streamed`,
through the hooks ``_static``, ``_feed`` and ``_gather``).
"""

from __future__ import annotations

import warnings
from typing import Any

from .. import callbacks as _callbacks
from .. import layers as _layers
from ..backend import CaptureError
from . import logs as _logs
from . import step as _step
from .base import Engine, Epoch
from .compiled import _constants
from .probe import relu_hidden

Array = Any


def supports(model: Any) -> bool:
    """Whether the model's step can be recorded: in-place updates, no dropout, no clipnorm."""
    return why_not(model) is None


def why_not(model: Any) -> str | None:
    """Why the model's step cannot be recorded, in a few words; None where it can."""
    if model._grad is None:
        return "the model has no trainable weights: nothing to record"
    dropout = [layer for layer in model.layers if isinstance(layer, _layers.Dropout)]
    if dropout:
        return (
            f"Dropout ({dropout[0].name}) keeps the eager engine: its masks are drawn on the "
            "host for each step"
        )
    if model.optimizer.clipnorm is not None:
        return (
            "clipnorm (per-array clipping) keeps the eager engine; global_clipnorm clips "
            "inside the recorded step"
        )
    return None


class _Static:
    """The arrays a recorded step reads and writes: made once per fit (and layout)."""

    def __init__(self, model: Any, X: Array, Y: Array, shuffled: bool, steps: int):
        b, xp, n = model.backend, model.xp, X.shape[0]
        opt = model.optimizer
        self.X, self.Y = X, Y
        self.theta, self.grad = model._theta, model._grad
        self.state = dict(opt.state[0])
        # copies: a buffer handed in by set_weights may be the caller's own array
        self.buffers = [xp.asarray(a, copy=True) for a in model._get_buffers()]
        model._set_buffers(self.buffers)
        ints = b.int_dtype
        self.order = b.zeros((n,), ints) if shuffled else None
        self.rates = b.zeros((2, steps), model.dtype)  # each step's learning rate and t
        self.k = b.zeros((), ints)
        self.steps = b.asarray(list(range(steps)), ints)
        n_stats = sum(m.n_stats for _, m in model.metrics)
        self.sums = b.zeros((1 + n_stats,), model.dtype)
        self.flags = b.zeros((len(relu_hidden(model)),), model.dtype)  # max z per layer
        self.losses = b.zeros((steps,), model.dtype)
        self.rows = {}  # batch size -> arange(size), the rows of step 0
        self.held = _held(model, X, Y)


def _held(model: Any, X: Array, Y: Array) -> tuple:
    """The arrays whose addresses a recorded step holds."""
    state = model.optimizer.state[0].values()
    return (X, Y, model._theta, model._grad, *state, *model._get_buffers())


def _stack(xp: Any, values: list) -> Array:
    """``xp.stack`` of 0-d arrays, joined at most 8 at a time.

    CuPy joins more than 8 arrays in one kernel whose table of pointers it copies from the
    host: a copy a recording refuses.
    """
    parts = [xp.reshape(v, (1,)) for v in values]
    while len(parts) > 8:
        parts = [xp.concat(parts[i : i + 8]) for i in range(0, len(parts), 8)]
    return xp.concat(parts) if len(parts) > 1 else parts[0]


def _keep(static: Array, new: Array) -> None:
    """Write ``new`` into ``static`` unless the update already happened in place."""
    if new is not static:
        static[...] = new


class Captured(Engine):
    """Each batch shape's step recorded once, then replayed; the host writes only per epoch.

    Parameters
    ----------
    capture : callable
        ``capture(fn) -> replay``: runs ``fn`` once and records it (:meth:`Backend.capture`),
        or returns None without running it where nothing can be recorded.
    """

    name = "captured"

    def __init__(self, capture: Any):
        self.capture = capture
        self._reset()

    def _reset(self) -> None:
        self.static: _Static | None = None
        self.replays: dict[int, Any] = {}
        self.key: tuple | None = None

    def begin(self, model: Any, X: Array, Y: Array, Xv: Array | None, settings: dict) -> None:
        self._reset()

    def end(self, model: Any) -> None:
        self._reset()  # the graphs hold device memory: free it with the fit

    def run_epoch(
        self,
        model: Any,
        X: Array,
        Y: Array,
        order: Array | None,
        batch_size: int,
        steps: int,
        callbacks: _callbacks.CallbackList,
    ) -> Epoch:
        xp, b, opt, n = model.xp, model.backend, model.optimizer, X.shape[0]
        if len(opt.state) != 1:
            opt.build([model._theta])
        self._check_recordings(model, X, Y, order is not None, batch_size, steps)
        st = self.static
        first = opt.iterations
        st.rates[...] = b.asarray(
            [opt.learning_rates(steps), list(range(first + 1, first + steps + 1))], model.dtype
        )
        if st.order is not None:
            st.order[...] = order
        st.k[...] = 0
        st.sums[...] = 0
        st.losses[...] = 0
        sizes, lo = [], 0
        try:
            for i in range(steps):
                size = min(batch_size, n - lo)
                lo += size
                callbacks.on_train_batch_begin(i)
                self._feed(model, size, batch_size)
                self._run(model, size, batch_size)
                sizes.append(size)
                callbacks.on_train_batch_end(i, {"batch": i, "size": size})
                if model.stop_training:
                    break
        finally:  # an error partway (a batch that cannot be read): the steps that ran count
            opt.iterations = first + len(sizes)
        # once per epoch, as the compiled engine (see Optimizer.flush_every); in place
        opt._flush_subnormals(xp)
        # the flags, once per epoch: a layer is dead where its largest z is <= 0 (NaN is not)
        dead = xp.astype(st.flags <= 0, st.flags.dtype)
        sums = xp.concat([st.sums, dead])  # copies: the buffers are the next epoch's
        losses = xp.asarray(st.losses[: len(sizes)], copy=True)
        return Epoch(sums, lo, st.flags.shape[0], (None, None, None, sizes), losses)

    def _check_recordings(self, model, X, Y, shuffled: bool, batch_size: int, steps: int):
        """Record afresh when what the graphs hold changed.

        A new layout, restored weights, new data, a setting a callback changed between epochs.
        """
        key = (shuffled, batch_size, steps, model._trainable_key, _constants(model))
        st, held = self.static, _held(model, X, Y)
        same = (
            st is not None
            and self.key == key
            and len(held) == len(st.held)
            and all(a is b for a, b in zip(held, st.held, strict=True))
        )
        if not same:
            self.replays = {}
            self.static = self._static(model, X, Y, shuffled, steps)
            self.key = key

    def _static(self, model: Any, X: Any, Y: Any, shuffled: bool, steps: int) -> _Static:
        """The arrays the recordings hold (the data in memory, gathered by index)."""
        return _Static(model, X, Y, shuffled, steps)

    def _feed(self, model: Any, size: int, batch_size: int) -> None:
        """Put the next step's batch where its recording reads it.

        Nothing to do in memory: the step gathers its rows through the order and the counter.
        """

    def _gather(self, model: Any, size: int, batch_size: int) -> Any:
        """``gather() -> (x, y)``: the step's batch, made of the static arrays only.

        Step ``k`` takes rows ``k B ... k B + size - 1`` of the epoch's order.
        """
        st, xp = self.static, model.xp
        if size not in st.rows:
            st.rows[size] = model.backend.asarray(list(range(size)), model.backend.int_dtype)
        base = st.rows[size]

        def gather() -> tuple[Array, Array]:
            rows = base + st.k * batch_size
            if st.order is not None:
                rows = xp.take(st.order, rows)
            return xp.take(st.X, rows, axis=0), xp.take(st.Y, rows, axis=0)

        return gather

    def _run(self, model: Any, size: int, batch_size: int) -> None:
        replay = self.replays.get(size)
        if replay is not None:
            replay()
            return
        step = self._step(model, size, batch_size)
        try:
            replay = self.capture(step)  # runs the step once, for real
        except CaptureError as exc:
            # the recording ran the step's Python but none of its device work: whatever it
            # rebound (moving statistics, optimizer state) points at arrays never computed
            st = self.static
            model._set_buffers(st.buffers)
            model.optimizer.state[0].update(st.state)
            warnings.warn(
                f"{exc}. The steps of this fit run without a recording (the same results, "
                "slower); Sequential(capture=False) skips the attempt.",
                RuntimeWarning,
                stacklevel=2,
            )
            replay = step
        if replay is None:  # nothing can be recorded here: run it as it is
            step()
            replay = step
        self.replays[size] = replay

    def _step(self, model: Any, size: int, batch_size: int) -> Any:
        """The step on a batch of ``size`` rows, as a function of the static arrays only."""
        st, xp, opt = self.static, model.xp, model.optimizer
        gather, hidden = self._gather(model, size, batch_size), relu_hidden(model)

        def step() -> None:
            x, y = gather()
            k = xp.reshape(st.k, (1,))
            lr, t = xp.take(st.rates[0, ...], k), xp.take(st.rates[1, ...], k)
            model._set_buffers(st.buffers)
            y_hat = model._forward(x, training=True)
            loss = _step.loss_and_backward(model, y, y_hat)  # with these weights' penalty
            stats = _logs.metric_stats(model, y, y_hat)
            st.sums[...] = st.sums + _stack(xp, [loss * size, *stats])
            st.losses[...] = xp.where(st.steps == st.k, loss, st.losses)
            if hidden:  # each layer's largest z: one reduction (the host compares it with 0)
                st.flags[...] = _stack(xp, [xp.max(layer.z) for layer in hidden])
            state = opt.state[0]
            _keep(st.theta, opt.step([st.theta], [model._flat_grads()], [state], lr, t, xp)[0])
            _keep(st.theta, model._constrain(st.theta))  # after the update, as Keras
            for name, a in st.state.items():
                _keep(a, state[name])
                state[name] = a
            for a, new in zip(st.buffers, model._get_buffers(), strict=True):
                _keep(a, new)
            model._set_buffers(st.buffers)
            st.k += 1

        return step
