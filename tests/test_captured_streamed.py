"""The captured engine on a store read by rows: batches copied into buffers the recording holds.

A memmap's batches come through the prefetcher as for the eager streamed engine; each is copied
into fixed device arrays (``batch_size`` rows of x and of the targets) and the step recorded
once per batch shape replays on them. On CPU the recording is the stand-in of
``tests/test_captured.py`` (the ``recorder`` fixture): the step runs once and is its own replay,
so everything but the CUDA graph runs here, including that a replay reads only the buffers.

``fit`` asks :func:`~backprop.training.streamed_sharded.streamed_engine` for its engine; the
tests hand it the model and callbacks (``_wire``) as the loop is to.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop.training import captured_streamed as _cs
from backprop.training import loop as _loop
from backprop.training.streamed import Streamed
from backprop.training.streamed_sharded import streamed_engine

HAS_TORCH = importlib.util.find_spec("torch") is not None
CPU = ["numpy", "array_api_strict", "array_api_strict:device1"] + (["torch"] * HAS_TORCH)


def _gpu_specs() -> list:
    specs = []
    try:
        bp.backend.resolve("cupy")
        specs.append("cupy")
    except Exception:
        pass
    if HAS_TORCH:
        import torch

        if torch.cuda.is_available():
            specs.append("torch:cuda")
    return [pytest.param(s, marks=pytest.mark.gpu) for s in specs]


GPU = _gpu_specs()


def _model(spec="numpy", capture=True, opt="adam", loss="binary_crossentropy", k=1, bn=True):
    name, _, device = spec.partition(":")
    out = "sigmoid" if k == 1 else "softmax"
    layers = [bp.layers.Dense(6, "relu", input_dim=3)]
    layers += [bp.layers.BatchNormalization()] if bn else []
    layers += [
        bp.layers.Dense(5, "relu", kernel_regularizer=bp.regularizers.L2(1e-3)),
        bp.layers.Dense(k, out),
    ]
    model = bp.Sequential(
        layers, backend=name, device=device or None, dtype="float64", seed=3, capture=capture
    )
    model.compile(loss, opt, ["accuracy"])
    return model


def _data(n, k=1):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(int) if k == 1 else rng.integers(0, k, n)
    return X, y


def _memmap(tmp_path, a, name="X"):
    path = tmp_path / f"{name}.npy"
    m = np.lib.format.open_memmap(path, mode="w+", dtype=a.dtype, shape=a.shape)
    m[...] = a
    m.flush()
    del m
    return np.load(path, mmap_mode="r")


def _wire(monkeypatch, model, callbacks=()):
    """``fit``'s engine of a store as the loop is to ask for it: with the model and callbacks."""
    monkeypatch.setattr(
        _loop,
        "streamed_engine",
        lambda comm, *args, **kwargs: streamed_engine(comm, model, list(callbacks)),
    )


def _same(a, b, rtol=1e-12):
    for p, q in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=rtol, atol=1e-12)
    assert a.history.history.keys() == b.history.history.keys()
    for key, values in a.history.history.items():
        np.testing.assert_allclose(b.history.history[key], values, rtol=rtol, err_msg=key)


@pytest.mark.parametrize("spec", CPU)
@pytest.mark.parametrize(("n", "batch"), [(103, 16), (96, 16), (10, 32)])
def test_captured_streamed_steps_equal_the_eager_streamed_steps(
    recorder, monkeypatch, tmp_path, spec, n, batch
):
    """Short last batch, batches that divide the data, one batch larger than the data.

    One recording per batch shape for the whole fit (three epochs), none per step.
    """
    X, y = _data(n)
    Xm = _memmap(tmp_path, X)
    eager, rec = _model(spec, capture=False), _model(spec)
    h_eager = eager.fit(Xm, y, epochs=3, batch_size=batch, verbose=0)
    _wire(monkeypatch, rec)
    h = rec.fit(Xm, y, epochs=3, batch_size=batch, verbose=0)
    assert h_eager.params["engine"] == "streamed"
    assert h.params["engine"] == "captured streamed"
    _same(eager, rec)
    assert len(recorder) == len({batch if n >= batch else n, n % batch or batch})


@pytest.mark.parametrize("spec", CPU)
def test_captured_streamed_equals_the_in_memory_captured_fit(recorder, monkeypatch, tmp_path, spec):
    """The same seeded order and the same recorded step: the in-memory captured fit's numbers."""
    X, y = _data(90, k=3)
    kwargs = dict(epochs=3, batch_size=16, verbose=0, validation_split=0.2)
    mem = _model(spec, k=3, loss="sparse_categorical_crossentropy")
    mem.fit(X, y, **kwargs)
    assert mem.history.params["engine"] == "captured"
    recorded = len(recorder)
    rec = _model(spec, k=3, loss="sparse_categorical_crossentropy")
    _wire(monkeypatch, rec)
    rec.fit(_memmap(tmp_path, X), _memmap(tmp_path, y, "y"), **kwargs)
    assert rec.history.params["engine"] == "captured streamed"
    _same(mem, rec)
    assert len(recorder) - recorded == recorded  # the same recordings: one per batch shape


