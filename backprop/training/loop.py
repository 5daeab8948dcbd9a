"""The training loop: ``fit``, ``evaluate`` and ``predict`` around a network and an engine.

``fit`` checks the data and moves it onto the model's device once, asks :func:`choose_engine`
how the steps run, and around each epoch the engine runs does the rest: the shuffled order,
validation, callbacks, logs read back once per epoch, the dead-network warning, and the
restore after a non-finite loss.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import callbacks as _callbacks
from .. import data as _data
from .. import layers as _layers
from .._checks import is_int
from . import compilation as _compilation
from . import logs as _logs
from . import probe as _probe
from .choose import choose_engine
from .errors import NonFiniteLossError
from .sharded import any_rank, shard
from .streamed import (
    Batches,
    Rows,
    is_batches,
    is_rows,
    probe_rows,
    ran_out_warning,
    with_weights,
)
from .streamed_sharded import batches_engine, rank_part, streamed_engine

Array = Any


def fit(
    model: Any,
    X: Any,
    y: Any,
    epochs: int,
    batch_size: int | None,
    shuffle: bool,
    validation_data: tuple[Any, Any] | None,
    validation_split: float,
    verbose: int,
    callbacks: list[_callbacks.Callback] | None,
    initial_epoch: int,
    comm: Any = None,
    sample_weight: Any = None,
    class_weight: Any = None,
    validation_freq: Any = 1,
    validation_batch_size: int | None = None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
) -> _callbacks.History:
    """``model.fit`` (see ``Sequential.fit``); ``comm``: the ranks of a data-parallel fit."""
    _compilation.require_compiled(model, "fit")
    if _is_pair(validation_data) and any(v is None for v in validation_data[:2]):
        raise TypeError("validation_data needs features and labels: (X_val, y_val).")
    _data.check_positive_int(steps_per_epoch, "steps_per_epoch", allow_none=True)
    _data.check_positive_int(validation_steps, "validation_steps", allow_none=True)
    steps = dict(
        train=None if steps_per_epoch is None else int(steps_per_epoch),
        val=None if validation_steps is None else int(validation_steps),
    )
    _data.check_positive_int(epochs, "epochs")
    _data.check_positive_int(batch_size, "batch_size", allow_none=True)
    # Python ints from here: callbacks see them in params and logs (and write them as JSON)
    epochs, batch_size = int(epochs), None if batch_size is None else int(batch_size)
    validation_split = _data.check_fraction(validation_split, "validation_split")
    verbose = check_verbose(verbose)
    validation_freq = check_validation_freq(validation_freq)
    _data.check_positive_int(validation_batch_size, "validation_batch_size", allow_none=True)
    if validation_batch_size is not None:
        validation_batch_size = int(validation_batch_size)
    val_stream = None if _is_pair(validation_data) else _stream_of(validation_data)
    pair = _is_pair(validation_data) and len(validation_data) in (2, 3)
    if validation_data is not None and val_stream is None and not pair:
        raise ValueError(
            "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val),"
            " a PyDataset or a generator of batches (with validation_steps), received "
            f"{type(validation_data).__name__}"
            + (
                f" of length {len(validation_data)}."
                if isinstance(validation_data, tuple | list)
                else "."
            )
        )
    if not is_int(initial_epoch):
        raise TypeError(f"initial_epoch must be an integer, received {initial_epoch!r}.")
    initial_epoch = int(initial_epoch)
    if not 0 <= initial_epoch < epochs:
        raise ValueError(
            f"initial_epoch must be in [0, epochs={epochs}), received {initial_epoch}."
        )
    if callbacks is not None and not isinstance(callbacks, list | tuple):
        raise TypeError(
            "callbacks must be a list of Callback instances, e.g. callbacks=[History()]; "
            f"received {type(callbacks).__name__}."
        )
    for c in callbacks or []:
        if not isinstance(c, _callbacks.Callback):
            raise TypeError(f"callbacks must be Callback instances, received {c!r}.")
    _compilation.check_optimizer_state(model)  # after re-packing theta for frozen layers
    source = _data.adapt(X, y, sample_weight, name="X")
    validation = dict(
        freq=validation_freq, batch_size=validation_batch_size, steps=steps["val"],
        stream=val_stream, comm=comm,
    )  # fmt: skip
    if source is not None:  # a store read batch by batch, or a stream of batches
        return _fit_streamed(
            model, source, epochs, batch_size, shuffle, validation_data, validation_split,
            verbose, callbacks, initial_epoch, comm, class_weight, validation, steps["train"],
        )  # fmt: skip
    if y is None:
        raise TypeError("fit() needs labels: fit(X, y, ...); received y=None.")
    _arrays_take_no_steps(steps["train"], "fit", "steps_per_epoch")
    # every check runs before the model is built or touched
    X, y = model._check(X, y)
    sample_weight, class_weight = _data.check_weights(
        sample_weight, class_weight, X.shape[0], "fit()"
    )
    n_val = int(X.shape[0] * validation_split) if validation_data is None else 0
    if validation_split and validation_data is None and n_val in (0, X.shape[0]):
        raise ValueError(
            f"validation_split={validation_split} of {X.shape[0]} samples leaves "
            f"{n_val} for validation; need at least one sample on each side."
        )
    val = _check_validation(model, validation_data, validation, tuple(X.shape[1:]))
    # every check ran: from here the model is built and the data on its device
    X, Y = model._to_device(X, y)
    if class_weight is not None:
        sample_weight = _data.class_weight_to_sample_weight(class_weight, model.backend.to_numpy(Y))
    Y = with_weights(model, Y, sample_weight)
    if validation_data is not None:
        Xv, Yv = _validation_on_device(model, val, validation)
    elif n_val:
        X, Xv, Y, Yv = X[:-n_val, ...], X[-n_val:, ...], Y[:-n_val, ...], Y[-n_val:, ...]
        if class_weight is not None:  # as Keras 3: the class weights are the training's only
            Yv = Yv[:, :-1]
    else:
        Xv = Yv = None

    n = X.shape[0]
    batch_size = min(batch_size or 32, n)
    model._comm = comm
    try:
        return _epochs(
            model,
            X,
            Y,
            Xv,
            Yv,
            epochs,
            batch_size,
            shuffle,
            verbose,
            callbacks,
            initial_epoch,
            validation,
        )
    finally:
        model._comm = None


def _is_pair(validation_data: Any) -> bool:
    """Whether ``validation_data`` is ``(X_val, y_val[, w_val])``, not a list of batches."""
    if not isinstance(validation_data, tuple | list) or not validation_data:
        return False
    # X_val may itself be a list (of rows): a pair unless its items read as batches
    return not _data.adapters._is_batches(validation_data)


def _stream_of(validation_data: Any) -> Any:
    """The source of a ``validation_data`` given as batches (None: not a stream)."""
    if validation_data is None:
        return None
    source = _data.adapt(validation_data, name="validation_data")
    return None if source is None or source.by_rows else source


def _arrays_take_no_steps(steps: int | None, what: str, name: str) -> None:
    """Refuse ``steps_per_epoch``/``steps`` beside arrays and stores: their rows set the steps."""
    if steps is not None:
        raise ValueError(
            f"{what}({name}={steps}) counts the batches of a generator or a PyDataset; with "
            f"arrays or a store read by rows the steps are ceil(rows / batch_size). Leave "
            f"{name} unset (pass fewer rows, or a generator, to take fewer steps)."
        )


def _check_validation(model: Any, validation_data: Any, validation: dict, input_shape) -> Any:
    """``validation_data`` checked before the model is touched; what it needs on the device.

    Returns None (no validation data), ``("stream", source, x0)`` for a generator or a
    PyDataset (its first batch checked), ``("rows", source)`` for a store read by rows, or
    ``("arrays", Xv, yv, wv)`` checked.
    """
    if validation_data is None:
        return None
    stream = validation["stream"]
    if stream is not None:
        if validation["comm"] is not None:
            raise TypeError(
                "fit(distributed=...) validates on arrays or stores read by rows; a generator "
                "or a PyDataset as validation_data runs in one process."
            )
        x0, _ = _first_batch(model, stream, needs_y=True, input_shape=input_shape)
        return ("stream", stream, x0)
    _arrays_or_rows = _data.adapt(*validation_data[:3], name="X_val")
    if _arrays_or_rows is not None:
        return ("rows", _arrays_or_rows)
    Xv, yv = model._check(*validation_data[:2], name="X_val", input_shape=input_shape)
    wv = None
    if len(validation_data) == 3 and validation_data[2] is not None:
        wv = _data.check_sample_weight(validation_data[2], Xv.shape[0], "validation sample_weight")
    return ("arrays", Xv, yv, wv)


def _validation_on_device(model: Any, val: Any, validation: dict) -> tuple[Any, Any]:
    """``(Xv, Yv)`` for the loop from :func:`_check_validation`'s result (model built)."""
    if val[0] == "stream":
        steps = validation["steps"] or val[1].steps(None)
        return Batches(model, val[1], steps, needs_y=True), None
    if val[0] == "rows":
        return Rows(model, val[1]), None
    _, Xv, yv, wv = val
    Xv, Yv = model._to_device(Xv, yv)
    return Xv, with_weights(model, Yv, wv)


