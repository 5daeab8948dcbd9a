import json
import re
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop import callbacks as C
from backprop.layers import Dense


def _model(lr=0.01, seed=0, backend=None):
    layers = [Dense(8, "relu", input_dim=2), Dense(1, "sigmoid")]
    model = bp.Sequential(layers, seed=seed, backend=backend)
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.Adam(lr), metrics=["acc"])
    return model


def test_hooks_run_in_keras_order(circles):
    X, y = circles
    events = []
    cb = C.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda e, logs: events.append(f"epoch_begin {e}"),
        on_batch_end=lambda b, logs: events.append(f"batch {b}"),
        on_epoch_end=lambda e, logs: events.append(f"epoch_end {e} {sorted(logs)}"),
        on_train_end=lambda logs: events.append("train_end"),
    )
    _model().fit(X, y, epochs=2, batch_size=100, callbacks=[cb], verbose=0)
    assert events == [
        "train_begin",
        "epoch_begin 0", "batch 0", "batch 1", "epoch_end 0 ['acc', 'loss']",
        "epoch_begin 1", "batch 0", "batch 1", "epoch_end 1 ['acc', 'loss']",
        "train_end",
    ]  # fmt: skip


def test_evaluate_and_predict_call_their_hooks_in_keras_order(circles):
    X, y = circles
    events = []
    cb = C.LambdaCallback(
        on_test_begin=lambda logs: events.append("test_begin"),
        on_test_batch_begin=lambda b, logs: events.append(f"test_batch_begin {b}"),
        on_test_batch_end=lambda b, logs: events.append(f"test_batch_end {b} {sorted(logs)}"),
        on_test_end=lambda logs: events.append(f"test_end {sorted(logs)}"),
        on_predict_begin=lambda logs: events.append("predict_begin"),
        on_predict_batch_begin=lambda b, logs: events.append(f"predict_batch_begin {b}"),
        on_predict_batch_end=lambda b, logs: events.append(f"predict_batch_end {b} {sorted(logs)}"),
        on_predict_end=lambda logs: events.append("predict_end"),
    )
    model = _model()
    result = model.evaluate(X, y, batch_size=150, callbacks=[cb])
    assert events == [
        "test_begin",
        "test_batch_begin 0", "test_batch_end 0 ['acc', 'batch', 'loss', 'size']",
        "test_batch_begin 1", "test_batch_end 1 ['acc', 'batch', 'loss', 'size']",
        "test_end ['acc', 'loss']",
    ]  # fmt: skip
    assert result == model.evaluate(X, y, batch_size=150)  # the hooks change nothing
    events.clear()
    y_hat = model.predict(X, batch_size=150, callbacks=[cb])
    assert events == [
        "predict_begin",
        "predict_batch_begin 0", "predict_batch_end 0 ['outputs']",
        "predict_batch_begin 1", "predict_batch_end 1 ['outputs']",
        "predict_end",
    ]  # fmt: skip
    np.testing.assert_array_equal(y_hat, model.predict(X, batch_size=150))


class _Scripted(C.Callback):
    """Replaces the monitored value by a script, to test EarlyStopping deterministically."""

    log_keys = ("val_loss",)  # declared: the callbacks after it may monitor it

    def __init__(self, values):
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]
        self.model._snapshots.append(self.model.get_weights())


