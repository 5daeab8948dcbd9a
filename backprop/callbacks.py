"""Callbacks: code that runs at the hooks of ``fit`` (Keras's names and behaviour).

Hooks: ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
``on_batch_end(batch, logs)``. Epoch logs are host floats (``loss``, metrics, ``val_*``);
batch logs hold only ``{"batch": i, "size": n}``: the batch loss stays on the device so that
no step waits for a host synchronisation.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import string
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from ._checks import as_float, as_int, check_bool
from .schedules import LearningRateSchedule


class Callback:
    """Base class; ``self.model`` is set by ``fit`` before ``on_train_begin``.

    Attributes
    ----------
    root_only : bool
        In data-parallel training, run only on rank 0 (printing, writing files); the others
        run on every rank, with the same logs (summed over the ranks), and those of this
        module print their messages on rank 0 only (``model._comm`` tells the rank).
    log_keys : tuple of str
        The keys this callback adds to the epoch logs in ``on_epoch_end`` (e.g.
        ``("learning_rate",)``), so that callbacks after it, such as a
        :class:`ModelCheckpoint` file name, may use them.
    """

    model: Any = None
    params: dict[str, Any]
    root_only: bool = False
    log_keys: tuple[str, ...] = ()
    # set by CallbackList: the log_keys of the callbacks that run before this one
    _added_log_keys: tuple[str, ...] = ()

    def set_model(self, model: Any) -> None:
        """Attach the model being trained.

        Parameters
        ----------
        model : Sequential
            The model being trained.
        """
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Attach ``fit``'s settings (``epochs``, ``steps``, ``verbose``, ...).

        Parameters
        ----------
        params : dict
            The settings of ``fit``: ``epochs``, ``steps``, ``verbose``, ``samples``, and
            ``do_validation`` (whether ``val_*`` keys will be in the epoch logs, as in Keras;
            where it is absent, callbacks cannot tell).
        """
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called once before the first epoch.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.
        """

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called once after the last epoch.

        Parameters
        ----------
        logs : dict, optional
            The last epoch's logs.
        """

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the start of each epoch (counted from 0).

        Parameters
        ----------
        epoch : int
            The epoch index, from 0.
        logs : dict, optional
            Empty at this hook.
        """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the end of each epoch with its host-side logs.

        Parameters
        ----------
        epoch : int
            The epoch index, from 0.
        logs : dict, optional
            Host floats: ``loss``, the metrics and their ``val_*`` counterparts.
        """

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after each training step.

        Parameters
        ----------
        batch : int
            The batch index within the epoch, from 0.
        logs : dict, optional
            ``{"batch": i, "size": n}``.
        """


class CallbackList(Callback):
    """Runs a list of callbacks in order.

    Parameters
    ----------
    callbacks : list of Callback
        The callbacks, run in this order.
    model : Sequential
        The model being trained; given to each callback.
    params : dict
        The settings of ``fit``; given to each callback.
    """

    def __init__(self, callbacks: list[Callback], model: Any, params: dict[str, Any]):
        # a single callback is refused, as in Keras: iterating it would fail with "'History'
        # object is not iterable", which does not say what was expected
        if not isinstance(callbacks, list | tuple):
            raise TypeError(
                "callbacks must be a list of Callback instances, received "
                f"{type(callbacks).__name__}."
            )
        added: list[str] = []
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must be Callback instances, received {type(cb).__name__}."
                )
            cb.set_model(model)
            cb.set_params(params)
            # the keys the callbacks before this one add to the logs it will be given
            cb._added_log_keys = tuple(added)
            added.extend(cb.log_keys)
        self.callbacks = list(callbacks)

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_end(self, batch, logs=None):
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs)


class History(Callback):
    """Records the epoch logs: ``history.history["loss"]`` is the list of epoch losses.

    ``fit`` returns it.
    """

    def __init__(self):
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def _format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgbarLogger(Callback):
    """Keras-style progress: ``verbose=1`` a bar per epoch, ``verbose=2`` one line per epoch.

    The bar moves with the step count and the clock only (redrawn at most every 0.1 s); the
    loss and metrics appear at the end of the epoch, when they come back to the host once.

    Parameters
    ----------
    verbose : int, default 1
        1 for a bar per epoch, 2 for one line per epoch.
    stream : file-like, optional
        Where to write; ``sys.stdout`` when omitted.
    width : int, default 30
        Width of the bar in characters.
    """

    root_only = True

    def __init__(self, verbose: int = 1, stream: Any = None, width: int = 30):
        self.verbose, self.stream, self.width = verbose, stream, width

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text)
        stream.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = self._last = time.perf_counter()
        self.seen = 0
        if self.verbose == 1:
            self._write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")

    def _bar(self, done: int, total: int) -> str:
        filled = int(self.width * done / total) if total else self.width
        arrow = ">" if filled < self.width else ""
        pad = len(str(total))
        bar = "=" * max(filled - len(arrow), 0) + arrow + "." * (self.width - filled)
        return f"{done:{pad}d}/{total} [{bar}]"

    def on_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if now - self._last >= 0.1 and self.seen < self.params["steps"]:
            self._last = now
            self._write(f"\r{self._bar(self.seen, self.params['steps'])} - {now - self.t0:.0f}s")

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.t0
        steps = self.params["steps"]
        per_step = f"{1e3 * elapsed / max(steps, 1):.0f}ms/step"
        text = f"{elapsed:.0f}s {per_step} - {_format_logs(logs or {})}"
        if self.verbose == 1:
            self._write(f"\r{self._bar(steps, steps)} - {text}\n")
        elif self.verbose == 2:
            self._write(f"Epoch {epoch + 1}/{self.params['epochs']} - {text}\n")


def _expected_log_keys(callback: Callback) -> tuple[set[str], bool | None] | None:
    """The keys the epoch logs of this fit will have, and whether validation runs.

    Whether validation runs is None when unknown; the whole result is None when the callback
    runs outside ``fit`` (no model or params to tell).
    """
    metrics = getattr(callback.model, "metrics", None) if hasattr(callback, "model") else None
    params = getattr(callback, "params", None)
    if metrics is None or not isinstance(params, dict):
        return None
    names = ["loss", *(name for name, _ in metrics)]
    keys = {"epoch", *names, *getattr(callback, "_added_log_keys", ())}
    do_validation = params.get("do_validation")
    # without the flag, a val_* key may come: only the names after "val_" can be checked
    if do_validation or do_validation is None:
        keys.update(f"val_{name}" for name in names)
    return keys, None if do_validation is None else bool(do_validation)


def _is_root(callback: Callback) -> bool:
    """Whether this process speaks for the fit: always, but rank 0 only in data parallelism.

    The callbacks that must act on every rank (stop, set the learning rate) run there, so
    their messages and warnings are given by rank 0 alone, as the progress bar is.
    """
    comm = getattr(callback.model, "_comm", None)
    return comm is None or bool(comm.is_root)


def _say(callback: Callback, text: str) -> None:
    """Print a callback's message, on rank 0 only under data parallelism."""
    if _is_root(callback):
        print(text)