@pytest.mark.parametrize("spec", ["numpy", "array_api_strict:device1"])
@pytest.mark.parametrize("weights", ["sample_weight", "class_weight"])
def test_sample_and_class_weights_ride_in_the_buffers(
    recorder, monkeypatch, tmp_path, spec, weights
):
    X, y = _data(75)
    Xm = _memmap(tmp_path, X)
    if weights == "sample_weight":
        kwargs = {"sample_weight": np.linspace(0.25, 2.0, X.shape[0])}
    else:
        kwargs = {"class_weight": {0: 0.5, 1: 3.0}}
    eager, rec = _model(spec, capture=False), _model(spec)
    eager.fit(Xm, y, epochs=2, batch_size=16, verbose=0, **kwargs)
    _wire(monkeypatch, rec)
    rec.fit(Xm, y, epochs=2, batch_size=16, verbose=0, **kwargs)
    assert rec.history.params["engine"] == "captured streamed"
    _same(eager, rec)
    assert len(recorder) == 2


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("spec", CPU)
def test_a_non_finite_loss_names_the_batch_and_restores(recorder, monkeypatch, tmp_path, spec):
    X, y = _data(64)
    X[40] = 1e200  # batch 3 of 4: its squared error overflows
    Xm = _memmap(tmp_path, X)
    messages = []
    for capture in (False, True):
        name, _, device = spec.partition(":")
        m = bp.Sequential(
            [bp.layers.Dense(6, "relu", input_dim=3), bp.layers.Dense(1)],
            backend=name,
            device=device or None,
            dtype="float64",
            seed=0,
            capture=capture,
        )
        m.compile("mse", "sgd")
        _wire(monkeypatch, m)
        start = m.get_weights()
        with pytest.raises(bp.model.NonFiniteLossError) as err:
            m.fit(Xm, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        assert m.history.params["engine"] == ("captured streamed" if capture else "streamed")
        messages.append(str(err.value))
        for p, q in zip(start, m.get_weights(), strict=True):
            np.testing.assert_array_equal(q, p)
    assert "batch 3 of 4" in messages[1]
    assert messages[0] == messages[1]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_non_finite_epoch_restores_the_moving_statistics_and_retrains(
    recorder, monkeypatch, tmp_path
):
    """The restore covers the moving statistics the step copies into fixed arrays; the restored
    weights are new arrays, so the next fit records afresh and trains from them."""
    X, y = _data(64)
    Xm = _memmap(tmp_path, X)
    model = _model(opt=bp.optimizers.SGD(0.01))
    start = {}

    def remember(epoch, logs):
        start[epoch] = model.get_weights()

    cbs = [
        bp.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 if epoch == 0 else 1e300),
        bp.callbacks.LambdaCallback(on_epoch_begin=remember),
    ]
    _wire(monkeypatch, model, cbs)
    with pytest.raises(bp.model.NonFiniteLossError, match="epoch 2"):
        model.fit(Xm, y, epochs=3, batch_size=16, verbose=0, callbacks=cbs)
    for p, q in zip(start[1], model.get_weights(), strict=True):
        np.testing.assert_array_equal(q, p)
    # trains on from the restored weights, as the eager streamed fit does from the same ones
    model.optimizer.learning_rate = 0.01  # the schedule's 1e300 stays set, as in Keras
    eager = _model(capture=False, opt=bp.optimizers.SGD(0.01))
    eager.set_weights(model.get_weights())
    eager.optimizer.iterations = model.optimizer.iterations
    recorded = len(recorder)
    for m in (model, eager):  # unshuffled: the two models' generators have drawn apart
        m.fit(Xm, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert len(recorder) > recorded  # the restored arrays are new: recorded anew
    _same(eager, model)


def test_the_step_reads_only_the_buffers(monkeypatch, tmp_path):
    """A replay repeats the recorded step on whatever the buffers hold: here the stand-in
    records each step once and replays it for the others, with nothing passed in."""
    calls = []

    def capture(self, fn):
        fn()
        calls.append(fn)
        return fn

    monkeypatch.setattr(bp.backend.Backend, "can_capture", property(lambda self: True))
    monkeypatch.setattr(bp.backend.Backend, "capture", capture)
    X, y = _data(64)
    Xm = _memmap(tmp_path, X)
    eager, rec = _model(capture=False), _model()
    eager.fit(Xm, y, epochs=2, batch_size=16, verbose=0)
    _wire(monkeypatch, rec)
    rec.fit(Xm, y, epochs=2, batch_size=16, verbose=0)
    assert len(calls) == 1  # 8 steps, one recording
    _same(eager, rec)


def test_the_prefetch_thread_ends_with_the_fit(recorder, monkeypatch, tmp_path):
    X, y = _data(80)
    model = _model()
    stop = bp.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch == 1)
    )
    _wire(monkeypatch, model, [stop])
    model.fit(_memmap(tmp_path, X), y, epochs=5, batch_size=16, verbose=0, callbacks=[stop])
    assert len(model.history.history["loss"]) == 2
    assert not [t for t in threading.enumerate() if t.name == "backprop-prefetch"]