def _first_batch(model: Any, source: Any, *, needs_y: bool, input_shape=None) -> tuple:
    """The first batch of a stream, checked as arrays are (named batch 1); builds nothing."""
    x0, y0, _ = _data.check_batch(
        source.peek(), 1, input_shape or model.input_shape, needs_y=needs_y, what=source.what,
        dtype=model._dtype_name,
    )  # fmt: skip
    try:
        x0, y0 = model._check(x0, y0, input_shape=input_shape)
    except (TypeError, ValueError) as e:
        raise type(e)(f"batch 1 of {source.what}: {e}") from None
    return x0, y0


def _fit_streamed(
    model, source, epochs, batch_size, shuffle, validation_data, validation_split, verbose,
    callbacks, initial_epoch, comm, class_weight, validation, steps_per_epoch,
) -> _callbacks.History:  # fmt: skip
    """``fit`` on a store read by rows, or on the batches a generator or a PyDataset gives."""
    store_weights = source.w if source.by_rows else None  # read with the rows
    _, class_weight = _data.check_weights(store_weights, class_weight, None, "fit()")
    if validation_split and validation_data is None:
        source, val_source = source.split(validation_split)  # refused for streams, as Keras
    else:
        val_source = None
    if source.by_rows:
        _arrays_take_no_steps(steps_per_epoch, "fit", "steps_per_epoch")
        engine = streamed_engine(comm, model, callbacks or [])  # before anything is read
        # the first rows: checked against the model (shape, labels), and they build it
        x0, y0, _ = source.read(np.arange(min(source.n, _probe.DEAD_CHECK_ROWS)))
        if y0 is None:
            raise TypeError("fit() needs labels: fit(X, y, ...); received y=None.")
        x0, y0 = model._check(x0, y0)
    else:
        engine = batches_engine(comm)  # under MPI each rank's own stream
        x0, y0 = _first_batch(model, source, needs_y=True)
    val = _check_validation(model, validation_data, validation, tuple(x0.shape[1:]))
    # every check ran: the model is built from the first rows
    model._to_device(x0, y0)
    if source.by_rows:
        X = Rows(model, source, class_weight)
        n = X.shape[0]
        batch_size = min(batch_size or 32, n)
    else:
        steps = steps_per_epoch or source.steps(batch_size)
        X = Batches(
            model, source, steps, needs_y=True, probe=probe_rows(model, x0),
            class_weight=class_weight, keep=steps_per_epoch is not None, training=True,
        )  # fmt: skip
    if val_source is not None:
        Xv, Yv = Rows(model, val_source), None
    elif val is not None:
        Xv, Yv = _validation_on_device(model, val, validation)
    else:
        Xv = Yv = None
    engine.reason = f"the {source.kind} input is read one batch at a time"
    model._comm = comm
    try:
        return _epochs(
            model, X, None, Xv, Yv, epochs, batch_size, shuffle, verbose, callbacks,
            initial_epoch, validation, engine,
        )  # fmt: skip
    finally:
        model._comm = None