def test_early_stopping_restores_the_best_weights(circles):
    X, y = circles
    model = _model()
    model._snapshots = []
    stop = C.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    script = [1.0, 0.5, 0.7, 0.4, 0.45, 0.41, 0.1]
    h = model.fit(X, y, epochs=7, callbacks=[_Scripted(script), stop], verbose=0)
    assert len(h.history["loss"]) == 6  # stopped after two epochs without improving on 0.4
    assert stop.stopped_epoch == 5 and stop.best_epoch == 3 and stop.best == 0.4
    for a, b in zip(model.get_weights(), model._snapshots[3], strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_min_delta_mode_and_baseline(circles):
    X, y = circles
    model = _model()
    model._snapshots = []
    stop = C.EarlyStopping(monitor="val_loss", min_delta=0.2, patience=1)
    model.fit(X, y, epochs=5, callbacks=[_Scripted([1.0, 0.9, 0.85, 0.5, 0.1]), stop], verbose=0)
    assert stop.stopped_epoch == 1  # 0.9 is not 0.2 better than 1.0
    assert C.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert C.EarlyStopping(monitor="loss").mode == "min"
    with pytest.raises(ValueError, match="mode must be"):
        C.EarlyStopping(mode="up")


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_terminate_on_nan(circles, capsys):
    X, y = circles
    model = _model(lr=1e30)  # diverges to inf/NaN within an epoch
    before = model.get_weights()
    h = model.fit(X, y, epochs=5, callbacks=[C.TerminateOnNaN()], verbose=0)
    assert len(h.history["loss"]) < 5
    assert not np.isfinite(h.history["loss"][-1])
    assert "terminating" in capsys.readouterr().out
    if len(h.history["loss"]) == 1:  # restored to the start of the failing epoch
        for a, b in zip(before, model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_learning_rate_scheduler(circles):
    X, y = circles
    model = _model(lr=0.1)
    sched = C.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    h = model.fit(X, y, epochs=3, callbacks=[sched], verbose=0)
    assert h.history["learning_rate"] == [0.05, 0.025, 0.0125]
    with pytest.raises(ValueError, match="learning rate"):
        model.fit(X, y, epochs=1, callbacks=[C.LearningRateScheduler(lambda e, lr: -1)], verbose=0)


def test_model_checkpoint(tmp_path, circles):
    X, y = circles
    model = _model()
    model._snapshots = []
    every = C.ModelCheckpoint(str(tmp_path / "e{epoch:02d}.npz"), save_best_only=False)
    best = C.ModelCheckpoint(str(tmp_path / "best.npz"), monitor="val_loss", save_best_only=True)
    script = _Scripted([0.5, 0.3, 0.6])
    model.fit(X, y, epochs=3, callbacks=[script, every, best], verbose=0)
    assert sorted(p.name for p in tmp_path.glob("e*.npz")) == ["e01.npz", "e02.npz", "e03.npz"]
    saved = bp.load(tmp_path / "best.npz").get_weights()
    for a, b in zip(saved, model._snapshots[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_callbacks_must_be_callbacks(circles):
    X, y = circles
    with pytest.raises(TypeError, match="Callback instances"):
        _model().fit(X, y, callbacks=[print], verbose=0)


def test_history_is_returned_and_kept(circles):
    X, y = circles
    model = _model()
    h = model.fit(X, y, epochs=2, verbose=0)
    assert model.history is h and h.epoch == [0, 1]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: C.LambdaCallback(on_epoch_end="print"), "on_epoch_end must be a function"),
        (lambda: C.LearningRateScheduler(0.1), "schedule must be a function"),
        (lambda: C.ModelCheckpoint(None), "filepath must be a non-empty path"),
        (lambda: C.EarlyStopping(patience=-1), "patience must be an integer >= 0"),
    ],
)
def test_bad_callback_arguments(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


# -- ModelCheckpoint's file name is checked before training -----------------------------------


def _params(do_validation):
    # what fit gives the callbacks (Keras's do_validation key included)
    return {"epochs": 2, "steps": 7, "verbose": 0, "samples": 200, "do_validation": do_validation}


def _accuracy_model():
    model = _model()
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def test_checkpoint_val_key_without_validation_is_refused_before_training(tmp_path):
    checkpoint = C.ModelCheckpoint(str(tmp_path / "m-{val_accuracy:.2f}.npz"))
    callbacks = C.CallbackList([checkpoint], _accuracy_model(), _params(do_validation=False))
    with pytest.raises(ValueError) as info:
        callbacks.on_train_begin()
    message = str(info.value)
    assert "uses {val_accuracy}, which is not a key of the epoch logs" in message
    assert "Validation does not run in this fit" in message
    assert "Available keys: ['accuracy', 'epoch', 'loss']." in message
    # with validation the same name is fine
    callbacks = C.CallbackList([checkpoint], _accuracy_model(), _params(do_validation=True))
    callbacks.on_train_begin()


@pytest.mark.parametrize(
    "pattern",
    [
        "m.npz",
        "m-{epoch}.npz",
        "m-{epoch:03d}-{loss:.4f}-{accuracy:.2%}.npz",
        "m-{val_loss:.3f}-{val_accuracy}.npz",
        "m-{loss.real:.1f}-{{literal}}.npz",
    ],
)
def test_checkpoint_accepts_the_keys_of_the_logs(tmp_path, pattern):
    checkpoint = C.ModelCheckpoint(str(tmp_path / pattern))
    C.CallbackList([checkpoint], _accuracy_model(), _params(do_validation=True)).on_train_begin()


@pytest.mark.parametrize(
    ("pattern", "field"),
    [
        ("m-{acc}.npz", "acc"),  # the metric is compiled as "accuracy"
        ("m-{val_acuracy}.npz", "val_acuracy"),
        ("m-{loss:.{digits}f}.npz", "digits"),
        ("m-{epochs}.npz", "epochs"),
    ],
)
def test_checkpoint_names_an_unknown_key(tmp_path, pattern, field):
    checkpoint = C.ModelCheckpoint(str(tmp_path / pattern))
    callbacks = C.CallbackList([checkpoint], _accuracy_model(), _params(do_validation=True))
    with pytest.raises(ValueError, match=rf"uses \{{{field}\}}.*Available keys: \['accuracy'"):
        callbacks.on_train_begin()


def test_checkpoint_unknown_key_fails_in_fit_before_the_first_epoch(tmp_path, circles):
    X, y = circles
    epochs = []
    watch = C.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))
    checkpoint = C.ModelCheckpoint(str(tmp_path / "m-{epoch}-{val_acuracy:.2f}.npz"))
    model = _accuracy_model()
    with pytest.raises(ValueError, match=r"uses \{val_acuracy\}.*'val_accuracy', 'val_loss'"):
        model.fit(X, y, epochs=2, validation_split=0.2, callbacks=[watch, checkpoint], verbose=0)
    assert epochs == [] and list(tmp_path.iterdir()) == []