def _missing_monitor_warning(
    callback: Callback, keys: list[str], *, known: bool, do_validation: bool | None
) -> str:
    """The warning for a monitored key that is not (``known``: will not be) in the logs."""
    name, monitor = type(callback).__name__, callback.monitor
    where = "will not be in the epoch logs of this fit" if known else "is not in the epoch logs"
    if monitor.startswith("val_") and do_validation is False:
        hint = (
            " Validation does not run in this fit: pass validation_data or validation_split "
            "for 'val_*' keys."
        )
    else:
        close = difflib.get_close_matches(monitor, keys, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return (
        f"{name} monitors {monitor!r}, which {where}.{hint} Available keys: {keys}. "
        f"{name} skips its monitoring while the key is missing; a callback that adds the key "
        "to the logs, before this one, should name it in its log_keys."
    )


def _check_monitor(callback: Callback) -> None:
    """At ``on_train_begin``: warn, before any training, if ``callback.monitor`` will not come.

    The keys come from ``fit``'s params and the compiled metrics (the loss, the metrics,
    their ``val_*`` versions when validation runs, and the ``log_keys`` of the callbacks
    before this one). Keras warns at each epoch end instead, once the first epoch has
    trained; a typo is better told before.
    """
    callback._monitor_warned = False
    expected = _expected_log_keys(callback)
    if expected is None:  # outside fit: told at the first epoch end without the key
        return
    keys, do_validation = expected
    keys.discard("epoch")  # a file-name field, not a log key
    if callback.monitor in keys:
        return
    callback._monitor_warned = True
    if _is_root(callback):
        message = _missing_monitor_warning(
            callback, sorted(keys), known=True, do_validation=do_validation
        )
        warnings.warn(message, UserWarning, stacklevel=3)


def _monitor_value(callback: Callback, logs: dict[str, Any]) -> float | None:
    """The monitored value of these logs; None (with a warning, once) when it is missing."""
    value = logs.get(callback.monitor)
    if value is None and not getattr(callback, "_monitor_warned", False):
        callback._monitor_warned = True
        if _is_root(callback):
            params = getattr(callback, "params", None)
            do_validation = params.get("do_validation") if isinstance(params, dict) else None
            message = _missing_monitor_warning(
                callback, sorted(logs), known=False, do_validation=do_validation
            )
            warnings.warn(message, UserWarning, stacklevel=3)
    return value


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    As in Keras, training never stops at the end of epoch 0, and the best epoch is the one
    with the best value, whether or not it beats ``baseline``. A
    ``monitor`` that the epoch logs of the fit will not have (a ``val_*`` key without
    validation data, a misspelled name) is told by a ``UserWarning`` before the first epoch,
    naming the closest keys; the callback then does nothing while the key is missing.

    In data-parallel training it runs on every rank (all stop at the same epoch, the logs being
    the same); only rank 0 prints.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs, e.g. ``"val_loss"`` (the default) or ``"val_accuracy"``.
    min_delta : float
        Smallest change that counts as an improvement.
    patience : int
        Epochs without improvement before stopping (0 and 1 both stop at the first epoch
        without improvement, as in Keras).
    mode : {"auto", "min", "max"}
        Whether smaller or larger is better; ``"auto"`` picks max for accuracy-like names.
    restore_best_weights : bool
        Put back the weights of the best epoch when training ends, stopped early or not.
        With a ``baseline`` that no epoch beats, that is the best epoch among those run.
    baseline : float, optional
        A value to beat: an epoch counts as an improvement (restarting the patience) only if
        it beats both the best value so far and the baseline, so training stops after
        ``patience`` epochs if none beats the baseline.
    verbose : int, default 0
        Whether to print a line when it stops training and when it restores weights.

    Attributes
    ----------
    best : float
        The best monitored value of the fit.
    best_epoch : int
        The epoch (from 0) of ``best``.
    stopped_epoch : int
        The epoch at which it stopped training (0 when it did not).

    Raises
    ------
    ValueError
        For an unknown ``mode``, a ``patience`` that is not an integer >= 0 (NumPy integers
        are accepted, bools are not), or a ``min_delta`` or ``baseline`` that is not a number.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
        baseline: float | None = None,
        verbose: int = 0,
    ):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', received {mode!r}.")
        patience_int = as_int(patience)
        if patience_int is None or patience_int < 0:
            raise ValueError(f"patience must be an integer >= 0, received {patience!r}.")
        min_delta_float = as_float(min_delta)
        if min_delta_float is None or math.isnan(min_delta_float):
            raise ValueError(f"min_delta must be a number, received {min_delta!r}.")
        baseline_float = None if baseline is None else as_float(baseline)
        if baseline is not None and baseline_float is None:
            raise ValueError(f"baseline must be a number or None, received {baseline!r}.")
        self.monitor, self.min_delta = monitor, abs(min_delta_float)
        self.patience, self.baseline = patience_int, baseline_float
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights")
        self.verbose = verbose
        if mode == "auto":
            maximize = any(s in monitor for s in ("acc", "precision", "recall", "auc"))
            mode = "max" if maximize else "min"
        self.mode = mode
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None
        self.best = math.inf if self.mode == "min" else -math.inf
        self._stopped = False

    def _better(self, value: float, reference: float) -> bool:
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()  # an instance may serve several fits, as in Keras
        _check_monitor(self)

    def on_epoch_end(self, epoch, logs=None):
        value = _monitor_value(self, logs or {})
        if value is None:
            return
        if self.restore_best_weights and self.best_weights is None:
            # the first epoch's weights, should no epoch improve (a NaN value never does)
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._better(value, self.best):
            # the best epoch is tracked whether or not it beats the baseline (Keras 2 and 3)
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # only an epoch that beats the baseline as well restarts the patience
            if self.baseline is None or self._better(value, self.baseline):
                self.wait = 0
        # never after the first epoch, as in Keras; patience 0 acts as 1: an epoch that
        # restarted the patience does not stop (Keras 3 returns after an improvement)
        if self.wait >= max(self.patience, 1) and epoch > 0:
            self.stopped_epoch, self._stopped = epoch, True
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._stopped and self.verbose:
            _say(self, f"Epoch {self.stopped_epoch + 1}: early stopping")
        # restored at the end (as Keras 3 does), so that the callbacks after this one saw the
        # weights of the last epoch at its end
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                _say(
                    self,
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}.",
                )
            self.model.set_weights(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training quietly as soon as an epoch's loss is NaN or infinite.

    Without this callback ``fit`` raises ``NonFiniteLossError`` instead. Either way the weights
    and optimizer state go back to their values at the start of the failing epoch, unless
    ``restore_weights=False`` (then they are left as the non-finite step made them).

    It prints one line when it stops (on rank 0 only in data-parallel training, where it runs
    on every rank).

    Parameters
    ----------
    restore_weights : bool, default True
        Whether to restore the weights and optimizer state of the start of the failing epoch.
    """

    def __init__(self, restore_weights: bool = True):
        self.restore_weights = check_bool(restore_weights, "restore_weights")

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            _say(self, f"Epoch {epoch + 1}: invalid loss {loss}, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, l: ...)``.

    Parameters
    ----------
    on_epoch_begin, on_epoch_end : callable, optional
        Called as ``f(epoch, logs)``.
    on_batch_end : callable, optional
        Called as ``f(batch, logs)``.
    on_train_begin, on_train_end : callable, optional
        Called as ``f(logs)``.
    """

    def __init__(
        self,
        on_epoch_begin: Callable | None = None,
        on_epoch_end: Callable | None = None,
        on_batch_end: Callable | None = None,
        on_train_begin: Callable | None = None,
        on_train_end: Callable | None = None,
    ):
        hooks = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_batch_end": on_batch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
        }
        for hook, fn in hooks.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"{hook} must be a function or None, received {fn!r}.")
        # only the hooks given replace the base class's no-ops: fit sees which ones are used
        # (a batch hook makes the JAX epoch run step by step, so it sees each step's weights)
        for hook, fn in hooks.items():
            if fn is not None:
                setattr(self, hook, fn)


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at each epoch from ``schedule(epoch, lr) -> new lr``.

    It adds ``learning_rate`` to the epoch logs. In data-parallel training it runs on every
    rank (each sets its own optimizer's rate); only rank 0 prints.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> new lr``, with ``epoch`` from 0.
    verbose : int, default 0
        Whether to print the new rate at each epoch.

    Raises
    ------
    TypeError
        At ``on_train_begin`` (before any training), if the optimizer's learning rate is a
        :class:`~backprop.schedules.LearningRateSchedule`: that rate changes at each step and
        is not settable, as in Keras (replacing it would end the decay, and the saved model
        would lose the schedule).
    """

    log_keys = ("learning_rate",)

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0):
        if not callable(schedule):
            raise TypeError(
                f"schedule must be a function (epoch, lr) -> lr, received {schedule!r}."
            )
        self.schedule, self.verbose = schedule, verbose

    def __repr__(self) -> str:
        name = getattr(self.schedule, "__name__", None) or repr(self.schedule)
        return f"LearningRateScheduler({name})"

    def _check_settable(self) -> None:
        opt = self.model.optimizer
        if isinstance(opt.learning_rate, LearningRateSchedule):
            raise TypeError(
                f"{self!r} cannot set the learning rate of {type(opt).__name__}: it is driven "
                f"by the schedule {opt.learning_rate!r}, so its learning rate is not settable. "
                "Use one or the other: drop the callback and let the schedule set the rate at "
                "each step, or compile with a float learning rate (e.g. "
                f"optimizer={type(opt).__name__}(learning_rate=0.01)) for the callback to set."
            )

    def on_train_begin(self, logs=None):
        """Check, before any training, that the optimizer's learning rate can be set.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.

        Raises
        ------
        TypeError
            If the optimizer's learning rate is a ``LearningRateSchedule``.
        """
        self._check_settable()

    def on_epoch_begin(self, epoch, logs=None):
        self._check_settable()  # the optimizer may have been replaced since
        opt = self.model.optimizer
        lr = float(self.schedule(epoch, opt.current_learning_rate()))
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"The schedule returned learning rate {lr!r}; expected a float > 0.")
        opt.learning_rate = lr
        if self.verbose:
            _say(self, f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.current_learning_rate()


def _format_fields(pattern: str, whole: str | None = None) -> list[str]:
    """The names a ``str.format`` pattern uses (``"m-{val_loss:.2f}"`` -> ``["val_loss"]``).

    Raises ValueError for a malformed pattern or a positional field (``{}``, ``{0}``): the
    file name is formatted with keywords only. ``whole`` is the full pattern when ``pattern``
    is a nested format spec (for the messages).
    """
    fields: list[str] = []
    whole = pattern if whole is None else whole
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ValueError(
            f"ModelCheckpoint filepath {whole!r} is not a valid format string ({exc}); "
            "write literal braces as {{ and }}."
        ) from None
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        # "{loss.real}" and "{loss[0]}" look up "loss"
        name = re.split(r"[.\[]", field, maxsplit=1)[0]
        if name == "" or name.isdigit():
            raise ValueError(
                f"ModelCheckpoint filepath {whole!r} has a positional field {{{field}}}; "
                "expected names such as {epoch} or {val_loss}."
            )
        fields.append(name)
        if spec:  # a nested field, e.g. "{loss:.{digits}f}"
            fields.extend(_format_fields(spec, whole))
    return list(dict.fromkeys(fields))


class ModelCheckpoint(Callback):
    """Save the model after epochs: every epoch, or only when ``monitor`` improves.

    ``filepath`` may hold ``{epoch}`` and log keys, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``;
    its fields are checked against the keys of the epoch logs when training begins. With
    ``save_best_only``, a ``monitor`` that the logs of the fit will not have (a ``val_*`` key
    without validation data, a misspelled name) is told by a ``UserWarning`` then, naming the
    closest keys, and nothing is saved while the key is missing (as in Keras).

    Parameters
    ----------
    filepath : str
        The file name, a format string over ``epoch`` (from 1) and the log keys.
    monitor : str, default "val_loss"
        The log key compared when ``save_best_only``.
    save_best_only : bool, default False
        Whether to save only when ``monitor`` improves.
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher ``monitor`` is better; ``"auto"`` picks "max" for accuracies.
    verbose : int, default 0
        Whether to print a line at each save.

    Raises
    ------
    TypeError
        If ``filepath`` is not a non-empty path.
    ValueError
        If ``filepath`` is not a valid format string or has a positional field (``{}``).
    """

    root_only = True

    def __init__(
        self,
        filepath: str,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        verbose: int = 0,
    ):
        if not isinstance(filepath, str | os.PathLike) or not str(filepath):
            raise TypeError(f"filepath must be a non-empty path, received {filepath!r}.")
        self.filepath, self.monitor = str(filepath), monitor
        self.save_best_only = check_bool(save_best_only, "save_best_only")
        self.verbose = verbose
        self._fields = _format_fields(self.filepath)
        self._stop = EarlyStopping(monitor=monitor, mode=mode)
        self.best = math.inf if self._stop.mode == "min" else -math.inf

    def _expected_log_keys(self) -> tuple[set[str], bool | None] | None:
        return _expected_log_keys(self)

    def on_train_begin(self, logs=None):
        """Check the file name's fields against the keys the epoch logs will have.

        A field that will not be in the logs would otherwise fail as a bare ``KeyError``
        after the first epoch, its training time lost.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.

        Raises
        ------
        ValueError
            If the file name uses a key the epoch logs of this ``fit`` will not have (such as
            ``val_accuracy`` when no validation data is given).
        FileNotFoundError
            If the file name's folder does not exist.

        Warns
        -----
        UserWarning
            With ``save_best_only``, if ``monitor`` will not be in the epoch logs.
        """
        folder = os.path.dirname(os.path.abspath(self.filepath))
        # as model.save would say, but before the first epoch (a folder named by a field is
        # only known after it)
        if "{" not in folder and not os.path.isdir(folder):
            raise FileNotFoundError(
                f"ModelCheckpoint cannot save to {self.filepath}: the folder {folder} does not "
                "exist. Create it first (e.g. os.makedirs(folder, exist_ok=True))."
            )
        self._check_fields()
        # after the errors: a warning is not wanted before a fit that does not start
        if self.save_best_only:
            _check_monitor(self)

    def _check_fields(self) -> None:
        """Raise if the file name uses a key the epoch logs of this fit will not have."""
        expected = self._expected_log_keys()
        if expected is None:
            return
        keys, do_validation = expected
        unknown = [f for f in self._fields if f not in keys]
        if not unknown:
            return
        field = unknown[0]
        hint = ""
        if field.startswith("val_") and do_validation is False:
            hint = (
                " Validation does not run in this fit: pass validation_data or "
                "validation_split for 'val_*' keys."
            )
        raise ValueError(
            f"ModelCheckpoint filepath {self.filepath!r} uses {{{field}}}, which is not a key "
            f"of the epoch logs.{hint} Available keys: {sorted(keys)}."
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = _monitor_value(self, logs)
            if value is None or not self._stop._better(value, self.best):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        if self.verbose:
            _say(self, f"Epoch {epoch + 1}: saved model to {path}")