def check_verbose(verbose: Any) -> int:
    """``verbose`` as 0, 1 or 2; ``"auto"`` is 1, as in Keras 3."""
    if isinstance(verbose, str) and verbose == "auto":
        return 1
    if not is_int(verbose) or int(verbose) not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2 (or 'auto': 1), received verbose={verbose!r}.")
    return int(verbose)


def check_validation_freq(freq: Any) -> int | frozenset[int]:
    """``validation_freq`` as Keras 3 takes it: every ``freq``-th epoch, or these epochs.

    Returns an int (validate after epochs ``freq, 2 freq, ...``, counted from 1) or the set
    of epochs (from 1) to validate after.
    """
    if is_int(freq):
        if int(freq) < 1:
            raise ValueError(
                f"validation_freq must be a positive integer (validate every that many epochs) "
                f"or a list of epochs (counted from 1), received {freq!r}."
            )
        return int(freq)
    epochs = isinstance(freq, list | tuple | set | frozenset | range) and bool(freq)
    if epochs and all(is_int(e) and int(e) >= 1 for e in freq):
        return frozenset(int(e) for e in freq)
    raise TypeError(
        "validation_freq must be a positive integer (validate every that many epochs) or a "
        f"non-empty list of epochs counted from 1, e.g. [1, 5, 10]; received {freq!r}."
    )


def _validates(freq: int | frozenset[int], epoch: int) -> bool:
    """Whether the epoch ``epoch`` (from 0) ends with a validation."""
    if isinstance(freq, int):
        return (epoch + 1) % freq == 0
    return epoch + 1 in freq