def test_checkpoint_may_use_keys_added_by_callbacks_before_it(tmp_path, circles):
    X, y = circles
    pattern = str(tmp_path / "m-{epoch}-{learning_rate:.1e}.npz")
    halve = C.LearningRateScheduler(lambda epoch, lr: lr / 2)
    model = _model(lr=0.1)
    model.fit(X, y, epochs=2, callbacks=[halve, C.ModelCheckpoint(pattern)], verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1-5.0e-02.npz", "m-2-2.5e-02.npz"]
    # after it, the key is not yet in the logs the checkpoint is given
    with pytest.raises(ValueError, match=r"uses \{learning_rate\}"):
        model.fit(X, y, epochs=1, callbacks=[C.ModelCheckpoint(pattern), halve], verbose=0)


@pytest.mark.parametrize(
    ("pattern", "match"),
    [
        ("m-{}.npz", r"has a positional field \{\}; expected names such as \{epoch\}"),
        ("m-{0}.npz", r"has a positional field \{0\}"),
        ("m-{epoch.npz", r"is not a valid format string .*write literal braces as \{\{ and \}\}"),
        ("m-}.npz", "is not a valid format string"),
    ],
)
def test_checkpoint_refuses_a_malformed_pattern(pattern, match):
    with pytest.raises(ValueError, match=match):
        C.ModelCheckpoint(pattern)


def test_fit_without_validation_refuses_a_val_key_before_training(tmp_path, circles):
    X, y = circles
    checkpoint = C.ModelCheckpoint(str(tmp_path / "m-{val_accuracy:.2f}.npz"))
    with pytest.raises(ValueError, match="Validation does not run in this fit"):
        _accuracy_model().fit(X, y, epochs=2, callbacks=[checkpoint], verbose=0)


# -- CallbackList wants a list ----------------------------------------------------------------


def test_callback_list_refuses_a_single_callback():
    with pytest.raises(
        TypeError, match=r"^callbacks must be a list of Callback instances, received History\.$"
    ):
        C.CallbackList(C.History(), _model(), _params(do_validation=False))
    with pytest.raises(
        TypeError, match="callbacks must be Callback instances, received builtin_function_or_method"
    ):
        C.CallbackList([print], _model(), _params(do_validation=False))
    history = C.History()
    callbacks = C.CallbackList((history,), _model(), _params(do_validation=False))
    assert callbacks.callbacks == [history] and history.params["epochs"] == 2


# -- EarlyStopping: the best epoch, the baseline, epoch 0 (issue 19) ---------------------------


def _assert_weights_equal(actual, expected):
    for a, b in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_the_best_epoch_when_the_baseline_is_never_beaten(backend, circles):
    X, y = circles
    model = _model(backend=backend)
    model._snapshots = []
    stop = C.EarlyStopping(patience=3, baseline=0.1, restore_best_weights=True)
    script = [1.0, 0.5, 0.7, 0.6, 0.2]
    h = model.fit(X, y, epochs=5, callbacks=[_Scripted(script), stop], verbose=0)
    # no epoch beats the baseline 0.1: it stops after `patience` epochs, as Keras does, and
    # puts back the best of them (epoch 1, 0.5), not the last one
    assert len(h.history["loss"]) == 3 and stop.stopped_epoch == 2
    assert stop.best_epoch == 1 and stop.best == 0.5
    _assert_weights_equal(model.get_weights(), model._snapshots[1])
    # when training ends before the patience runs out, the best epoch is put back as well
    model._snapshots = []
    stop = C.EarlyStopping(patience=5, baseline=0.1, restore_best_weights=True)
    model.fit(X, y, epochs=3, callbacks=[_Scripted([0.6, 0.4, 0.9]), stop], verbose=0)
    assert not model.stop_training and stop.best_epoch == 1
    _assert_weights_equal(model.get_weights(), model._snapshots[1])


def test_early_stopping_with_a_baseline_beaten_behaves_as_without(circles):
    X, y = circles
    model = _model()
    model._snapshots = []
    stop = C.EarlyStopping(patience=2, baseline=0.8, restore_best_weights=True)
    script = [1.0, 0.7, 0.75, 0.6, 0.65, 0.66, 0.1]
    h = model.fit(X, y, epochs=7, callbacks=[_Scripted(script), stop], verbose=0)
    assert len(h.history["loss"]) == 6 and stop.best_epoch == 3
    _assert_weights_equal(model.get_weights(), model._snapshots[3])


def test_early_stopping_never_stops_after_the_first_epoch_and_says_when_it_stops(circles, capsys):
    X, y = circles
    model = _model()
    model._snapshots = []
    # the baseline is never beaten and patience is 0: Keras still trains a second epoch
    stop = C.EarlyStopping(patience=0, baseline=0.0, verbose=1)
    h = model.fit(X, y, epochs=4, callbacks=[_Scripted([0.5, 0.4, 0.3, 0.2]), stop], verbose=0)
    assert len(h.history["loss"]) == 2 and stop.stopped_epoch == 1 and model.stop_training
    assert capsys.readouterr().out == "Epoch 2: early stopping\n"
    # with restore_best_weights it also says which epoch it put back
    stop = C.EarlyStopping(patience=1, verbose=1, restore_best_weights=True)
    model.fit(X, y, epochs=4, callbacks=[_Scripted([0.5, 0.6, 0.3, 0.2]), stop], verbose=0)
    assert capsys.readouterr().out == (
        "Epoch 2: early stopping\nRestoring model weights from the end of the best epoch: 1.\n"
    )


def test_early_stopping_is_reusable_across_fits(circles):
    X, y = circles
    model = _model()
    model._snapshots = []
    stop = C.EarlyStopping(patience=1)
    model.fit(X, y, epochs=3, callbacks=[_Scripted([0.5, 0.6, 0.7]), stop], verbose=0)
    assert stop.stopped_epoch == 1
    model._snapshots = []
    h = model.fit(X, y, epochs=3, callbacks=[_Scripted([0.5, 0.4, 0.3]), stop], verbose=0)
    assert len(h.history["loss"]) == 3 and stop.stopped_epoch == 0 and stop.best == 0.3


# -- LearningRateScheduler on an optimizer driven by a LearningRateSchedule ---------------------


def test_learning_rate_scheduler_refuses_an_optimizer_driven_by_a_schedule(backend, circles):
    X, y = circles
    decay = bp.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    model = _model(backend=backend)
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.SGD(decay))
    before = model.get_weights()
    started = []

    def identity(epoch, lr):
        return lr

    callbacks = [
        C.LambdaCallback(on_epoch_begin=lambda epoch, logs: started.append(epoch)),
        C.LearningRateScheduler(identity),
    ]
    with pytest.raises(TypeError) as info:
        model.fit(X, y, epochs=2, callbacks=callbacks, verbose=0)
    message = str(info.value)
    assert "LearningRateScheduler(identity)" in message
    assert "ExponentialDecay(initial_learning_rate=0.1" in message
    assert "learning rate is not settable" in message
    # refused before any training: the schedule and the weights are as they were
    assert started == [] and model.optimizer.learning_rate is decay
    assert model.optimizer.iterations == 0
    _assert_weights_equal(model.get_weights(), before)


