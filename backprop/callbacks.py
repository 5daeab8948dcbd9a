"""Callbacks: code run at the hooks of ``fit``, ``evaluate`` and ``predict`` (as in Keras 3).

Keras 3's hook names, arguments and order.

Hooks (:data:`HOOKS`): ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
``on_train_batch_begin/end(batch, logs)`` (whose base versions call the aliases
``on_batch_begin/end``), ``on_test_begin/end(logs)`` and ``on_test_batch_begin/end(batch,
logs)`` (``evaluate``, and the validation of each epoch of ``fit``), ``on_predict_begin/end``
and ``on_predict_batch_begin/end(batch, logs)``.

Epoch logs are host floats (``loss``, metrics, ``val_*``). Batch logs hold ``{"batch": i,
"size": n}``, and, only when some callback of the call overrides a batch hook of that kind, the
running loss and metrics since the epoch (or the evaluation) began: those cost a host
synchronisation per step, and a fit none of whose callbacks watches the batches keeps its fast
engine (one compiled JAX program per epoch, a replayed CUDA graph per step).
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

#: Every hook a callback may define, in Keras 3's names.
HOOKS: tuple[str, ...] = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_batch_begin",
    "on_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)
#: The hooks called around each training step (the aliases included).
TRAIN_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")
TEST_BATCH_HOOKS = ("on_test_batch_begin", "on_test_batch_end")


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Warn, where the class is written, about an ``on_*`` method that is no hook.

        A misspelled hook (``on_epoch_ends``) would otherwise never be called, silently.
        """
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            if name.startswith("on_") and name not in HOOKS and callable(value):
                close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.0)
                warnings.warn(
                    f"{cls.__name__}.{name} is not a callback hook: it is never called. "
                    f"Did you mean {close[0]!r}? The hooks are: {', '.join(HOOKS)}.",
                    UserWarning,
                    stacklevel=2,
                )

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

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before each training step; by default calls :meth:`on_batch_begin`.

        Parameters
        ----------
        batch : int
            The batch index within the epoch, from 0.
        logs : dict, optional
            Empty at this hook.
        """
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after each training step; by default calls :meth:`on_batch_end`.

        Parameters
        ----------
        batch : int
            The batch index within the epoch, from 0.
        logs : dict, optional
            ``{"batch": i, "size": n}``, and, when a callback of the fit overrides a
            train-batch hook, ``loss`` and the metrics: their running averages over the
            epoch's steps so far (as Keras 3).
        """
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """The alias of :meth:`on_train_batch_begin` (Keras's backward-compatible name).

        Parameters
        ----------
        batch : int
            The batch index within the epoch, from 0.
        logs : dict, optional
            Empty at this hook.
        """

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """The alias of :meth:`on_train_batch_end` (Keras's backward-compatible name).

        Parameters
        ----------
        batch : int
            The batch index within the epoch, from 0.
        logs : dict, optional
            As for :meth:`on_train_batch_end`.
        """

    def on_test_begin(self, logs: dict | None = None) -> None:
        """Called before ``evaluate``, and before the validation at the end of each epoch.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.
        """

    def on_test_end(self, logs: dict | None = None) -> None:
        """Called after ``evaluate`` or the validation of an epoch, with its results.

        Parameters
        ----------
        logs : dict, optional
            The loss and metrics (without the ``val_`` prefix the epoch logs give them).
        """

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before each batch of ``evaluate`` or of an epoch's validation.

        Parameters
        ----------
        batch : int
            The batch index, from 0.
        logs : dict, optional
            Empty at this hook.
        """

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after each batch of ``evaluate`` or of an epoch's validation.

        Parameters
        ----------
        batch : int
            The batch index, from 0.
        logs : dict, optional
            ``{"batch": i, "size": n}``, and, when a callback overrides a test-batch hook,
            the running loss and metrics over the batches so far. Under data parallelism
            these are of this rank's rows (the final logs are of all rows).
        """

    def on_predict_begin(self, logs: dict | None = None) -> None:
        """Called before ``predict``.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.
        """

    def on_predict_end(self, logs: dict | None = None) -> None:
        """Called after ``predict``.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.
        """

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before each batch of ``predict``.

        Parameters
        ----------
        batch : int
            The batch index, from 0.
        logs : dict, optional
            Empty at this hook.
        """

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after each batch of ``predict``.

        Parameters
        ----------
        batch : int
            The batch index, from 0.
        logs : dict, optional
            ``{"outputs": y_hat}``: the batch's outputs, on the model's device.
        """