def _epochs(
    model,
    X,
    Y,
    Xv,
    Yv,
    epochs,
    batch_size,
    shuffle,
    verbose,
    callbacks,
    initial_epoch,
    validation,
    engine=None,
) -> _callbacks.History:
    """The epochs of a fit, on data already checked and on the device."""
    if is_batches(X):  # the source's batches: as many as it says, or as it gives
        steps = X.steps
    else:
        steps = math.ceil(X.shape[0] / batch_size)
        if model._comm is None or model._comm.is_root:  # rank 0 speaks for all
            _warn_one_row_batches(model, X.shape[0], batch_size)
    if engine is None:
        engine = choose_engine(model, callbacks or [], model._comm, batch_size)
    settings = dict(
        batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch, shuffle=shuffle
    )
    engine.begin(model, X, Y, Xv, settings)
    try:
        return _run(
            model,
            engine,
            X,
            Y,
            Xv,
            Yv,
            batch_size,
            steps,
            settings,
            verbose,
            callbacks,
            validation,
        )
    finally:
        engine.end(model)


def _warn_one_row_batches(model: Any, n: int, batch_size: int) -> None:
    """Warn when a BatchNormalization layer will train on a batch of one row.

    Over one row the batch's variance is 0 and its mean is the row: the layer outputs ``beta``
    whatever its input, so nothing below it learns from that batch, and the moving variance
    decays towards 0 (PyTorch raises here). Decided once, from ``n`` and ``batch_size``: no
    step reads anything back. Under data parallelism the layer's statistics are those of the
    global batch (its sums go over the ranks), so ``n`` and ``batch_size`` are global too.
    """
    if batch_size != 1 and n % batch_size != 1:
        return
    names = [
        layer.name
        for layer in model.layers
        if isinstance(layer, _layers.BatchNormalization) and layer.trainable
    ]
    if not names:
        return
    if batch_size == 1:
        where = "batch_size=1: every batch has one row"
    else:
        where = f"the last batch of {n} rows in batches of {batch_size} has one row"
    better = _batch_size_without_one_row(n, batch_size)
    remedy = (
        "pass a batch_size whose last batch has more than one row"
        + ("" if better is None else f" (e.g. batch_size={better})")
        + ", drop one training row, or use LayerNormalization"
    )
    layers = ", ".join(repr(name) for name in names)
    warnings.warn(
        f"BatchNormalization {layers} trains on a batch of one row ({where}). Over one row "
        "the batch variance is 0 and the layer outputs beta whatever its input: nothing below "
        f"it learns from that batch, and its moving variance decays towards 0. To fix it, "
        f"{remedy}.",
        UserWarning,
        stacklevel=5,  # the user's model.fit(...)
    )


def _batch_size_without_one_row(n: int, batch_size: int) -> int | None:
    """The batch size nearest ``batch_size`` (> 1, <= n) whose last batch is not one row."""
    for d in range(1, n):
        for b in (batch_size + d, batch_size - d):
            if 1 < b <= n and n % b != 1:
                return b
    return None