# -- a monitored key the logs will not have: a warning before training, then skipped ----------


def _seen_before_each_epoch(caught):
    """A callback recording how many warnings were raised when each epoch began."""
    counts = []
    watch = C.LambdaCallback(on_epoch_begin=lambda epoch, logs: counts.append(len(caught)))
    return watch, counts


@pytest.mark.parametrize(
    "make",
    [
        lambda path: C.EarlyStopping(),
        lambda path: C.EarlyStopping(monitor="val_acc", patience=0),
        lambda path: C.ModelCheckpoint(path, save_best_only=True),
    ],
    ids=["EarlyStopping", "EarlyStopping-val_acc", "ModelCheckpoint"],
)
def test_a_val_key_without_validation_warns_before_training_and_is_skipped(tmp_path, circles, make):
    X, y = circles
    callback = make(str(tmp_path / "best.npz"))
    model = _model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        watch, counts = _seen_before_each_epoch(caught)
        h = model.fit(X, y, epochs=3, callbacks=[watch, callback], verbose=0)
    # one warning, given before the first epoch trained; then the monitoring is skipped
    assert counts == [1, 1, 1] and len(h.history["loss"]) == 3
    assert caught[0].category is UserWarning
    message = str(caught[0].message)
    name = type(callback).__name__
    assert f"{name} monitors {callback.monitor!r}, which will not be in the epoch logs" in message
    assert "Validation does not run in this fit" in message
    assert "Available keys: ['acc', 'loss']" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("monitor", "closest"),
    [("val_los", "'val_loss'"), ("val_ac", "'val_acc'"), ("lost", "'loss'"), ("f1", None)],
)
def test_a_misspelled_monitor_warns_with_the_closest_keys(circles, monitor, closest):
    X, y = circles
    stop = C.EarlyStopping(monitor=monitor, patience=0)
    with pytest.warns(UserWarning) as caught:
        h = _model().fit(X, y, epochs=2, validation_split=0.2, callbacks=[stop], verbose=0)
    assert len(caught) == 1 and len(h.history["loss"]) == 2
    message = str(caught[0].message)
    assert f"EarlyStopping monitors {monitor!r}, which will not be in the epoch logs" in message
    if closest is None:  # no key is close: no guess
        assert "Did you mean" not in message
    else:
        assert f"Did you mean {closest}?" in message
    assert "Available keys: ['acc', 'loss', 'val_acc', 'val_loss']" in message


def test_a_key_missing_from_the_logs_without_a_declaration_warns_once_and_is_skipped():
    # outside fit (no params) nothing can be told before the first epoch: the first epoch
    # without the key warns, as in Keras, and the monitoring is skipped
    stop = C.EarlyStopping(monitor="val_loss", patience=0)
    stop.model = _model()
    stop.on_train_begin()
    with pytest.warns(UserWarning, match=r"monitors 'val_loss', which is not in the epoch logs"):
        stop.on_epoch_end(0, {"loss": 1.0})
    stop.on_epoch_end(1, {"loss": 2.0})  # warned once: filterwarnings=error would raise here
    assert not stop.model.stop_training


def test_keys_declared_by_earlier_callbacks_are_not_warned_about(circles):
    X, y = circles
    model = _model()
    model._snapshots = []
    stop = C.EarlyStopping(patience=0)
    h = model.fit(X, y, epochs=3, callbacks=[_Scripted([0.5, 0.6, 0.7]), stop], verbose=0)
    assert len(h.history["loss"]) == 2


# -- under data parallelism only rank 0 prints -------------------------------------------------


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_only_rank_zero_prints_the_messages_of_callbacks_run_on_every_rank(circles, capsys):
    from distributed_helpers import ThreadGroup

    X, y = circles

    def rank_fit(rank, comm):
        model = _model()
        stopped = []
        halve = C.LearningRateScheduler(lambda epoch, lr: lr / 2, verbose=1)
        stop = C.EarlyStopping("loss", patience=0, min_delta=1.0, verbose=1)
        model.fit(X, y, epochs=4, callbacks=[halve, stop], verbose=0, distributed=comm)
        stopped.append(stop.stopped_epoch)
        diverging = _model(lr=1e30)  # its loss becomes inf/NaN within the first epoch
        h = diverging.fit(
            X, y, epochs=3, callbacks=[C.TerminateOnNaN()], verbose=0, distributed=comm
        )
        return stopped, len(h.history["loss"])

    results = ThreadGroup(2).run(rank_fit)
    assert results[0] == results[1] == ([1], 1)  # every rank acted
    out = capsys.readouterr().out
    assert out.count("LearningRateScheduler setting learning rate to 0.005.") == 1
    assert out.count("LearningRateScheduler setting learning rate to 0.0025.") == 1
    assert out.count("Epoch 2: early stopping") == 1
    assert out.count("invalid loss") == 1