def overrides(callback: Callback, *hooks: str) -> bool:
    """Whether ``callback`` defines any of ``hooks`` itself (its class or the instance).

    Parameters
    ----------
    callback : Callback
        The callback.
    *hooks : str
        Hook names, e.g. ``"on_train_batch_end"``.

    Returns
    -------
    bool
        True if one of the hooks is not the base class's no-op.

    Examples
    --------
    >>> overrides(LambdaCallback(on_epoch_end=print), "on_epoch_end", "on_batch_end")
    True
    >>> overrides(History(), "on_batch_end")
    False
    """
    return any(
        hook in vars(callback) or getattr(type(callback), hook) is not getattr(Callback, hook)
        for hook in hooks
    )


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

    def _each(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._each("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._each("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._each("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._each("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._each("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._each("on_train_batch_end", batch, logs)

    def on_batch_begin(self, batch, logs=None):
        self._each("on_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._each("on_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._each("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._each("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._each("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._each("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._each("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._each("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._each("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._each("on_predict_batch_end", batch, logs)

    def watching(self, *hooks: str) -> bool:
        """Whether a callback of the list overrides one of ``hooks``.

        History and the progress bar read only the batch's index and size: they never count.

        Parameters
        ----------
        *hooks : str
            Hook names.

        Returns
        -------
        bool
        """
        return any(
            overrides(cb, *hooks)
            for cb in self.callbacks
            if not isinstance(cb, History | ProgbarLogger)
        )


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

    def _bar(self, done: int, total: int | None) -> str:
        if total is None:  # a stream of unknown length (a generator): Keras's "n/Unknown"
            return f"{done}/Unknown"
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
        steps = self.params["steps"]
        if now - self._last >= 0.1 and (steps is None or self.seen < steps):
            self._last = now
            self._write(f"\r{self._bar(self.seen, steps)} - {now - self.t0:.0f}s")

    def on_predict_begin(self, logs=None):
        self.t0 = self._last = time.perf_counter()
        self.seen = 0

    def on_predict_batch_end(self, batch, logs=None):
        self.on_batch_end(batch)

    def on_predict_end(self, logs=None):
        """The finished bar (``verbose=1``) or line (``verbose=2``) of a ``predict``."""
        elapsed = time.perf_counter() - self.t0
        steps = self.params["steps"] or self.seen
        text = f"{elapsed:.0f}s {1e3 * elapsed / max(steps, 1):.0f}ms/step"
        self._write(f"\r{self._bar(self.seen, steps)} - {text}\n")

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.t0
        # the steps run: a stream of unknown length counts them as they come
        steps = self.params["steps"] or self.seen
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
        Whether smaller or larger is better; ``"auto"`` follows the
        ``direction`` of the compiled metric monitored (``val_`` removed), as Keras 3: max
        for accuracies, AUC, precision, recall, F1, min for the loss, ``mae``, ``mse``. A
        metric without a direction, or a key no compiled metric gives, is refused at
        ``on_train_begin``: pass "min" or "max".
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
        # "auto" is resolved from the compiled metrics at on_train_begin; until then (and
        # outside fit) from the name
        self._auto = mode == "auto"
        self.mode = _auto_mode(monitor) if self._auto else mode
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
        if self._auto:
            self.mode = _resolved_mode(self)
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

    Every hook of :data:`HOOKS` may be given, with the arguments of the hook: ``f(logs)`` for
    ``on_{train,test,predict}_{begin,end}``, ``f(epoch, logs)`` for ``on_epoch_{begin,end}``
    and ``f(batch, logs)`` for the batch hooks. Only the hooks given replace the base class's,
    so ``fit`` sees which ones are used: a train-batch hook makes the steps run one by one
    (JAX's compiled epoch would run them all before the hook could see one). As in Keras,
    ``on_batch_begin``/``on_batch_end`` are called only where ``on_train_batch_begin``/
    ``on_train_batch_end`` are not given.

    Parameters
    ----------
    on_epoch_begin, on_epoch_end, on_train_begin, on_train_end : callable, optional
        Called at the start and end of each epoch and of training.
    on_train_batch_begin, on_train_batch_end : callable, optional
        Called around each training step.
    on_batch_begin, on_batch_end, on_test_begin, on_test_end, on_test_batch_begin, \
on_test_batch_end, on_predict_begin, on_predict_end, on_predict_batch_begin, \
on_predict_batch_end : callable, optional
        The other hooks (keywords only).

    Raises
    ------
    TypeError
        If a hook given is not callable.
    """

    def __init__(
        self,
        on_epoch_begin: Callable | None = None,
        on_epoch_end: Callable | None = None,
        on_train_begin: Callable | None = None,
        on_train_end: Callable | None = None,
        on_train_batch_begin: Callable | None = None,
        on_train_batch_end: Callable | None = None,
        *,
        on_batch_begin: Callable | None = None,
        on_batch_end: Callable | None = None,
        on_test_begin: Callable | None = None,
        on_test_end: Callable | None = None,
        on_test_batch_begin: Callable | None = None,
        on_test_batch_end: Callable | None = None,
        on_predict_begin: Callable | None = None,
        on_predict_end: Callable | None = None,
        on_predict_batch_begin: Callable | None = None,
        on_predict_batch_end: Callable | None = None,
    ):
        given = {k: v for k, v in locals().items() if k in HOOKS and v is not None}
        for hook, fn in given.items():
            if not callable(fn):
                raise TypeError(f"{hook} must be a function or None, received {fn!r}.")
        # set on the instance: the base class's no-ops stay where nothing was given
        for hook, fn in given.items():
            setattr(self, hook, fn)


def _check_settable(callback: Callback) -> None:
    """Refuse an optimizer whose learning rate a :class:`LearningRateSchedule` drives.

    That rate changes at each step and is not settable, as in Keras: replacing it would end
    the decay, and the saved model would lose the schedule.
    """
    opt = callback.model.optimizer
    if isinstance(opt.learning_rate, LearningRateSchedule):
        raise TypeError(
            f"{callback!r} cannot set the learning rate of {type(opt).__name__}: it is driven "
            f"by the schedule {opt.learning_rate!r}, so its learning rate is not settable. "
            "Use one or the other: drop the callback and let the schedule set the rate at "
            "each step, or compile with a float learning rate (e.g. "
            f"optimizer={type(opt).__name__}(learning_rate=0.01)) for the callback to set."
        )


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
        _check_settable(self)

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
        Whether lower or higher ``monitor`` is better; ``"auto"`` follows the
        ``direction`` of the compiled metric monitored (``val_`` removed), as Keras 3: max
        for accuracies, AUC, precision, recall, F1, min for the loss, ``mae``, ``mse``. A
        metric without a direction, or a key no compiled metric gives, is refused at
        ``on_train_begin``: pass "min" or "max".
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
        self._best_mode = self._stop.mode  # the direction ``best`` was started for

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
        if self.save_best_only and self._stop._auto:
            self._stop.mode = _resolved_mode(self)
            if self._stop.mode != self._best_mode:  # the name's guess was wrong: start over
                self.best = math.inf if self._stop.mode == "min" else -math.inf
                self._best_mode = self._stop.mode
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


def _auto_mode(monitor: str) -> str:
    """The direction guessed from the name alone, until ``fit`` tells the compiled metrics.

    ``"max"`` for accuracy-like names, else ``"min"``; :func:`_resolved_mode` replaces it at
    ``on_train_begin``.
    """
    maximize = any(s in monitor for s in ("acc", "precision", "recall", "auc"))
    return "max" if maximize else "min"


def _resolved_mode(callback: Callback) -> str:
    """The direction of ``mode="auto"`` from the model's compiled metrics, as Keras 3's.

    The monitored key, its ``val_`` prefix removed, is looked up among the model's
    ``(name, metric)`` pairs and the metric's ``direction`` followed ("up": max); ``loss`` is
    minimised. A name alone cannot tell (``BinaryAccuracy(name="ba")``, ``F1Score``), so a
    key that is neither the loss nor a metric with a direction is refused, as Keras 3
    does, rather than guessed. A key the logs will not have keeps the name's guess: it is
    warned about and never compared.

    Raises
    ------
    ValueError
        If the key is a metric without a direction, or a key of the logs that is no
        compiled metric (one a callback adds).
    """
    monitor, kind = callback.monitor, type(callback).__name__
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    metrics = getattr(callback.model, "metrics", None)
    if not isinstance(metrics, list | tuple):  # outside fit: the name's guess
        return _auto_mode(monitor)
    for entry in metrics:
        if not (isinstance(entry, tuple) and len(entry) == 2 and entry[0] == name):
            continue
        direction = getattr(entry[1], "direction", None)
        if direction in ("up", "down"):
            return "max" if direction == "up" else "min"
        raise ValueError(
            f"{kind} monitors {monitor!r}, the metric {entry[1]!r}, whose class does not tell "
            "whether larger or smaller is better, so mode='auto' cannot pick. Pass "
            "mode='max' or mode='min' (or set direction = 'up' or 'down' on the metric's "
            "class)."
        )
    expected = _expected_log_keys(callback)
    if expected is not None and monitor in expected[0] and monitor != "epoch":
        raise ValueError(
            f"{kind} monitors {monitor!r}, which is not a compiled metric, so mode='auto' "
            "cannot tell whether larger or smaller is better. Pass mode='max' or mode='min'."
        )
    return _auto_mode(monitor)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    After ``patience`` epochs without an improvement of more than ``min_delta``, the rate
    becomes ``max(lr * factor, min_lr)``; then ``cooldown`` epochs pass before the count of
    epochs without improvement starts again. Keras 3's arguments, defaults and order of
    decisions. It adds ``learning_rate`` to the epoch logs: the rate the epoch trained with
    (before any reduction at its end), as Keras does.

    A ``monitor`` that the epoch logs of the fit will not have is told by a ``UserWarning``
    before the first epoch, naming the closest keys (as for :class:`EarlyStopping`). In
    data-parallel training it runs on every rank (each sets its optimizer's rate, the logs
    being the same); only rank 0 prints.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs.
    factor : float, default 0.1
        ``new_lr = lr * factor``, with ``0 < factor < 1``.
    patience : int, default 10
        Epochs without improvement before the rate is reduced.
    verbose : int, default 0
        Whether to print a line at each reduction.
    mode : {"auto", "min", "max"}, default "auto"
        Whether smaller or larger is better; ``"auto"`` follows the
        ``direction`` of the compiled metric monitored (``val_`` removed), as Keras 3: max
        for accuracies, AUC, precision, recall, F1, min for the loss, ``mae``, ``mse``. A
        metric without a direction, or a key no compiled metric gives, is refused at
        ``on_train_begin``: pass "min" or "max".
    min_delta : float, default 1e-4
        Smallest change that counts as an improvement.
    cooldown : int, default 0
        Epochs after a reduction during which no epoch counts as without improvement.
    min_lr : float, default 0.0
        The rate is never reduced below this.

    Raises
    ------
    ValueError
        For a ``factor`` outside (0, 1), an unknown ``mode``, a ``patience`` or ``cooldown``
        that is not an integer >= 0, or a ``min_delta`` or ``min_lr`` that is not a number
        (>= 0 for ``min_lr``).
    TypeError
        At ``on_train_begin`` (before any training), if the optimizer's learning rate is a
        :class:`~backprop.schedules.LearningRateSchedule` (not settable, as for
        :class:`LearningRateScheduler`).
    """

    log_keys = ("learning_rate",)

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ):
        factor_float = as_float(factor)
        # Keras refuses factor >= 1 only; a factor <= 0 would set a rate <= 0
        if factor_float is None or not 0.0 < factor_float < 1.0:
            raise ValueError(
                f"ReduceLROnPlateau needs 0 < factor < 1 (new_lr = lr * factor), received "
                f"factor={factor!r}."
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', received {mode!r}.")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            as_integer = as_int(value)
            if as_integer is None or as_integer < 0:
                raise ValueError(f"{name} must be an integer >= 0, received {value!r}.")
        min_delta_float, min_lr_float = as_float(min_delta), as_float(min_lr)
        if min_delta_float is None or math.isnan(min_delta_float):
            raise ValueError(f"min_delta must be a number, received {min_delta!r}.")
        if min_lr_float is None or not min_lr_float >= 0:
            raise ValueError(f"min_lr must be a number >= 0, received {min_lr!r}.")
        self.monitor, self.factor, self.verbose = monitor, factor_float, verbose
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.min_delta, self.min_lr = abs(min_delta_float), min_lr_float
        self.mode = mode  # as given, as Keras keeps it; the direction resolved below
        # "auto" is resolved from the compiled metrics at on_train_begin
        self._mode = _auto_mode(monitor) if mode == "auto" else mode
        self._reset()

    def __repr__(self) -> str:
        return f"ReduceLROnPlateau(monitor={self.monitor!r}, factor={self.factor})"

    def _reset(self) -> None:
        self.wait = 0
        self.cooldown_counter = 0
        self.best = math.inf if self._mode == "min" else -math.inf

    def _better(self, value: float) -> bool:
        if self._mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def in_cooldown(self) -> bool:
        """Whether the epochs after the last reduction are still cooling down.

        Returns
        -------
        bool
        """
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        """Start afresh, check the rate can be set and that ``monitor`` will come.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.

        Raises
        ------
        TypeError
            If the optimizer's learning rate is a ``LearningRateSchedule``.
        """
        if self.mode == "auto":
            self._mode = _resolved_mode(self)
        self._reset()  # an instance may serve several fits, as in Keras
        _check_settable(self)
        _check_monitor(self)

    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = opt.current_learning_rate()
        value = _monitor_value(self, logs or {})
        if value is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(value):
            self.best, self.wait = value, 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        _check_settable(self)  # the optimizer may have been replaced since
        old = float(opt.learning_rate)
        if old > self.min_lr:
            new = max(old * self.factor, self.min_lr)
            opt.learning_rate = new
            if self.verbose:
                _say(self, f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
            self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file: ``epoch``, then the keys sorted.

    The columns are those of the first epoch's logs (a key missing later is written ``NA``),
    as in Keras. Each row is written and the file closed at the end of its epoch, so that
    the file holds every finished epoch even if training stops on an error. Only rank 0
    writes in data-parallel training.

    Parameters
    ----------
    filename : str or path
        The CSV file.
    separator : str, default ","
        The one-character field separator.
    append : bool, default False
        Add to an existing file (its header kept; written only when the file is empty or
        new) instead of overwriting it; for resumed trainings.

    Raises
    ------
    TypeError
        If ``filename`` is not a non-empty path.
    ValueError
        If ``separator`` is not one character.
    OSError
        At ``on_train_begin``, before any training, if ``filename`` is a folder or its
        folder is missing (``IsADirectoryError``, ``FileNotFoundError``,
        ``NotADirectoryError``).
    """

    root_only = True

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        if not isinstance(filename, str | os.PathLike) or not os.fspath(filename):
            raise TypeError(f"filename must be a non-empty path, received {filename!r}.")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be one character, received {separator!r}.")
        self.filename = os.fspath(filename)
        self.sep, self.append = separator, check_bool(append, "append")
        self.keys: list[str] | None = None

    def on_train_begin(self, logs=None):
        """Start the file (emptied unless ``append``), after checking it can be written.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.

        Raises
        ------
        IsADirectoryError
            If ``filename`` is a folder.
        FileNotFoundError
            If its folder does not exist.
        NotADirectoryError
            If a file stands where a folder of the path should be.
        """
        self.keys = None
        # before the first epoch, with model.save's words, rather than an OS error after it
        _check_file_target("CSVLogger", self.filename)
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                self._header = not f.readline()
        else:
            self._header = True
            with open(self.filename, "w", encoding="utf-8"):  # a new file, or emptied now
                pass

    def on_epoch_end(self, epoch, logs=None):
        import csv

        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(k for k in logs if k != "epoch")
        row = [epoch, *(logs.get(k, "NA") for k in self.keys)]
        with open(self.filename, "a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter=self.sep, lineterminator="\n")
            if self._header:
                writer.writerow(["epoch", *self.keys])
                self._header = False
            writer.writerow(row)


def _file_in_a_file(path: str) -> str | None:
    """The existing file, if any, among the folders above ``path`` (nothing fits in it)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder if os.path.lexists(folder) and not os.path.isdir(folder) else None


def _check_file_target(kind: str, path: str) -> None:
    """Raise, as ``model.save`` does, unless ``path`` can be a file written in a folder."""
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{kind} cannot write to {path}: it is a folder, not a file. Give a file name "
            f"inside it, e.g. {os.path.join(path, 'log.csv')!r}."
        )
    blocking = _file_in_a_file(path)
    if blocking is not None:
        raise NotADirectoryError(
            f"{kind} cannot write to {path}: {blocking} is a file, not a folder, so nothing "
            "can be written inside it. Choose another path."
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"{kind} cannot write to {path}: the folder {folder} does not exist. Create it "
            "first (e.g. os.makedirs(folder, exist_ok=True))."
        )


def _folder_problem(path: str) -> str | None:
    """Why ``path`` cannot be (or be made) a folder: a file there or above it; None if it can."""
    blocking = path if os.path.lexists(path) and not os.path.isdir(path) else None
    blocking = blocking or _file_in_a_file(path)
    if blocking is None:
        return None
    return (
        f"BackupAndRestore cannot back up to {path}: {blocking} is a file, not a folder. Give "
        "the name of a folder of its own (it is created if missing)."
    )


def _write_json_atomically(path: str, document: dict) -> None:
    """Write ``document`` to a temporary file beside ``path``, then rename it over ``path``."""
    import json
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class BackupAndRestore(Callback):
    """Back the training state up after each epoch; a new ``fit`` resumes from it, exactly.

    Everything the next epoch depends on is written to ``backup_dir`` after each epoch (or
    every ``save_freq`` batches): the weights (moving statistics included), the optimizer's
    state, step count and learning rate, the random streams (the next shuffles and dropout
    masks) and the epoch count. A ``fit`` with this callback started after an interruption
    (an exception, a killed process) loads them before the first epoch and goes on from the
    epoch after the last one backed up: its epochs compute, to the last bit, what the
    uninterrupted fit would have. The backup is removed when the fit completes, unless
    ``delete_checkpoint=False``.

    The backup is a model file of the library's own format (``model.save``: atomic, with a
    checksum over its header and arrays; see ``docs/file-format.md``), ``backup-<epoch>-
    <batch>.npz``, and ``state.json``, a JSON note of the epoch to go on from and of that
    file's name. The note is written (atomically) after the model file it names, and the
    previous model file removed after it, so an interruption at any point leaves a whole
    backup. A resumed fit restores the model file into its model (the model's
    ``_restore_training_state``: a file of another architecture or optimizer is refused). In
    data-parallel training rank 0 writes and reads the backup, and every rank restores what
    it read (sent over the communicator: no shared file system is needed). The model and
    ``fit`` arguments must be those of the interrupted run.

    Not restored: a dropout stream on a GPU (CuPy, torch on CUDA) and the other ranks'
    dropout streams, which continue from where they are; the state of other callbacks.
    With an integer ``save_freq``, a resumed fit starts again at the beginning of the epoch
    the last backup was made in, from the weights of that backup (as Keras does): those
    epochs are not exact.

    Parameters
    ----------
    backup_dir : str or path
        A folder for this training's backup only (created if needed).
    save_freq : "epoch" or int, default "epoch"
        Back up after each epoch, or after every ``save_freq`` training batches as well
        (which runs the steps one by one, and reads each step's logs back: slower).
    delete_checkpoint : bool, default True
        Remove the backup when the fit completes.

    Raises
    ------
    ValueError
        If ``backup_dir`` is empty, or ``save_freq`` is neither "epoch" nor an integer > 0;
        at ``on_train_begin``, if the backup is damaged or of another model.
    NotADirectoryError
        If a file stands where ``backup_dir`` (or a folder above it) should be: at
        construction, and again at ``on_train_begin``.
    """

    FORMAT = "backprop-backup"
    VERSION = 2  # 2: the weights and state in a model file of backprop.io; 1: plain arrays
    STATE = "state.json"

    def __init__(
        self,
        backup_dir: str | os.PathLike,
        save_freq: str | int = "epoch",
        delete_checkpoint: bool = True,
    ):
        if not isinstance(backup_dir, str | os.PathLike) or not os.fspath(backup_dir):
            raise ValueError(f"backup_dir must be a non-empty path, received {backup_dir!r}.")
        freq = None if save_freq == "epoch" else as_int(save_freq)
        if save_freq != "epoch" and (freq is None or freq < 1):
            raise ValueError(
                f"save_freq must be 'epoch' or an integer > 0 (batches), received {save_freq!r}."
            )
        problem = _folder_problem(os.fspath(backup_dir))
        if problem is not None:
            raise NotADirectoryError(problem)
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = "epoch" if freq is None else freq
        self.delete_checkpoint = check_bool(delete_checkpoint, "delete_checkpoint")
        self._epoch = 0
        self._batches = 0
        if freq is not None:
            # on the instance only: a backup per epoch keeps the fast engines
            self.on_train_batch_end = self._batch_end

    def _path(self, name: str) -> str:
        return os.path.join(self.backup_dir, name)

    # -- writing ------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._batches = 0
        if self.save_freq == "epoch":
            self._epoch = epoch + 1
            self._save()

    def _batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save()  # the epoch in progress starts again on resume, as in Keras

    def _save(self) -> None:
        """Write the backup of the current state (rank 0 only): the model file, then the note."""
        if not _is_root(self):
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        previous = self._read_state()
        name = f"backup-{self._epoch}-{self._batches}.npz"
        self.model.save(self._path(name))  # atomic: a temporary file renamed over the target
        note = {"format": self.FORMAT, "version": self.VERSION, "epoch": self._epoch}
        _write_json_atomically(self._path(self.STATE), {**note, "model_file": name})
        old = previous.get("model_file") if previous is not None else None
        if isinstance(old, str) and old != name and os.path.exists(self._path(old)):
            os.remove(self._path(old))

    def _read_state(self) -> dict | None:
        """The note of the backup (checked), or None where there is none."""
        import json

        path = self._path(self.STATE)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"The backup note {path} is damaged ({exc}). Remove the folder to start afresh."
            ) from None
        if not isinstance(state, dict) or state.get("format") != self.FORMAT:
            raise ValueError(
                f"{path} is not a BackupAndRestore backup: backup_dir must be a folder of its "
                "own (not shared with ModelCheckpoint or another training)."
            )
        if state.get("version") != self.VERSION:
            raise ValueError(
                f"{path} is a backup of format version {state.get('version')!r}; this backprop "
                f"reads version {self.VERSION}. Remove the folder to start afresh."
            )
        epoch, name = state.get("epoch"), state.get("model_file")
        if (
            isinstance(epoch, bool)
            or not isinstance(epoch, int)
            or epoch < 0
            or not isinstance(name, str)
            or os.path.basename(name) != name
        ):
            raise ValueError(
                f"The backup note {path} is damaged (epoch {epoch!r}, model_file {name!r}): "
                "remove the folder to start afresh."
            )
        return state

    # -- restoring ----------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        """Restore the backup, if there is one, and tell ``fit`` the epoch to go on from.

        Parameters
        ----------
        logs : dict, optional
            Empty at this hook.

        Raises
        ------
        ValueError
            If the backup is damaged, or of a model with another architecture or optimizer.
        NotADirectoryError
            If a file stands where ``backup_dir`` (or a folder above it) should be.
        """
        self._epoch, self._batches = 0, 0
        model = self.model
        comm = getattr(model, "_comm", None)
        state: Any = None
        if comm is None or comm.is_root:
            # a file may have taken the folder's place since the callback was made
            problem = _folder_problem(self.backup_dir)
            try:
                state = NotADirectoryError(problem) if problem else self._read_state()
            except ValueError as exc:
                state = exc
        if comm is not None:  # rank 0 read it; every rank goes on from the same
            state = comm.bcast(state)
        if isinstance(state, ValueError | NotADirectoryError):
            raise state if comm is None or comm.is_root else type(state)(str(state))
        if state is None:
            return
        try:
            model._restore_training_state(self._path(state["model_file"]), comm=comm)
        except FileNotFoundError:
            raise ValueError(
                f"The backup in {self.backup_dir} is incomplete: its note names "
                f"{state['model_file']}, which is missing. Remove the folder to start afresh."
            ) from None
        except ValueError as exc:
            raise ValueError(
                f"Cannot resume from the backup in {self.backup_dir}: {exc} If it is the "
                "backup of another training, use another backup_dir."
            ) from None
        self._epoch = int(state["epoch"])
        model._initial_epoch = self._epoch  # the loop goes on from here, as Keras's

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint or not _is_root(self):
            return
        state = self._read_state()
        if state is not None:
            model_file = self._path(state["model_file"])
            if os.path.exists(model_file):
                os.remove(model_file)
            os.remove(self._path(self.STATE))
        # only the folder's own files: a folder holding anything else is left in place
        if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
            os.rmdir(self.backup_dir)