def _run(model, engine, X, Y, Xv, Yv, batch_size, steps, settings, verbose, callbacks, validation):
    """The epochs themselves: callbacks, the engine's epochs, validation, logs."""
    epochs, shuffle = settings["epochs"], settings["shuffle"]
    initial_epoch = settings["initial_epoch"]
    n, comm = _rows(X), model._comm
    n_val = _rows(Xv)
    if comm is not None:
        if Xv is not None:  # each rank evaluates its part of the validation rows
            Xv, Yv = rank_part(Xv, Yv, *shard(0, n_val, comm.rank, comm.size))
        if not comm.is_root:  # rank 0 speaks and writes for all
            verbose = 0
            callbacks = [c for c in callbacks or [] if not c.root_only]
    model.history = _callbacks.History()
    # History after the user's callbacks, so it records what they add to the logs
    cbs = [*(callbacks or []), model.history]
    if verbose:
        cbs.append(_callbacks.ProgbarLogger(verbose))
    params = {
        "epochs": epochs,
        "steps": steps,
        "verbose": verbose,
        "samples": n,
        "do_validation": Xv is not None,
        # which engine runs the steps, and why (the fastest one that computes the same)
        "engine": engine.name,
        "engine_reason": engine.reason,
    }
    if verbose == 1:  # verbose=2 stays one line per epoch
        print(f"engine: {engine.name} ({engine.reason})")
    cb = _callbacks.CallbackList(cbs, model, params)

    model.stop_training = False
    if is_batches(X):
        probe = X.probe
    else:
        rows = min(n, _probe.DEAD_CHECK_ROWS)
        probe = X.slice(0, rows)[0] if is_rows(X) else X[:rows, ...]
    warned = _probe.warn_dead(model, probe, when="at initialisation" if epochs else "")
    cb.on_train_begin()
    # a callback may resume an interrupted fit (BackupAndRestore), as Keras's _initial_epoch
    resumed = model.__dict__.pop("_initial_epoch", None)
    if resumed is not None:
        initial_epoch = int(resumed)
    logs = None
    for epoch in range(initial_epoch, epochs):
        cb.on_epoch_begin(epoch)
        snapshot = _snapshot(model)
        b = model.backend
        shuffled = shuffle and n is not None  # a stream comes in its own order
        order = b.asarray(model.streams.permutation(n), b.int_dtype) if shuffled else None
        result = engine.run_epoch(model, X, Y, order, batch_size, steps, cb)
        if is_batches(X) and X.ran_out is not None:  # as Keras: warn, end here, stop
            ran_out_warning(X, epoch)
            model.stop_training = True
            if not result.n:  # no step ran: no epoch to log
                break
        logs = _logs.finish(model, result.sums, result.n, result.n_flags)
        if not math.isfinite(logs["loss"]):
            _nonfinite(model, epoch, logs["loss"], snapshot, result, callbacks or [])
        # an evaluate with the fit's callbacks, as in Keras; on the epochs validation_freq names
        if Xv is not None and _validates(validation["freq"], epoch):
            # a store's validation is read in batches, as evaluate reads it (never at once)
            val_batch = validation["batch_size"]
            if val_batch is None and is_rows(Xv):
                val_batch = STREAM_BATCH_SIZE
            val = evaluate_device(
                model, Xv, Yv, val_batch, n_total=n_val, callbacks=cb, steps_name="validation_steps"
            )
            logs.update({f"val_{k}": v for k, v in val.items()})
        # the last batch's flags come back with the metrics; a full probe confirms them
        if logs.pop("_dead_in_last_batch", False) and not warned:
            warned = _probe.warn_dead(model, probe, when=f"after epoch {epoch + 1}")
        cb.on_epoch_end(epoch, logs)
        if comm is not None:  # a stop set on one rank stops them all, after the same epoch
            model.stop_training = any_rank(comm, model.stop_training)
        if model.stop_training:
            break
    cb.on_train_end(logs)  # the last epoch's logs, as Keras
    return model.history


def _rows(X: Any) -> int | None:
    """The rows of ``X`` (arrays, a store read by rows); None: a stream, or no data."""
    if X is None or is_batches(X):
        return None
    return int(X.shape[0])


def _snapshot(model: Any) -> tuple:
    """Copies of the weights, moving statistics and optimizer state.

    Copies, not references: the updates happen in place. The eager step rebinds the moving
    statistics, but the captured engine copies each step's into fixed arrays (a recorded step
    writes only where it was recorded), so a reference would "restore" what the failing epoch
    wrote.
    """
    xp, opt = model.xp, model.optimizer
    buffers = model._get_buffers()
    if not model.backend.mutable:  # immutable arrays are their own snapshot
        return model._theta, [dict(s) for s in opt.state], opt.iterations, buffers
    theta = None if model._theta is None else xp.asarray(model._theta, copy=True)
    state = [{k: xp.asarray(v, copy=True) for k, v in s.items()} for s in opt.state]
    buffers = [xp.asarray(a, copy=True) for a in buffers]
    return theta, state, opt.iterations, buffers


def _restore(model: Any, snapshot: tuple) -> None:
    theta, state, iterations, buffers = snapshot
    if theta is not None:
        model._theta = theta
        model._bind_views()
    model._set_buffers(buffers)
    model.optimizer.state, model.optimizer.iterations = state, iterations


def _bad_batch(model: Any, result: Any) -> tuple[int | None, int]:
    """The first batch whose loss is not finite (the slow path, once), and the steps run.

    Under data parallelism each rank has the outputs of its own rows only: a global batch's
    loss is not finite where some rank's part of it is not, so the ranks take the first
    batch any of them found, and every rank names the same one.
    """
    Y, Y_hat, Z, sizes = result.outputs
    steps = len(sizes) if result.steps is None else result.steps
    bad = None
    if result.batch_losses is not None:
        losses = model.backend.to_numpy(result.batch_losses)
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(float(v))), None)
    else:
        lo = 0
        for i, size in enumerate(sizes):
            rows = slice(lo, lo + size)
            lo += size
            value = _logs.loss_value(
                model, Y[rows, ...], Y_hat[rows, ...], None if Z is None else Z[rows, ...]
            )
            if not math.isfinite(float(model.backend.to_numpy(value))):
                bad = i
                break
    if bad is not None and result.batches is not None:
        bad = result.batches[bad]  # this rank's i-th batch with rows is the epoch's step
    if model._comm is not None:
        found = [b for b in model._comm.allgather(bad) if b is not None]
        bad = min(found) if found else None
    return bad, steps


