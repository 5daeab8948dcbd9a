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