# -- every Keras hook at its moment (issue 21) -------------------------------------------------

_HOOKS_WITH_INDEX = {
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
}


class _Recorder(C.Callback):
    """Records every hook (but the on_batch_* aliases) as "hook" or "hook index"."""

    def __init__(self):
        self.events = []

    def _add(self, name, index=None):
        self.events.append(name if index is None else f"{name} {index}")


for _hook in C.HOOKS:
    if _hook in ("on_batch_begin", "on_batch_end"):
        continue
    if _hook in _HOOKS_WITH_INDEX:
        setattr(_Recorder, _hook, lambda self, i, logs=None, _h=_hook: self._add(_h, i))
    else:
        setattr(_Recorder, _hook, lambda self, logs=None, _h=_hook: self._add(_h))


def _keras_fit_order(epochs, train_batches, val_batches):
    """The hooks of a fit with validation, as Keras 3's trainers call them."""
    events = ["on_train_begin"]
    for e in range(epochs):
        events.append(f"on_epoch_begin {e}")
        for b in range(train_batches):
            events += [f"on_train_batch_begin {b}", f"on_train_batch_end {b}"]
        events.append("on_test_begin")  # fit's validation is an evaluate with its callbacks
        for b in range(val_batches):
            events += [f"on_test_batch_begin {b}", f"on_test_batch_end {b}"]
        events += ["on_test_end", f"on_epoch_end {e}"]
    return [*events, "on_train_end"]


def test_every_hook_in_keras_order_in_fit_evaluate_and_predict(backend, circles):
    from backprop.training import loop

    X, y = circles[0][:10], circles[1][:10]
    model = _model(backend=backend)
    rec = _Recorder()
    h = model.fit(X, y, epochs=2, batch_size=4, validation_data=(X[:3], y[:3]), callbacks=[rec],
                  verbose=0)  # fmt: skip
    assert rec.events == _keras_fit_order(2, 3, 1)
    assert h.params["engine"] in ("eager", "sharded")  # it watches the batches
    rec.events = []
    loop.evaluate(model, X, y, batch_size=4, callbacks=[rec])
    expected = ["on_test_begin"]
    for b in range(3):
        expected += [f"on_test_batch_begin {b}", f"on_test_batch_end {b}"]
    assert rec.events == [*expected, "on_test_end"]
    rec.events = []
    loop.predict(model, X, batch_size=6, callbacks=[rec])
    expected = ["on_predict_begin"]
    for b in range(2):
        expected += [f"on_predict_batch_begin {b}", f"on_predict_batch_end {b}"]
    assert rec.events == [*expected, "on_predict_end"]


def test_on_batch_begin_and_end_are_aliases_of_the_train_batch_hooks(backend, circles):
    X, y = circles[0][:10], circles[1][:10]
    events = []

    class Old(C.Callback):
        def on_batch_begin(self, batch, logs=None):
            events.append(f"begin {batch}")

        def on_batch_end(self, batch, logs=None):
            events.append(f"end {batch} {sorted(logs)}")

    _model(backend=backend).fit(X, y, epochs=1, batch_size=5, callbacks=[Old()], verbose=0)
    keys = "['acc', 'batch', 'loss', 'size']"
    assert events == ["begin 0", f"end 0 {keys}", "begin 1", f"end 1 {keys}"]


def test_hook_logs_of_evaluate_and_predict(circles):
    from backprop.training import loop

    X, y = circles[0][:10], circles[1][:10]
    model = _model(backend=None)
    seen = {}
    cb = C.LambdaCallback(
        on_test_batch_end=lambda b, logs: seen.setdefault("test_batch", []).append(dict(logs)),
        on_test_end=lambda logs: seen.setdefault("test_end", dict(logs)),
        on_predict_batch_end=lambda b, logs: seen.setdefault("outputs", []).append(logs["outputs"]),
    )
    result = loop.evaluate(model, X, y, callbacks=[cb])
    assert seen["test_end"] == result  # the final logs, as Keras
    assert seen["test_batch"] == [{"batch": 0, "size": 10, **result}]  # one batch: the total
    out = loop.predict(model, X, batch_size=6, callbacks=[cb])
    np.testing.assert_array_equal(np.concatenate(seen["outputs"]), out)


# -- batch logs: the running loss and metrics since the epoch began ----------------------------