def _nonfinite(
    model: Any, epoch: int, loss: float, snapshot: tuple, result: Any, callbacks: list
) -> None:
    """A NaN/inf epoch loss: restore the epoch's starting point, then stop or raise."""
    where, (bad, steps) = f"epoch {epoch + 1}", _bad_batch(model, result)
    if bad is not None:
        where = f"epoch {epoch + 1}, batch {bad + 1} of {steps}"
    terminate = [c for c in callbacks if isinstance(c, _callbacks.TerminateOnNaN)]
    if not terminate or terminate[0].restore_weights:
        _restore(model, snapshot)
    if terminate:
        return  # the callback stops training quietly, as Keras's does
    raise NonFiniteLossError(
        f"The loss became {loss} at {where}. The weights and optimizer state were restored "
        f"to their values at the start of epoch {epoch + 1}. Lower the learning rate, clip "
        "the gradients (e.g. optimizer=Adam(clipnorm=1.0)) or look for extreme values in "
        "the data; pass callbacks=[TerminateOnNaN()] to stop without an error."
    )


def evaluate(
    model: Any,
    X: Any,
    y: Any,
    batch_size: int | None = None,
    verbose: int = 0,
    comm: Any = None,
    callbacks: list[_callbacks.Callback] | None = None,
    sample_weight: Any = None,
    steps: int | None = None,
) -> dict[str, float]:
    """``model.evaluate``; with ``comm``, each rank evaluates its part of the rows.

    ``callbacks`` get ``on_test_begin``, ``on_test_batch_begin/end`` per batch and
    ``on_test_end`` with the results (Keras's hooks of ``evaluate``). ``steps``: the batches
    of a generator or a PyDataset to evaluate (unset: until it runs out, or its length).
    """
    _compilation.require_compiled(model, "evaluate")
    _data.check_positive_int(batch_size, "batch_size", allow_none=True)
    _data.check_positive_int(steps, "steps", allow_none=True)
    batch_size = None if batch_size is None else int(batch_size)
    verbose = check_verbose(verbose)
    _check_callbacks(callbacks)
    source = _data.adapt(X, y, sample_weight, name="X")
    if source is None or source.by_rows:
        _arrays_take_no_steps(steps, "evaluate", "steps")
        if y is None and source is None:
            raise TypeError("evaluate() needs labels: evaluate(X, y); received y=None.")
    if source is not None and not source.by_rows:  # a stream: its own batches
        if comm is not None:
            raise TypeError(
                f"evaluate over the ranks takes in-memory arrays so far; a {source.kind} "
                "evaluates in one process."
            )
        X, Y = _stream_input(model, source, steps, needs_y=True), None
    elif source is not None:  # a store read batch by batch: 1024 rows unless told
        X, Y = _streamed_input(model, source, "evaluate"), None
        batch_size = batch_size or STREAM_BATCH_SIZE
    else:
        X, y = model._check(X, y)
        if sample_weight is not None:
            sample_weight = _data.check_sample_weight(sample_weight, X.shape[0])
        X, Y = model._to_device(X, y)
        Y = with_weights(model, Y, sample_weight)
    n = _rows(X)
    if comm is not None:  # this rank's rows: slices of arrays, a window of a store's rows
        X, Y = rank_part(X, Y, *shard(0, n, comm.rank, comm.size))
    model._comm = comm
    try:
        cb = None
        if callbacks:
            if n is None:
                steps = X.steps
            else:
                rows = X.shape[0]
                steps = math.ceil(rows / min(batch_size or rows, rows)) if rows else 0
            params = {"epochs": 1, "steps": steps, "verbose": verbose, "samples": n}
            cb = _callbacks.CallbackList(_rank_callbacks(callbacks, comm), model, params)
        result = evaluate_device(model, X, Y, batch_size, n_total=n, callbacks=cb)
    finally:
        model._comm = None
    if verbose and (comm is None or comm.is_root):  # rank 0 speaks for all
        print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
    return result


#: rows per batch of ``evaluate`` and ``predict`` on a store read batch by batch, by default
STREAM_BATCH_SIZE = 1024


def _streamed_input(model: Any, source: Any, what: str) -> Rows:
    """A by-rows source of ``evaluate``/``predict`` as :class:`Rows`, checked on its first rows."""
    if not source.by_rows:
        raise TypeError(
            f"{what}() reads {source.kind} input batch by batch through the streamed engine, "
            "which takes only sliceable stores (a NumPy memmap, h5py, zarr, Dask) so far; "
            "pass the data as arrays, or as one of those."
        )
    x0, y0, _ = source.read(np.arange(min(source.n, _probe.DEAD_CHECK_ROWS)))
    if what == "evaluate" and y0 is None:
        raise TypeError("evaluate() needs labels: evaluate(X, y); received y=None.")
    model._to_device(*model._check(x0, y0))
    return Rows(model, source)


