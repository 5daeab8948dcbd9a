"""The training package: the engine a fit runs on, and the engines' agreement."""

import numpy as np
import pytest
from conftest import HAS_JAX

import backprop as bp
from backprop.distributed import SingleProcess
from backprop.layers import Dense, Dropout
from backprop.training import base, choose, compiled, eager, sharded


def _net(backend="numpy", dropout=False, clipnorm=None, dtype="float64"):
    layers = [Dense(6, "relu", input_dim=2), Dense(4, "tanh"), Dense(1, "sigmoid")]
    if dropout:
        layers.insert(1, Dropout(0.2))
    model = bp.Sequential(layers, backend=backend, seed=3, dtype=dtype)
    model.compile("binary_crossentropy", bp.optimizers.Adam(clipnorm=clipnorm), ["accuracy"])
    return model


class _Watcher(bp.callbacks.Callback):
    def on_batch_end(self, batch, logs=None):
        pass


def test_the_engine_of_a_fit_and_why(backend):
    model = _net(backend, dtype="float32")
    # a data-parallel fit steps on its shard of each batch and sums the gradients
    assert isinstance(choose.choose_engine(model, [], SingleProcess(), 32), sharded.Sharded)
    # a callback reading the model after each batch needs each step run when it is called
    for watcher in (_Watcher(), bp.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: None)):
        assert type(choose.choose_engine(model, [watcher], None, 32)) is eager.Eager
    # the progress bar and History read only the batch index: they keep the compiled epoch
    quiet = [bp.callbacks.History(), bp.callbacks.ProgbarLogger(1), bp.callbacks.EarlyStopping()]
    engine = choose.choose_engine(model, quiet, None, 32)
    expected = compiled.Compiled if backend.name == "jax" else eager.Eager
    assert type(engine) is expected
    # what the program cannot hold: host-drawn dropout masks, per-array clipping
    dropout = _net(backend, dropout=True, dtype="float32")
    clipped = _net(backend, clipnorm=1.0, dtype="float32")
    for other in (dropout, clipped):
        assert type(choose.choose_engine(other, [], None, 32)) is eager.Eager


def test_watches_batches():
    assert not base.watches_batches(bp.callbacks.History())
    assert not base.watches_batches(bp.callbacks.ProgbarLogger(1))
    assert not base.watches_batches(
        bp.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: None)
    )
    assert base.watches_batches(bp.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: None))
    assert base.watches_batches(_Watcher())