def test_batch_logs_hold_the_running_loss_and_metrics(backend64, circles):
    X, y = circles[0][:50], circles[1][:50]
    layers = [Dense(8, "relu", input_dim=2, kernel_regularizer="l2"), Dense(1, "sigmoid")]
    model = bp.Sequential(layers, seed=0, backend=backend64, dtype="float64")
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.Adam(0.05), metrics=["acc"])
    starts, logs_seen = [], []
    cb = C.LambdaCallback(
        on_train_batch_begin=lambda b, logs: starts.append(model.get_weights()),
        on_train_batch_end=lambda b, logs: logs_seen.append(dict(logs)),
    )
    batch = 16
    model.fit(X, y, epochs=2, batch_size=batch, shuffle=False, callbacks=[cb], verbose=0)
    # the losses computed independently: each batch evaluated with the weights it started from
    judge = bp.Sequential(
        [Dense(8, "relu", input_dim=2, kernel_regularizer="l2"), Dense(1, "sigmoid")],
        dtype="float64",
    )
    judge.compile(loss="binary_crossentropy", metrics=["acc"])
    steps = 4
    for epoch in range(2):
        losses, accs, sizes = [], [], []
        for b in range(steps):
            i = epoch * steps + b
            judge.set_weights(starts[i])
            rows = slice(b * batch, (b + 1) * batch)
            result = judge.evaluate(X[rows], y[rows])
            losses.append(result["loss"])
            accs.append(result["acc"])
            sizes.append(len(X[rows]))
            w = np.array(sizes)
            logs = logs_seen[i]
            assert logs["batch"] == b and logs["size"] == sizes[-1]
            np.testing.assert_allclose(logs["loss"], np.dot(losses, w) / w.sum(), rtol=1e-12)
            np.testing.assert_allclose(logs["acc"], np.dot(accs, w) / w.sum(), rtol=1e-12)


# -- ReduceLROnPlateau ---------------------------------------------------------------------------


def test_reduce_lr_on_plateau_follows_a_scripted_val_loss(backend, circles):
    X, y = circles
    model = _model(backend=backend)
    model._snapshots = []
    script = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8]
    reduce = C.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.004)
    h = model.fit(X, y, epochs=9, batch_size=100, callbacks=[_Scripted(script), reduce],
                  verbose=0)  # fmt: skip
    # the rate each epoch trained with: halved after epochs 3 and 7 (two epochs without
    # improvement, the cooldown epoch not counted), then held at min_lr
    expected = [0.01] * 4 + [0.005] * 4 + [0.004]
    assert h.history["learning_rate"] == expected
    assert model.optimizer.learning_rate == 0.004


def test_reduce_lr_on_plateau_defaults_and_checks():
    r = C.ReduceLROnPlateau()
    assert (r.monitor, r.factor, r.patience, r.verbose, r.mode) == ("val_loss", 0.1, 10, 0, "auto")
    assert (r.min_delta, r.cooldown, r.min_lr) == (1e-4, 0, 0.0)
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        C.ReduceLROnPlateau(mode="up")


def test_reduce_lr_on_plateau_refuses_an_optimizer_driven_by_a_schedule(circles):
    X, y = circles
    model = _model()
    decay = bp.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.SGD(decay))
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau.*not settable"):
        model.fit(X, y, epochs=2, callbacks=[C.ReduceLROnPlateau("loss")], verbose=0)
    assert model.optimizer.iterations == 0


# -- CSVLogger -----------------------------------------------------------------------------------


def _rows(path, sep):
    import csv

    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_writes_epoch_then_sorted_keys(tmp_path, circles):
    X, y = circles
    path = tmp_path / "log.csv"
    h = _model().fit(X, y, epochs=3, batch_size=100, validation_split=0.2,
                     callbacks=[C.CSVLogger(path, separator=";")], verbose=0)  # fmt: skip
    rows = _rows(path, ";")
    assert rows[0] == ["epoch", "acc", "loss", "val_acc", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for e, row in enumerate(rows[1:]):
        assert [float(v) for v in row[1:]] == [h.history[k][e] for k in rows[0][1:]]
    # append: the header once, the new rows after the old; else the file starts again
    _model().fit(X, y, epochs=2, batch_size=100, validation_split=0.2,
                 callbacks=[C.CSVLogger(path, separator=";", append=True)], verbose=0)  # fmt: skip
    rows = _rows(path, ";")
    assert len(rows) == 6 and rows.count(rows[0]) == 1
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "0", "1"]
    _model().fit(X, y, epochs=1, batch_size=100, callbacks=[C.CSVLogger(path)], verbose=0)
    rows = _rows(path, ",")
    assert rows[0] == ["epoch", "acc", "loss"] and len(rows) == 2


# -- BackupAndRestore ----------------------------------------------------------------------------


class _Interrupt(C.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"interrupted at epoch {epoch}")


def _resumable(backend):
    from backprop.layers import BatchNormalization

    layers = [Dense(8, "relu", input_dim=2), BatchNormalization(), Dense(1, "sigmoid")]
    model = bp.Sequential(layers, seed=0, backend=backend, dtype="float64")
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.Adam(0.01), metrics=["acc"])
    return model


@pytest.mark.parametrize("backend_name", ["numpy", "jax"])
def test_backup_and_restore_resumes_to_the_last_bit(tmp_path, circles, backend_name):
    pytest.importorskip(backend_name)
    X, y = circles
    fit = dict(epochs=5, batch_size=64, validation_split=0.1, verbose=0)
    whole = _resumable(backend_name)
    h_whole = whole.fit(X, y, **fit)

    folder = tmp_path / "backup"
    first = _resumable(backend_name)
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, y, **fit, callbacks=[C.BackupAndRestore(folder), _Interrupt(3)])
    assert folder.is_dir()
    # a new process: the same model built afresh, the same fit with the same callback
    again = _resumable(backend_name)
    epochs = []
    watch = C.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))
    h = again.fit(X, y, **fit, callbacks=[C.BackupAndRestore(folder), watch])
    assert epochs == [3, 4]
    assert h.history == {k: v[3:] for k, v in h_whole.history.items()}
    _assert_weights_equal(again.get_weights(), whole.get_weights())
    assert again.optimizer.iterations == whole.optimizer.iterations
    for a, b in zip(again.optimizer.state, whole.optimizer.state, strict=True):
        for k in a:
            np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
    assert again.streams.get_state() == whole.streams.get_state()
    assert not folder.exists()  # delete_checkpoint=True: gone once the fit completed