def _stream_input(model: Any, source: Any, steps: int | None, *, needs_y: bool) -> Batches:
    """A generator or PyDataset of ``evaluate``/``predict`` as :class:`Batches` (model built)."""
    if not model.built:
        x0, y0 = _first_batch(model, source, needs_y=needs_y)
        model._to_device(x0, y0)
    return Batches(model, source, steps or source.steps(None), needs_y=needs_y)


def _check_callbacks(callbacks: Any) -> None:
    """``callbacks`` must be None or a list of Callback instances."""
    if callbacks is not None and not isinstance(callbacks, list | tuple):
        raise TypeError(
            "callbacks must be a list of Callback instances, e.g. callbacks=[History()]; "
            f"received {type(callbacks).__name__}."
        )
    for c in callbacks or []:
        if not isinstance(c, _callbacks.Callback):
            raise TypeError(f"callbacks must be Callback instances, received {c!r}.")


def _rank_callbacks(callbacks: list, comm: Any) -> list:
    """The callbacks this process runs: all, but not the root-only ones off rank 0."""
    if comm is None or comm.is_root:
        return list(callbacks)
    return [c for c in callbacks if not c.root_only]


def evaluate_device(
    model: Any,
    X: Array,
    Y: Array,
    batch_size: int | None = None,
    n_total: int | None = None,
    callbacks: _callbacks.CallbackList | None = None,
    steps_name: str = "steps",
) -> dict[str, float]:
    """Loss and metrics of ``(X, Y)`` on the device; ``n_total`` rows over all ranks.

    ``steps_name``: the argument that set a stream's steps, for the ran-out warning
    (``validation_steps`` in a fit's validation).

    ``X`` may also be a store read by rows (:class:`Rows`, read ahead in a thread) or a
    stream's :class:`Batches` (its batches as they come; ``batch_size`` unused). With
    ``callbacks``, the test hooks are called (``on_test_begin``, around each batch,
    ``on_test_end``); where one of them overrides a test-batch hook, each batch's logs hold
    the running loss and metrics (of this rank's rows), read back after each batch.
    """
    n = _rows(X)
    if n is None:  # a stream: its own batches, as many as it has (or validation_steps)
        steps = X.steps
        batches = X.passes()
    else:
        batch_size = min(batch_size or n, n) or 1
        steps = math.ceil(n / batch_size)
        batches = _windows(X, Y, batch_size)
    total_loss, totals = 0.0, []
    if n == 0:  # a rank with no validation rows adds zeros to the sums
        total_loss = model.backend.zeros((), model.dtype)
        totals = [total_loss for _, m in model.metrics for _ in range(m.n_stats)]
    fused = model._fused
    watched = callbacks is not None and callbacks.watching(*_callbacks.TEST_BATCH_HOOKS)
    if callbacks is not None:
        callbacks.on_test_begin()
    seen, result = 0, None
    try:
        for i, (xb, yb) in enumerate(batches):
            rows = int(xb.shape[0])
            if callbacks is not None:
                callbacks.on_test_batch_begin(i)
            y_hat = model._forward(xb, training=False)
            loss = _logs.loss_value(model, yb, y_hat, model.layers[-1].z if fused else None)
            total_loss = total_loss + loss * rows
            totals = _logs.accumulate(model, totals, yb, y_hat)
            seen += rows
            if callbacks is None:
                continue
            logs: dict[str, Any] = {"batch": i, "size": rows}
            if watched and (n is None or i < steps - 1):  # this rank's rows so far
                sums = _logs.stack(model, _with_penalties(model, total_loss, seen), totals)
                logs.update(_logs.finish(model, sums, seen, local=True))
            elif watched:  # the last batch's running logs are the results (over the ranks)
                result = _result(model, total_loss, totals, n, n_total)
                logs.update(result)
            callbacks.on_test_batch_end(i, logs)
    except BaseException:
        _abandon(X)  # raise now: the thread may be blocked in the user's code
        raise
    finally:
        batches.close()  # a stream's thread stops, whatever ended the pass
    if n is None and X.ran_out is not None:
        if not seen:
            raise ValueError(
                f"{X.source.name} ({X.source.what}) gave no batch to evaluate (a generator "
                "is one stream for all epochs: its batches ran out). Pass validation_steps "
                "and a generator that can give validation_steps batches per validation, or "
                "a PyDataset, or an iterable that restarts (a list of batches, a DataLoader)."
            )
        ran_out_warning(X, None, "the evaluation", steps_name)
    if result is None:  # every rank finishes once
        result = _result(model, total_loss, totals, seen, n_total if n is not None else None)
    if callbacks is not None:
        callbacks.on_test_end(dict(result))
    return result