def test_which_streamed_engine(recorder):
    model = _model()
    engine = streamed_engine(None, model, [])
    assert isinstance(engine, _cs.CapturedStreamed) and engine.name == "captured streamed"
    assert "CUDA graph" in engine.reason
    assert type(streamed_engine(None)) is Streamed  # no model: as before
    model.capture = False
    assert type(streamed_engine(None, model, [])) is Streamed
    model.capture = True
    watch = bp.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: None)
    assert type(streamed_engine(None, model, [watch])) is Streamed
    model.compile("binary_crossentropy", bp.optimizers.Adam(clipnorm=1.0))
    model.build(3)
    assert type(streamed_engine(None, model, [])) is Streamed
    jax = pytest.importorskip("jax")
    del jax
    immutable = _model("jax")  # its arrays cannot be written in place: no buffers to hold
    assert type(streamed_engine(None, immutable, [])) is Streamed


def test_a_model_the_step_cannot_hold_trains_eagerly(recorder, monkeypatch, tmp_path):
    """Chosen before the model is built (the loop asks before reading the first rows), the
    engine finds at ``begin`` that Dropout keeps the eager steps: the eager streamed fit."""
    X, y = _data(50)
    Xm = _memmap(tmp_path, X)
    fits = []
    for capture in (False, True):
        model = bp.Sequential(
            [bp.layers.Dense(4, "relu"), bp.layers.Dropout(0.5), bp.layers.Dense(1, "sigmoid")],
            dtype="float64",
            seed=1,
            capture=capture,
        )
        model.compile("binary_crossentropy", "adam")
        _wire(monkeypatch, model)
        model.fit(Xm, y, epochs=2, batch_size=16, verbose=0)
        fits.append(model)
    assert fits[1].history.params["engine"] == "streamed"
    assert "Dropout" in fits[1].history.params["engine_reason"]
    assert recorder == []
    _same(*fits)


def test_fit_on_a_store_records_the_step_where_it_can(recorder, tmp_path):
    X, y = _data(40)
    model = _model()
    model.fit(_memmap(tmp_path, X), y, epochs=1, batch_size=16, verbose=0)
    assert model.history.params["engine"] == "captured streamed"


def test_a_read_error_partway_leaves_the_last_complete_step(recorder, monkeypatch, tmp_path):
    """A batch that cannot be read (step 3): the error reaches fit, the model holds the weights
    and the optimizer's step count of step 2, as the eager streamed fit leaves them."""
    from backprop.training.streamed import Rows

    X, y = _data(80)
    Xm = _memmap(tmp_path, X)
    real = Rows.host
    reads = []

    def host(self, rows):
        reads.append(len(rows))
        if len(reads) == 4:  # the dead-network probe's rows, then batches 1, 2 and 3
            raise OSError("the disk went away")
        return real(self, rows)

    monkeypatch.setattr(Rows, "host", host)
    fits = []
    for capture in (False, True):
        model = _model(capture=capture)
        _wire(monkeypatch, model)
        reads.clear()
        with pytest.raises(OSError, match="the disk went away"):
            model.fit(Xm, y, epochs=1, batch_size=16, verbose=0)
        assert model.optimizer.iterations == 2
        fits.append(model)
    for p, q in zip(fits[0].get_weights(), fits[1].get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-12)


# -- real recordings on a GPU -------------------------------------------------------------------


@pytest.mark.parametrize("spec", GPU)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_recorded_streamed_step_on_the_gpu_equals_the_eager_one(
    monkeypatch, tmp_path, spec, dtype
):
    """CUDA graphs replaying on the buffers, the batches copied in on the copy stream."""
    recorded, real = [], bp.backend.Backend.capture

    def capture(self, fn):
        replay = real(self, fn)
        recorded.append(replay)
        return replay

    monkeypatch.setattr(bp.backend.Backend, "capture", capture)
    X, y = _data(301, k=3)  # a short last batch
    Xm = _memmap(tmp_path, X.astype(dtype))
    name, _, device = spec.partition(":")
    fits = []
    for rec in (False, True):
        model = bp.Sequential(
            [
                bp.layers.Dense(16, "relu", input_dim=3),
                bp.layers.BatchNormalization(),
                bp.layers.Dense(3, "softmax"),
            ],
            backend=name, device=device or None, dtype=dtype, seed=0, capture=rec,
        )  # fmt: skip
        model.compile("sparse_categorical_crossentropy", "adam", ["accuracy"])
        _wire(monkeypatch, model)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a failed recording warns
            model.fit(Xm, y, epochs=3, batch_size=32, verbose=0)
        fits.append(model)
    assert fits[1].history.params["engine"] == "captured streamed"
    assert len(recorded) == 2 and all(callable(r) for r in recorded)  # full and short batches
    rtol, atol = (1e-9, 1e-12) if dtype == "float64" else (1e-4, 1e-5)
    for p, q in zip(fits[0].get_weights(), fits[1].get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        fits[1].history.history["loss"], fits[0].history.history["loss"], rtol=rtol
    )