def test_backup_and_restore_arguments_and_kept_checkpoint(tmp_path, circles):
    X, y = circles
    with pytest.raises(ValueError, match="save_freq"):
        C.BackupAndRestore(tmp_path, save_freq="batch")
    with pytest.raises(ValueError, match="backup_dir"):
        C.BackupAndRestore("")
    folder = tmp_path / "keep"
    model = _model()
    model.fit(X, y, epochs=2, batch_size=100, verbose=0,
              callbacks=[C.BackupAndRestore(folder, delete_checkpoint=False)])  # fmt: skip
    assert folder.is_dir()
    # the backup says the fit is complete: a second fit trains no more epoch
    h = _model().fit(X, y, epochs=2, batch_size=100, verbose=0,
                     callbacks=[C.BackupAndRestore(folder, delete_checkpoint=False)])  # fmt: skip
    assert h.history == {}
    # save_freq=k: a backup every k batches as well
    calls = []
    every = C.BackupAndRestore(tmp_path / "often", save_freq=1)
    every._save = lambda: calls.append(1)
    _model().fit(X, y, epochs=1, batch_size=100, verbose=0, callbacks=[every])
    assert len(calls) == 2


def _backed_up(tmp_path, circles, epochs=2):
    """A folder holding the backup of a finished two-epoch fit of ``_model()``."""
    X, y = circles
    folder = tmp_path / "kept"
    _model().fit(X, y, epochs=epochs, batch_size=100, verbose=0,
                 callbacks=[C.BackupAndRestore(folder, delete_checkpoint=False)])  # fmt: skip
    return folder


def test_backup_is_a_model_file_and_a_json_note_of_the_epoch(tmp_path, circles):
    folder = _backed_up(tmp_path, circles)
    assert sorted(p.name for p in folder.iterdir()) == ["backup-2-0.npz", "state.json"]
    note = json.loads((folder / "state.json").read_text())
    assert note["epoch"] == 2 and note["model_file"] == "backup-2-0.npz"
    # the model file is the library's own format: bp.load reads it
    saved = bp.load(folder / "backup-2-0.npz")
    assert saved.optimizer.iterations == 4


def test_a_damaged_backup_is_refused_with_its_name(tmp_path, circles):
    X, y = circles
    folder = _backed_up(tmp_path, circles)
    model_file = folder / "backup-2-0.npz"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"backup.*damaged"):
        _model().fit(X, y, epochs=3, verbose=0, callbacks=[C.BackupAndRestore(folder)])
    (folder / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"state\.json.*damaged"):
        _model().fit(X, y, epochs=3, verbose=0, callbacks=[C.BackupAndRestore(folder)])
    model_file.unlink()
    (folder / "state.json").write_text(json.dumps(
        {"format": "backprop-backup", "version": 2, "epoch": 2, "model_file": model_file.name}
    ))  # fmt: skip
    with pytest.raises(ValueError, match=r"backup-2-0\.npz.*missing"):
        _model().fit(X, y, epochs=3, verbose=0, callbacks=[C.BackupAndRestore(folder)])


def test_the_backup_of_another_model_or_optimizer_is_refused(tmp_path, circles):
    X, y = circles
    folder = _backed_up(tmp_path, circles)
    other = bp.Sequential([Dense(4, "relu", input_dim=2), Dense(1, "sigmoid")], seed=0)
    other.compile(loss="binary_crossentropy", optimizer="adam")
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"another architecture.*another backup_dir"):
        other.fit(X, y, epochs=3, verbose=0, callbacks=[C.BackupAndRestore(folder)])
    for a, b in zip(other.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    sgd = _model()
    sgd.compile(loss="binary_crossentropy", optimizer=bp.optimizers.SGD(0.1, momentum=0.9))
    with pytest.raises(ValueError, match=r"'adam'.*'sgd'.*another backup_dir"):
        sgd.fit(X, y, epochs=3, verbose=0, callbacks=[C.BackupAndRestore(folder)])


def test_a_folder_of_other_files_is_not_taken_for_a_backup(tmp_path, circles):
    X, y = circles
    (tmp_path / "state.json").write_text(json.dumps({"epochs": 3}))
    with pytest.raises(ValueError, match="not a BackupAndRestore backup"):
        _model().fit(X, y, epochs=1, verbose=0, callbacks=[C.BackupAndRestore(tmp_path)])


# -- LambdaCallback: every hook ------------------------------------------------------------------


def test_lambda_callback_takes_every_hook(circles):
    X, y = circles[0][:10], circles[1][:10]
    called = []

    def hook(name):
        return lambda *args: called.append(name)

    cb = C.LambdaCallback(**{name: hook(name) for name in C.HOOKS})
    model = _model()
    model.fit(X, y, epochs=1, batch_size=10, validation_data=(X, y), callbacks=[cb], verbose=0)
    model.evaluate(X, y, callbacks=[cb])
    model.predict(X, callbacks=[cb])
    # the aliases on_batch_* are called by the train-batch hooks of the base class only:
    # given both, Keras calls the on_train_batch_* functions
    assert set(called) == set(C.HOOKS) - {"on_batch_begin", "on_batch_end"}
    only_alias = C.LambdaCallback(on_batch_begin=hook("alias"))
    model.fit(X, y, epochs=1, batch_size=5, callbacks=[only_alias], verbose=0)
    assert called.count("alias") == 2
    with pytest.raises(TypeError, match="on_test_end must be a function"):
        C.LambdaCallback(on_test_end=3)


# -- a hook name that is not a hook --------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "hook"),
    [
        ("on_epoch_ends", "on_epoch_end"),
        ("on_train_batch_ended", "on_train_batch_end"),
        ("on_predict_begins", "on_predict_begin"),
    ],
)
def test_a_misspelled_hook_is_warned_at_class_creation_with_the_closest_hook(typo, hook):
    with pytest.warns(UserWarning, match=f"{typo}.*never called.*'{hook}'") as caught:
        type("Mine", (C.Callback,), {typo: lambda self, *args: None})
    assert caught[0].filename == __file__  # the warning points at the class statement
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Fine(C.Callback):
            def on_epoch_end(self, epoch, logs=None):
                pass

            def other(self):
                pass