def _abandon(X: Any) -> None:
    """Stop a store's or a stream's read-ahead thread without waiting (an error path)."""
    if is_rows(X) or is_batches(X):
        X.abandon()


def _windows(X: Any, Y: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    """The rows of arrays (or of a store, read ahead) in order, ``batch_size`` at a time."""
    if is_rows(X):
        yield from X.windows(batch_size)
        return
    n = X.shape[0]
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)  # the Array API leaves slices past the end unspecified
        yield X[lo:hi, ...], Y[lo:hi, ...]


def _with_penalties(model: Any, total_loss: Any, rows: int) -> Any:
    """The summed loss of ``rows`` rows plus each layer's penalty counted once per row."""
    for layer in model.layers:
        penalty = layer.penalty()
        if penalty is not None:
            total_loss = total_loss + penalty * rows
    return total_loss


def _result(model: Any, total_loss: Any, totals: list, n: int, n_total: int | None) -> dict:
    """The loss and metrics of an evaluation from its device sums (over the ranks)."""
    sums = _logs.stack(model, _with_penalties(model, total_loss, n), totals)
    return _logs.finish(model, sums, n if n_total is None else n_total)


def predict(
    model: Any,
    X: Any,
    batch_size: int | None = None,
    callbacks: list[_callbacks.Callback] | None = None,
    verbose: Any = 0,
    steps: int | None = None,
) -> Any:
    """``model.predict``: the outputs, in the library and on the device of ``X``.

    ``batch_size`` None: all rows in one batch (``Sequential.predict`` passes its default).
    ``callbacks`` get ``on_predict_begin``, ``on_predict_batch_begin/end`` per batch (the
    end's logs: ``{"outputs": y_hat}`` of the batch, on the device) and ``on_predict_end``;
    ``verbose=1`` adds a progress bar over the batches. A generator or a PyDataset gives its
    own batches (``steps`` of them, or until it runs out): NumPy out.
    """
    from ..backend import array_backend_name, backend_of

    _data.check_positive_int(batch_size, "batch_size", allow_none=True)
    batch_size = None if batch_size is None else int(batch_size)
    verbose = check_verbose(verbose)
    _check_callbacks(callbacks)
    callbacks = list(callbacks or [])
    if verbose:
        callbacks.append(_callbacks.ProgbarLogger(verbose))
    _data.check_positive_int(steps, "steps", allow_none=True)
    stream = _data.adapt(X, name="X")
    source = backend_of(X) if array_backend_name(X) else None
    if stream is None or stream.by_rows:
        _arrays_take_no_steps(steps, "predict", "steps")
    if stream is not None and not stream.by_rows:  # a generator, a PyDataset: NumPy out
        Xd = _stream_input(model, stream, steps, needs_y=False)
    elif stream is not None:  # a store read batch by batch: NumPy out
        Xd = _streamed_input(model, stream, "predict")
        batch_size = batch_size or STREAM_BATCH_SIZE
    else:
        Xd, _ = model._prepare(X)
    n = _rows(Xd)
    if n is None:
        steps = Xd.steps
        batches = Xd.passes()
    else:
        batch_size = min(batch_size or n, n)
        steps = math.ceil(n / batch_size)
        batches = _windows(Xd, Xd, batch_size)
    cb = None
    if callbacks:
        params = {"epochs": 1, "steps": steps, "verbose": verbose, "samples": n}
        cb = _callbacks.CallbackList(list(callbacks), model, params)
        cb.on_predict_begin()
    parts = []
    try:
        for i, (xb, _) in enumerate(batches):
            if cb is not None:
                cb.on_predict_batch_begin(i)
            parts.append(model._forward(xb, training=False))
            if cb is not None:
                cb.on_predict_batch_end(i, {"outputs": parts[-1]})
    except BaseException:
        _abandon(Xd)  # raise now: the thread may be blocked in the user's code
        raise
    finally:
        batches.close()
    if n is None and Xd.ran_out is not None:
        if not parts:
            raise ValueError(
                f"{Xd.source.name} ({Xd.source.what}) gave no batch to predict: its batches "
                "ran out (a generator is one stream: pass a fresh one)."
            )
        ran_out_warning(Xd, None, "the prediction", "steps")
    if cb is not None:
        cb.on_predict_end()
    out = parts[0] if len(parts) == 1 else model.xp.concat(parts, axis=0)
    if source is None or source.name == "numpy":
        return model.backend.to_numpy(out)
    return source.asarray(out)