def _run(engine, backend, circles, batch_size=48):
    """One epoch of ``engine`` (no shuffle), through the engine interface."""
    model = _net(backend)
    X, y = circles
    Xd, Y = model._prepare(X, y)
    cb = bp.callbacks.CallbackList([], model, {})
    steps = -(-Xd.shape[0] // batch_size)
    engine.begin(model, Xd, Y, None, {})
    result = engine.run_epoch(model, Xd, Y, None, batch_size, steps, cb)
    return model, result


def test_every_engine_gives_the_eager_numbers(backend64, circles, monkeypatch):
    """The same epoch through each engine: the same sums (loss, metric, flags) and weights."""
    ref_model, ref = _run(eager.Eager(), backend64, circles)
    assert isinstance(ref, base.Epoch) and ref.n == 200 and ref.n_flags == 1
    assert ref.outputs[3] == [48, 48, 48, 48, 8]
    engines = {"sharded, one rank": lambda m: sharded.Sharded(SingleProcess())}
    if backend64.name != "jax":
        # the program JAX compiles, run uncompiled elsewhere: standard Array API code
        monkeypatch.setattr(bp.Backend, "compile", lambda self, fn: fn)
    engines["compiled program"] = lambda m: compiled.Compiled(compiled.program(m, 48))
    for name, make in engines.items():
        model = _net(backend64)
        X, y = circles
        Xd, Y = model._prepare(X, y)
        cb = bp.callbacks.CallbackList([], model, {})
        engine = make(model)
        engine.begin(
            model,
            Xd,
            Y,
            None,
            {"batch_size": 48, "epochs": 1, "initial_epoch": 0, "shuffle": False},
        )
        result = engine.run_epoch(model, Xd, Y, None, 48, 5, cb)
        np.testing.assert_allclose(
            bp.to_numpy(result.sums), bp.to_numpy(ref.sums), rtol=1e-12, err_msg=name
        )
        for a, b in zip(model.get_weights(), ref_model.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=name)


def test_the_engine_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        base.Engine().run_epoch(None, None, None, None, 1, 1, None)


@pytest.mark.skipif(not HAS_JAX, reason="needs jax")
def test_compile_drops_the_compiled_program(circles):
    X, y = circles
    model = _net("jax")
    model.fit(X, y, epochs=1, verbose=0)
    program = model._compiled[1]
    assert program is not None
    model.fit(X, y, epochs=1, verbose=0)
    assert model._compiled[1] is program  # reused while nothing changed
    model.compile(model.loss, model.optimizer, ["mae"])
    assert model._compiled is None
    h = model.fit(X, y, epochs=1, verbose=0)
    assert model._compiled[1] is not program and list(h.history) == ["loss", "mae"]


# -- BatchNormalization on a batch of one row ------------------------------------------------


def _bn_net(trainable=True):
    model = bp.Sequential(
        [
            Dense(4, input_dim=2),
            bp.layers.BatchNormalization(name="bn_one_row", trainable=trainable),
            Dense(1, "sigmoid"),
        ],
        seed=0,
    )
    model.compile("binary_crossentropy", "sgd")
    return model


@pytest.mark.parametrize(
    ("n", "batch_size", "validation_split", "what"),
    [
        (20, 1, 0.0, "batch_size=1"),  # every batch
        (21, 4, 0.0, "21 rows"),  # the last batch of 21 rows in batches of 4
        (26, 4, 0.2, "21 rows"),  # of the rows left after the validation split
    ],
)
def test_batchnorm_on_a_one_row_batch_warns_once_naming_the_layer_and_remedy(
    n, batch_size, validation_split, what
):
    """Over one row the batch variance is 0: each output is beta, nothing below it learns."""
    X, y = np.random.default_rng(0).normal(size=(n, 2)), np.arange(n) % 2
    model = _bn_net()
    with pytest.warns(UserWarning, match="bn_one_row") as caught:
        model.fit(X, y, epochs=2, batch_size=batch_size, validation_split=validation_split,
                  verbose=0)  # fmt: skip
    assert len([w for w in caught if "one row" in str(w.message)]) == 1  # once per fit
    message = str(caught[0].message)
    assert what in message and "LayerNormalization" in message
    assert "batch_size=" in message  # a batch size whose last batch has more than one row
    # the suggested batch size trains without the warning
    suggested = int(message.split("e.g. batch_size=")[1].split(")")[0])
    assert suggested > 1 and (n - int(n * validation_split)) % suggested != 1
    model.fit(X, y, epochs=1, batch_size=suggested, validation_split=validation_split, verbose=0)


def test_batchnorm_without_a_one_row_batch_or_frozen_does_not_warn():
    X, y = np.random.default_rng(0).normal(size=(21, 2)), np.arange(21) % 2
    _bn_net().fit(X, y, epochs=1, batch_size=7, verbose=0)  # three batches of 7
    # a frozen layer normalises with its moving statistics: one row is fine
    _bn_net(trainable=False).fit(X, y, epochs=1, batch_size=1, verbose=0)
    _net().fit(X, y, epochs=1, batch_size=1, verbose=0)  # no BatchNormalization


# -- which engine ran, and why ---------------------------------------------------------------


def test_the_reason_of_each_choice(backend):
    model = _net(backend, dtype="float32")
    why = choose.choose_engine(model, [], None, 32).reason
    if backend.name == "jax":
        assert "jax.jit" in why
        # what the compiled program cannot hold is named
        dropout = _net(backend, dropout=True, dtype="float32")
        assert "Dropout" in choose.choose_engine(dropout, [], None, 32).reason
        clipped = _net(backend, clipnorm=1.0, dtype="float32")
        assert "clipnorm" in choose.choose_engine(clipped, [], None, 32).reason
    else:
        assert f"backend {backend.name}" in why and "neither compiles" in why
    watched = choose.choose_engine(model, [_Watcher()], None, 32).reason
    assert "callback _Watcher looks at the model after each batch" in watched
    assert "over 1 rank" in choose.choose_engine(model, [], SingleProcess(), 32).reason


def test_history_params_name_the_engine_and_why():
    X, y = np.random.default_rng(0).normal(size=(16, 2)), np.arange(16) % 2
    for kwargs, engine in [
        ({}, "eager"),
        ({"callbacks": [_Watcher()]}, "eager"),
        ({"distributed": SingleProcess()}, "sharded"),
    ]:
        model = _net()
        h = model.fit(X, y, epochs=1, batch_size=8, verbose=0, **kwargs)
        assert h.params["engine"] == engine
        chosen = choose.choose_engine(
            model, kwargs.get("callbacks", []), kwargs.get("distributed"), 8
        )
        assert h.params["engine_reason"] == chosen.reason != ""


def test_verbose_1_prints_the_engine_and_verbose_0_prints_nothing(circles, capsys):
    X, y = circles
    model = _net()
    model.fit(X, y, epochs=1, verbose=1)
    first = capsys.readouterr().out.splitlines()[0]
    reason = model.history.params["engine_reason"]
    assert first == f"engine: eager ({reason})"
    model.fit(X, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_describe_engines_says_what_each_backend_runs():
    described = choose.describe_engines()
    assert set(described) == set(bp.available_backends())
    assert described["numpy"].startswith("eager")
    if HAS_JAX:
        assert described["jax"].startswith("compiled")
    assert choose.describe_engines(["numpy"]) == {"numpy": described["numpy"]}


def test_only_train_batch_hooks_keep_the_steps_eager(backend):
    """The test and predict batch hooks never slow a fit down; a train-batch one does."""
    model = _net(backend, dtype="float32")
    fast = compiled.Compiled if backend.name == "jax" else eager.Eager
    cb = bp.callbacks.LambdaCallback
    for quiet in (
        cb(on_test_batch_end=lambda b, logs: None),
        cb(on_predict_batch_begin=lambda b, logs: None),
        cb(on_test_begin=lambda logs: None),
        bp.callbacks.BackupAndRestore("unused"),  # a backup per epoch
        bp.callbacks.ReduceLROnPlateau(),
        bp.callbacks.CSVLogger("unused.csv"),
    ):
        assert type(choose.choose_engine(model, [quiet], None, 32)) is fast, quiet
    for watcher in (
        cb(on_train_batch_begin=lambda b, logs: None),
        cb(on_train_batch_end=lambda b, logs: None),
        cb(on_batch_begin=lambda b, logs: None),
        bp.callbacks.BackupAndRestore("unused", save_freq=3),  # a backup every 3 batches
    ):
        assert type(choose.choose_engine(model, [watcher], None, 32)) is eager.Eager, watcher


# -- in-memory data: each batch gathered by index, never the whole set (issue 23) ------------


def _reference_fit(backend, X, y, epochs, batch_size, dtype="float64"):
    """What a seeded shuffled fit computes, written out: each epoch gathers the whole set in
    the shuffled order (what the engines did before issue 23), then steps over its slices."""
    model = _net(backend, dtype=dtype)
    Xd, Y = model._prepare(X, y)
    xp, b, n = model.xp, model.backend, Xd.shape[0]
    losses = []
    for _ in range(epochs):
        order = b.asarray(model.streams.permutation(n), b.int_dtype)
        Xo, Yo = xp.take(Xd, order, axis=0), xp.take(Y, order, axis=0)
        total = 0.0
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            loss, _ = model.train_step(Xo[lo:hi, ...], Yo[lo:hi, ...])
            total += float(bp.to_numpy(loss)) * (hi - lo)
        losses.append(total / n)
    return model, losses


@pytest.mark.parametrize("engine", ["default", "eager", "sharded", "captured"])
def test_a_seeded_shuffled_fit_equals_the_loop_that_gathers_the_whole_order(
    backend64, circles, engine, request
):
    """Gathering each batch by index trains on the very rows the whole-order copy gave."""
    X, y = circles
    ref, losses = _reference_fit(backend64, X, y, epochs=3, batch_size=48)
    kwargs = {}
    if engine == "eager":
        kwargs["callbacks"] = [_Watcher()]
    elif engine == "sharded":
        kwargs["distributed"] = SingleProcess()
    elif engine == "captured":
        if backend64.name == "jax":
            pytest.skip("JAX's arrays are immutable: its fits compile, they never record")
        request.getfixturevalue("recorder")
    model = _net(backend64)
    h = model.fit(X, y, epochs=3, batch_size=48, verbose=0, **kwargs)
    if engine == "captured":
        assert h.params["engine"] == "captured"
    # the step-by-step engines run the reference's very operations: the same bits
    exact = h.params["engine"] != "compiled"
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        if exact:
            np.testing.assert_array_equal(a, b)
        else:  # one XLA program: its fusions may round differently
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h.history["loss"], losses, rtol=1e-12)


def _traced_peak(call):
    """Peak bytes NumPy (and Python) allocated during ``call()`` above what was held before."""
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("engine", ["eager", "watched", "sharded", "compiled", "captured"])
def test_a_shuffled_fit_makes_no_copy_of_the_training_set(engine, monkeypatch, request):
    """Each batch is gathered by index: the transient memory stays far below the data's."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 400)).astype(np.float32)  # 7.6 MiB
    y = (X[:, 0] > 0).astype(np.int64)
    kwargs = {}
    if engine == "watched":
        kwargs["callbacks"] = [_Watcher()]
    elif engine == "sharded":
        kwargs["distributed"] = SingleProcess()
    elif engine == "compiled":  # the program JAX compiles, run uncompiled on NumPy
        monkeypatch.setattr(bp.Backend, "compile", lambda self, fn: fn)
    elif engine == "captured":
        request.getfixturevalue("recorder")
    model = bp.Sequential([Dense(8, "relu", input_dim=400), Dense(1, "sigmoid")], seed=0,
                          dtype="float32")  # fmt: skip
    model.compile("binary_crossentropy", "adam")
    model.fit(X[:100], y[:100], epochs=1, batch_size=50, verbose=0, **kwargs)  # built
    peak = _traced_peak(lambda: model.fit(X, y, epochs=1, batch_size=50, verbose=0, **kwargs))
    assert model.history.params["engine"] == {"watched": "eager"}.get(engine, engine)
    assert peak <= 0.1 * X.nbytes, f"{peak / X.nbytes:.3f}x the data"


# -- Keras 3's keywords of fit, evaluate and predict (issue 21) ------------------------------


def _xy(n=64, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


class _Tests(bp.callbacks.Callback):
    """Records the epochs whose end came after a validation (on_test_begin), and the rows of
    each validation batch."""

    def on_train_begin(self, logs=None):
        self.validated, self.sizes, self.epoch = [], [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_test_begin(self, logs=None):
        self.validated.append(self.epoch)

    def on_test_batch_end(self, batch, logs=None):
        self.sizes.append(logs["size"])


@pytest.mark.parametrize(
    ("freq", "epochs"), [(1, [0, 1, 2, 3, 4, 5]), (2, [1, 3, 5]), ([1, 4, 6], [0, 3, 5])]
)
def test_validation_freq_validates_on_those_epochs_only(freq, epochs):
    X, y = _xy()
    rec = _Tests()
    h = _net().fit(X, y, epochs=6, validation_split=0.25, validation_freq=freq, callbacks=[rec],
                   verbose=0)  # fmt: skip
    assert rec.validated == epochs
    assert len(h.history["val_loss"]) == len(epochs) and len(h.history["loss"]) == 6
    # as Keras: the epochs without validation have no val_* keys in their logs


@pytest.mark.parametrize("freq", [0, -1, 1.5, "2", [0, 2], [], None])
def test_validation_freq_refuses_what_is_not_an_epoch(freq):
    X, y = _xy()
    with pytest.raises((TypeError, ValueError), match="validation_freq"):
        _net().fit(X, y, validation_split=0.25, validation_freq=freq, verbose=0)


def test_validation_batch_size_sets_the_validation_batches():
    X, y = _xy()
    rec = _Tests()
    model = _net()
    model.fit(X, y, epochs=1, validation_split=0.25, validation_batch_size=5, callbacks=[rec],
              verbose=0)  # fmt: skip
    assert rec.sizes == [5, 5, 5, 1]  # 16 validation rows
    rec = _Tests()
    model.fit(X, y, epochs=1, validation_split=0.25, callbacks=[rec], verbose=0)
    assert rec.sizes == [16]  # unset: the validation rows in one batch, as before
    with pytest.raises(ValueError, match="validation_batch_size"):
        model.fit(X, y, validation_split=0.25, validation_batch_size=0, verbose=0)


def test_verbose_auto_is_1(capsys):
    X, y = _xy()
    model = _net()
    model.fit(X, y, epochs=1, verbose="auto")
    assert capsys.readouterr().out.startswith("engine: ")
    model.evaluate(X, y, verbose="auto")
    assert "loss: " in capsys.readouterr().out
    model.predict(X, verbose="auto")
    assert "1/1 [" in capsys.readouterr().out  # the progress bar counts the batches
    model.predict(X, batch_size=10, verbose=1)
    assert "7/7 [" in capsys.readouterr().out
    for call in (
        lambda: model.fit(X, y, verbose="yes"),
        lambda: model.evaluate(X, y, verbose=3),
        lambda: model.predict(X, verbose="loud"),
    ):
        with pytest.raises(ValueError, match=r"verbose must be 0, 1 or 2 \(or 'auto'"):
            call()


def test_predict_verbose_0_prints_nothing(capsys):
    X, _ = _xy()
    _net().predict(X, verbose=0)
    _net().predict(X)
    assert capsys.readouterr().out == ""


def test_evaluate_return_dict():
    X, y = _xy()
    model = _net()
    result = model.evaluate(X, y)
    assert result == model.evaluate(X, y, return_dict=True)
    assert list(result) == ["loss", "accuracy"]
    # Keras's list: the loss, then the metrics in their order
    assert model.evaluate(X, y, return_dict=False) == [result["loss"], result["accuracy"]]
    plain = bp.Sequential([Dense(1, input_dim=2)], seed=0)
    plain.compile("mse", "sgd")
    loss = plain.evaluate(X, y, return_dict=False)  # no metrics: the loss alone, a float
    assert isinstance(loss, float) and loss == plain.evaluate(X, y)["loss"]
    with pytest.raises(TypeError, match="return_dict"):
        model.evaluate(X, y, return_dict="yes")


def test_predict_batch_size_none_runs_batches_of_1024(backend):
    """The default batch bounds predict's memory: the outputs equal one batch's."""
    X, _ = _xy(2500)
    model = _net(backend, dtype="float32")
    sizes = []
    cb = bp.callbacks.LambdaCallback(
        on_predict_batch_end=lambda batch, logs: sizes.append(logs["outputs"].shape[0])
    )
    out = model.predict(X, callbacks=[cb])
    assert sizes == [1024, 1024, 452]
    whole = model.predict(X, batch_size=2500)
    np.testing.assert_allclose(bp.to_numpy(out), bp.to_numpy(whole), rtol=1e-6)


def test_predict_memory_stays_below_a_tenth_of_the_data():
    X = np.random.default_rng(0).normal(size=(20000, 400)).astype(np.float32)  # 30 MiB
    model = bp.Sequential([Dense(32, "relu", input_dim=400), Dense(10, "softmax")], seed=0,
                          dtype="float32")  # fmt: skip
    model.predict(X[:10])
    assert _traced_peak(lambda: model.predict(X)) <= 0.1 * X.nbytes