# -- mode="auto" follows the direction of the compiled metric (Keras 3) ------------------------


def _directed_model():
    from backprop import metrics as M

    model = _model()
    metrics = [
        M.F1Score(average="macro"),
        M.BinaryAccuracy(name="ba"),
        M.Recall(top_k=1, name="rk"),
    ]
    metrics += [M.AUC(curve="PR", name="prauc"), M.MeanAbsoluteError(name="abs_err")]
    metrics += [M.MeanSquaredError(name="auc_sq")]  # an "auc" in a name to minimise
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.Adam(0.01), metrics=metrics)
    return model


@pytest.mark.parametrize(
    ("key", "best"),
    [
        ("val_f1_score", 2),
        ("val_ba", 2),
        ("rk", 2),
        ("prauc", 2),
        ("abs_err", 0),
        ("val_auc_sq", 0),
    ],
)
def test_auto_mode_follows_the_direction_of_the_compiled_metric(tmp_path, key, best):
    values = [0.5, 0.6, 0.7]  # rising: the last epoch is best for "up" metrics, the first else
    stop = C.EarlyStopping(monitor=key, patience=5)
    checkpoint = C.ModelCheckpoint(str(tmp_path / "m.npz"), monitor=key, save_best_only=True)
    plateau = C.ReduceLROnPlateau(monitor=key, patience=1, factor=0.5)
    model = _directed_model()
    callbacks = C.CallbackList([stop, checkpoint, plateau], model, _params(do_validation=True))
    callbacks.on_train_begin()
    for epoch, value in enumerate(values):
        callbacks.on_epoch_end(epoch, {key: value})
    assert (stop.best_epoch, stop.best, checkpoint.best) == (best, values[best], values[best])
    # rising values are a plateau only for a metric to minimise
    assert (float(model.optimizer.learning_rate) < 0.01) == (best == 0)


def test_auto_mode_refuses_what_it_cannot_tell(tmp_path):
    from backprop import metrics as M

    class Undirected(M.MeanAbsoluteError):
        direction = None
        name = "custom"

    class Adds(C.Callback):
        log_keys = ("score",)

    model = _model()
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=[Undirected()])
    for key in ("val_custom", "score"):  # a metric without direction, a key no metric gives
        for callback in (
            C.EarlyStopping(monitor=key),
            C.ModelCheckpoint(str(tmp_path / "m.npz"), monitor=key, save_best_only=True),
            C.ReduceLROnPlateau(monitor=key),
        ):
            callbacks = C.CallbackList([Adds(), callback], model, _params(do_validation=True))
            with pytest.raises(ValueError, match=f"monitors '{key}'.*mode='max' or mode='min'"):
                callbacks.on_train_begin()
    stop = C.EarlyStopping(monitor="val_custom", mode="max")  # told: accepted
    C.CallbackList([stop], model, _params(do_validation=True)).on_train_begin()
    assert stop.mode == "max"
    stop = C.EarlyStopping(monitor="loss")
    C.CallbackList([stop], model, _params(do_validation=True)).on_train_begin()
    assert stop.mode == "min"


# -- file paths told before training -------------------------------------------------------------


def _fit_refused(callback, error, match, circles):
    X, y = circles
    model = _model()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(X, y, epochs=2, verbose=0, callbacks=[callback])
    for a, b in zip(before, model.get_weights(), strict=True):  # refused before any training
        np.testing.assert_array_equal(a, b)


def test_csv_logger_paths_are_checked_before_training(tmp_path, circles):
    (tmp_path / "afile").write_text("x")
    cases = [
        (tmp_path, IsADirectoryError, "is a folder, not a file. Give a file name inside it"),
        (
            tmp_path / "nodir" / "x.csv",
            FileNotFoundError,
            r"folder .*nodir does not exist\. Create",
        ),
        (tmp_path / "afile" / "x.csv", NotADirectoryError, r"afile is a file, not a folder"),
    ]
    for path, error, match in cases:
        _fit_refused(
            C.CSVLogger(path),
            error,
            f"CSVLogger cannot write to {re.escape(str(path))}: .*{match}",
            circles,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_backup_and_restore_refuses_a_file_for_its_folder(tmp_path, circles):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"afile is a file, not a folder"):
        C.BackupAndRestore(tmp_path / "afile")
    later = C.BackupAndRestore(tmp_path / "later")
    (tmp_path / "later").write_text("made after the callback")
    _fit_refused(later, NotADirectoryError, r"later is a file, not a folder", circles)
    with pytest.raises(NotADirectoryError, match=r"afile is a file, not a folder"):
        C.BackupAndRestore(tmp_path / "afile" / "sub")
    assert (tmp_path / "afile").read_text() == "x"
