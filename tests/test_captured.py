"""The captured engine: a step recorded once and replayed gives what the eager steps give.

On CPU the recording is a stand-in (``Backend.capture`` patched to run the step and hand it
back as its own replay), so every part of the engine but the CUDA graph itself runs here: the
static buffers, the device step counter, the per-epoch rates and order, the sums each step
adds, the in-place copies of the moving statistics, the re-recording when a setting changes.
On torch the stand-in also fails any host read or Python-number-to-tensor copy in the step
(what a CUDA graph refuses). The rows marked ``gpu`` record real graphs (CuPy, torch CUDA).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop import backend as B
from backprop.training import captured as _captured
from backprop.training.choose import choose_engine
from backprop.training.eager import Eager

HAS_TORCH = importlib.util.find_spec("torch") is not None
CPU = ["numpy", "array_api_strict", "array_api_strict:device1"] + (["torch"] * HAS_TORCH)


def _gpu_specs() -> list:
    specs = []
    try:
        B.resolve("cupy")
        specs.append("cupy")
    except Exception:
        pass
    if HAS_TORCH:
        import torch

        if torch.cuda.is_available():
            specs.append("torch:cuda")
    return [pytest.param(s, marks=pytest.mark.gpu) for s in specs]


GPU = _gpu_specs()


def _model(spec, capture=True, dtype="float64", opt="adam", loss="binary_crossentropy", k=1):
    name, _, device = spec.partition(":")
    out = "sigmoid" if k == 1 else "softmax"
    model = bp.Sequential(
        [
            bp.layers.Dense(6, "relu", input_dim=3),
            bp.layers.BatchNormalization(),
            bp.layers.Dense(5, "relu", kernel_regularizer=bp.regularizers.L2(1e-3)),
            bp.layers.Dense(k, out),
        ],
        backend=name,
        device=device or None,
        dtype=dtype,
        seed=3,
        capture=capture,
    )
    model.compile(loss, opt, ["accuracy"])
    return model


def _data(n, k=1):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(int) if k == 1 else rng.integers(0, k, n)
    return X, y


def _same(a, b, rtol=1e-9):
    for p, q in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=rtol, atol=1e-12)
    for key, values in a.history.history.items():
        np.testing.assert_allclose(b.history.history[key], values, rtol=rtol)


@pytest.mark.parametrize("spec", CPU)
@pytest.mark.parametrize(("n", "batch"), [(103, 16), (96, 16), (10, 32)])
def test_captured_steps_equal_eager_steps(recorder, spec, n, batch):
    """Short last batch, batches that divide the data, one batch larger than the data."""
    X, y = _data(n)
    eager, rec = _model(spec, capture=False), _model(spec)
    eager.fit(X, y, epochs=3, batch_size=batch, verbose=0)
    rec.fit(X, y, epochs=3, batch_size=batch, verbose=0)
    _same(eager, rec)
    assert len(recorder) == len({batch if n >= batch else n, n % batch or batch})


@pytest.mark.parametrize(
    "opt",
    [
        bp.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        bp.optimizers.RMSprop(centered=True),
        bp.optimizers.Adamax(),  # rebinds its state: copied back into place
        bp.optimizers.AdamW(weight_decay=0.01),
        bp.optimizers.Adagrad(),
        bp.optimizers.Adam(global_clipnorm=0.1),
        bp.optimizers.Adam(clipvalue=0.01),
    ],
    ids=lambda o: repr(o)[:40],
)
def test_every_optimizer_replays_as_it_steps(recorder, opt):
    X, y = _data(70, k=3)
    config = opt.get_config()
    eager = _model(
        "numpy", False, opt=bp.optimizers.get(config), k=3, loss="sparse_categorical_crossentropy"
    )
    rec = _model(
        "numpy", opt=bp.optimizers.get(config), k=3, loss="sparse_categorical_crossentropy"
    )
    for m in (eager, rec):
        m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    _same(eager, rec)


def test_a_schedule_reaches_each_step_from_the_device(recorder):
    X, y = _data(90)
    models = []
    for capture in (False, True):
        lr = bp.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
        m = _model("numpy", capture, opt=bp.optimizers.SGD(lr, momentum=0.5))
        m.fit(X, y, epochs=3, batch_size=8, verbose=0)
        models.append(m)
    _same(*models)
    assert models[1].optimizer.iterations == 3 * 12


def test_a_setting_changed_by_a_callback_is_recorded_anew(recorder):
    X, y = _data(64)

    def slow_down(epoch, logs):
        model.optimizer.beta1 = 0.5  # a constant of the recorded step

    models = []
    for capture in (False, True):
        model = _model("numpy", capture)
        cb = bp.callbacks.LambdaCallback(on_epoch_end=slow_down)
        model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[cb])
        models.append(model)
    _same(*models)
    assert len(recorder) == 2  # the first epoch's, then once after the change


def test_the_callbacks_between_epochs_and_a_learning_rate_they_set(recorder):
    X, y = _data(80)
    Xv, yv = _data(20)
    models = []
    for capture in (False, True):
        m = _model("numpy", capture)
        cbs = [bp.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)]
        m.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=cbs, validation_data=(Xv, yv))
        models.append(m)
    _same(*models)
    assert models[1].optimizer.learning_rate == 1e-3 / 8


def test_save_and_resume_continue_the_same_steps(recorder, tmp_path):
    X, y = _data(75)
    eager = _model("numpy", capture=False)
    eager.fit(X, y, epochs=4, batch_size=16, verbose=0)
    first = _model("numpy")
    first.fit(X, y, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "m.npz")
    again = bp.load(tmp_path / "m.npz")
    again.fit(X, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    for p, q in zip(eager.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=1e-9, atol=1e-12)


def test_set_weights_between_fits_is_seen(recorder):
    X, y = _data(40)
    a, b = _model("numpy", capture=False), _model("numpy")
    for m in (a, b):
        m.fit(X, y, epochs=1, batch_size=16, verbose=0)
        m.set_weights([w * 0.5 for w in m.get_weights()])
        m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    _same(a, b)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_non_finite_loss_names_the_batch_and_restores(recorder):
    X, y = _data(64)
    X[40] = 1e200  # batch 3 of 4: its squared error overflows
    messages = []
    for capture in (False, True):
        m = bp.Sequential(
            [bp.layers.Dense(6, "relu", input_dim=3), bp.layers.Dense(1)],
            dtype="float64",
            seed=0,
            capture=capture,
        )
        m.compile("mse", "sgd")
        start = m.get_weights()
        with pytest.raises(bp.model.NonFiniteLossError) as err:
            m.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        messages.append(str(err.value))
        for p, q in zip(start, m.get_weights(), strict=True):
            np.testing.assert_array_equal(q, p)
    assert "batch 3 of 4" in messages[1]
    assert messages[0] == messages[1]


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_the_step_reads_nothing_back_and_copies_no_python_number(monkeypatch):
    """What a CUDA graph refuses, caught on torch CPU: each call a recording would make."""
    from torch.overrides import TorchFunctionMode

    refused = {"__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy"}
    refused |= {"asarray", "tensor", "as_tensor", "from_numpy", "cpu", "__array__"}
    caught = []

    class NoHostTraffic(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in refused:
                caught.append(func.__name__)
            return func(*args, **(kwargs or {}))

    def capture(self, fn):
        with NoHostTraffic():  # the code a recording runs: the same as every replay's
            fn()
        return fn

    monkeypatch.setattr(B.Backend, "can_capture", property(lambda self: True))
    monkeypatch.setattr(B.Backend, "capture", capture)
    X, y = _data(40)
    for loss, k in [("binary_crossentropy", 1), ("categorical_crossentropy", 3)]:
        model = _model("torch", loss=loss, k=k, opt=bp.optimizers.Adam(global_clipnorm=1.0))
        Y = y if k == 1 else np.eye(3)[y % 3]
        model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    assert caught == []


def test_a_failed_recording_warns_and_trains_the_same(monkeypatch):
    def capture(self, fn):
        fn()
        raise B.CaptureError("no graph today")

    monkeypatch.setattr(B.Backend, "can_capture", property(lambda self: True))
    monkeypatch.setattr(B.Backend, "capture", capture)
    X, y = _data(50)
    a, b = _model("numpy", capture=False), _model("numpy")
    a.fit(X, y, epochs=2, batch_size=16, verbose=0)
    with pytest.warns(RuntimeWarning, match="no graph today.*capture=False"):
        b.fit(X, y, epochs=2, batch_size=16, verbose=0)
    _same(a, b)


def test_which_engine(recorder):
    X, y = _data(20)
    model = _model("numpy")
    model.fit(X, y, epochs=1, verbose=0)
    engine = choose_engine(model, [], None, 8)
    assert isinstance(engine, _captured.Captured) and "CUDA graph" in engine.reason
    assert model.history.params["engine"] == "captured"
    model.capture = False
    engine = choose_engine(model, [], None, 8)
    assert isinstance(engine, Eager) and "capture=False" in engine.reason
    model.capture = True
    watch = bp.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: None)
    assert isinstance(choose_engine(model, [watch], None, 8), Eager)
    model.compile("binary_crossentropy", bp.optimizers.Adam(clipnorm=1.0))
    assert isinstance(choose_engine(model, [], None, 8), Eager)
    dropout = bp.Sequential([bp.layers.Dense(2, input_dim=3), bp.layers.Dropout(0.5)])
    dropout.compile("mse", "sgd")
    dropout.build(3)
    engine = choose_engine(dropout, [], None, 8)
    assert isinstance(engine, Eager) and "Dropout" in engine.reason


@pytest.mark.parametrize("spec", CPU)
def test_cpu_backends_record_nothing(spec):
    backend = B.resolve(*spec.split(":"))
    assert not backend.can_capture
    assert backend.capture(lambda: pytest.fail("a backend that cannot record ran the step")) is None
    model = _model(spec)
    X, y = _data(20)
    model.fit(X, y, epochs=1, verbose=0)
    assert isinstance(choose_engine(model, [], None, 8), Eager)


def test_capture_must_be_a_bool():
    with pytest.raises(TypeError, match="capture must be True or False, received capture='no'"):
        bp.Sequential(capture="no")


# -- real recordings on a GPU -------------------------------------------------------------------

WORKLOADS = {  # name: (layer sizes, activation of the output, loss, rows, batch)
    "seed": ([2, 4, 6, 6, 4, 1], "sigmoid", "binary_crossentropy", 800, 32),
    "digits": ([64, 64, 32, 10], "softmax", "sparse_categorical_crossentropy", 1437, 32),
    "large": ([256, 512, 512, 10], "softmax", "sparse_categorical_crossentropy", 2000, 256),
}


def _workload(name, spec, capture, dtype):
    sizes, out, loss, n, batch = WORKLOADS[name]
    backend, _, device = spec.partition(":")
    layers = [bp.layers.Dense(sizes[1], "relu", input_dim=sizes[0])]
    layers += [bp.layers.Dense(u, "relu") for u in sizes[2:-1]]
    layers.append(bp.layers.Dense(sizes[-1], out))
    model = bp.Sequential(
        layers, backend=backend, device=device or None, dtype=dtype, seed=0, capture=capture
    )
    model.compile(loss, "adam", ["accuracy"])
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n + 7, sizes[0]))  # a short last batch
    y = rng.integers(0, max(2, sizes[-1]), n + 7)
    return model, X, y, batch


@pytest.mark.parametrize("spec", GPU)
@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_recorded_step_on_the_gpu_equals_the_eager_step(monkeypatch, spec, workload, dtype):
    recorded, real = [], B.Backend.capture

    def capture(self, fn):
        replay = real(self, fn)
        recorded.append(replay)
        return replay

    monkeypatch.setattr(B.Backend, "capture", capture)
    runs = []
    for capture in (False, True):
        model, X, y, batch = _workload(workload, spec, capture, dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a failed recording warns
            model.fit(X, y, epochs=3, batch_size=batch, verbose=0)
        runs.append(model)
    eager, rec = runs
    assert isinstance(choose_engine(rec, [], None, 32), _captured.Captured)
    assert isinstance(choose_engine(eager, [], None, 32), Eager)
    assert len(recorded) == 2 and all(callable(r) for r in recorded)  # full and short batches
    # float32: the suite's bound for many steps of two computations that may round apart
    # (a cuBLAS handle of our own against CuPy's; per-step loss sums against one per epoch)
    rtol, atol = (1e-9, 1e-12) if dtype == "float64" else (1e-4, 1e-5)
    for p, q in zip(eager.get_weights(), rec.get_weights(), strict=True):
        np.testing.assert_allclose(q, p, rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        rec.history.history["loss"], eager.history.history["loss"], rtol=rtol
    )


@pytest.mark.parametrize("spec", GPU)
def test_the_gpu_recording_with_batchnorm_schedules_callbacks_and_resume(spec, tmp_path):
    X, y = _data(301)
    runs = []
    for capture in (False, True):
        m = _model(
            spec,
            capture,
            opt=bp.optimizers.SGD(bp.schedules.ExponentialDecay(0.05, 3, 0.7), momentum=0.9),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            m.fit(
                X,
                y,
                epochs=2,
                batch_size=32,
                verbose=0,
                callbacks=[bp.callbacks.EarlyStopping(monitor="loss", patience=5)],
            )
            m.save(tmp_path / f"m{capture}.npz")
            name, _, device = spec.partition(":")
            m = bp.load(tmp_path / f"m{capture}.npz", backend=name, device=device or None)
            m.capture = capture
            m.fit(X, y, epochs=4, initial_epoch=2, batch_size=32, verbose=0)
        runs.append(m)
    _same(*runs)


def test_an_epochs_sums_and_dead_layer_flags_equal_the_eager_engines():
    from backprop.callbacks import CallbackList

    X, y = _data(40)
    sums = []
    for engine in (Eager(), _captured.Captured(lambda fn: (fn(), fn)[1])):
        model = bp.Sequential(
            [
                bp.layers.Dense(4, "relu", input_dim=3),
                bp.layers.Dense(3, "relu", bias_initializer=bp.initializers.Constant(-100.0)),
                bp.layers.Dense(2, "relu"),
                bp.layers.Dense(1, "sigmoid"),
            ],
            dtype="float64",
            seed=0,
        )
        model.compile("binary_crossentropy", "sgd", ["accuracy", "precision"])
        Xd, Yd = model._prepare(X, y)
        engine.begin(model, Xd, Yd, None, {})
        epoch = engine.run_epoch(model, Xd, Yd, None, 16, 3, CallbackList([], model, {}))
        engine.end(model)
        assert epoch.n_flags == 3 and epoch.n == 40
        sums.append(model.backend.to_numpy(epoch.sums))
    np.testing.assert_allclose(sums[1], sums[0], rtol=1e-12)
    assert list(sums[1][-3:]) == [0.0, 1.0, 1.0]  # the dead layer, and the one below it


def test_a_failed_recording_leaves_no_uncomputed_arrays_in_the_model(monkeypatch):
    """A recording runs the step's Python without its device work: what it rebound is undone."""
    poison = []

    def capture(self, fn):
        fn()  # the real first call
        for layer in model.layers:  # what a recording's Python leaves: never-computed arrays
            for k, a in layer.buffers.items():
                layer.buffers[k] = a * np.nan
                poison.append(k)
        for k, a in model.optimizer.state[0].items():
            model.optimizer.state[0][k] = a * np.nan
        raise B.CaptureError("invalidated")

    monkeypatch.setattr(B.Backend, "can_capture", property(lambda self: True))
    monkeypatch.setattr(B.Backend, "capture", capture)
    X, y = _data(45)  # 3 batches: the short last one is recorded (and fails) last
    eager, model = _model("numpy", capture=False), _model("numpy")
    eager.fit(X, y, epochs=2, batch_size=16, verbose=0)
    with pytest.warns(RuntimeWarning, match="invalidated"):
        model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert poison
    _same(eager, model)


def test_more_than_eight_statistics_are_summed_in_groups_of_eight(recorder):
    metrics = ["accuracy", "precision", "recall", "mse", "mae", "binary_accuracy"]
    X, y = _data(40)
    models = []
    for capture in (False, True):
        m = bp.Sequential(
            [bp.layers.Dense(u, "relu", input_dim=3 if i == 0 else None) for i, u in
             enumerate([4] * 10)] + [bp.layers.Dense(1, "sigmoid")],
            dtype="float64", seed=0, capture=capture,
        )  # fmt: skip
        m.compile("binary_crossentropy", "adam", metrics)
        m.fit(X, y, epochs=2, batch_size=16, verbose=0)
        models.append(m)
    assert sum(m.n_stats for _, m in models[1].metrics) + 1 > 8  # 10 hidden layers: 10 flags
    _same(*models)


@pytest.mark.parametrize("spec", GPU)
def test_the_gpu_records_l1_mae_and_many_metrics(monkeypatch, spec):
    """What array-api-compat would do on the host inside a recording: sign (L1, MAE) and
    joining more than 8 statistics; each must be recorded, not fall back."""
    recorded, real = [], B.Backend.capture
    monkeypatch.setattr(
        B.Backend, "capture", lambda self, fn: recorded.append(real(self, fn)) or recorded[-1]
    )
    name, _, device = spec.partition(":")
    X, y = _data(90)
    runs = []
    for capture in (False, True):
        m = bp.Sequential(
            [bp.layers.Dense(u, "relu", input_dim=3 if i == 0 else None,
                             kernel_regularizer=bp.regularizers.L1(1e-3)) for i, u in
             enumerate([8] * 9)] + [bp.layers.Dense(1, "sigmoid")],
            backend=name, device=device or None, dtype="float64", seed=0, capture=capture,
        )  # fmt: skip
        m.compile("mae", "adam", ["accuracy", "precision", "recall", "mse", "mae"])
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            m.fit(X, y, epochs=2, batch_size=32, verbose=0)
        runs.append(m)
    assert len(recorded) == 2 and all(callable(r) for r in recorded)
    _same(*runs)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize(
    ("spec", "capture"), [("numpy", False)] + [(spec, True) for spec in CPU], ids=str
)
@pytest.mark.parametrize("stop", ["raise", "TerminateOnNaN"])
def test_a_non_finite_epoch_restores_the_moving_statistics(recorder, capsys, spec, capture, stop):
    """The restore after a non-finite loss covers BatchNormalization's moving statistics.

    The captured step copies them back into fixed arrays (in place): a snapshot holding
    references to those arrays would "restore" the NaNs the failing epoch wrote into them.
    The second epoch fails (its learning rate overflows the weights), so the snapshot is taken
    once the recording's fixed arrays are the model's.
    """
    X, y = _data(64)
    model = _model(spec, capture, opt=bp.optimizers.SGD(0.01))
    start = {}

    def rate(epoch, lr):
        return 0.01 if epoch == 0 else 1e300

    def remember(epoch, logs):
        start[epoch] = model.get_weights()

    cbs = [
        bp.callbacks.LearningRateScheduler(rate),
        bp.callbacks.LambdaCallback(on_epoch_begin=remember),
    ]
    if stop == "TerminateOnNaN":
        model.fit(
            X,
            y,
            epochs=3,
            batch_size=16,
            verbose=0,
            callbacks=[*cbs, bp.callbacks.TerminateOnNaN()],
        )
        assert "invalid loss" in capsys.readouterr().out
    else:
        with pytest.raises(bp.model.NonFiniteLossError, match="epoch 2"):
            model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=cbs)
    assert sorted(start) == [0, 1]
    bn = [i for i, w in enumerate(model.get_weights()) if w.shape == (6,)][-2:]  # moving stats
    for i, (p, q) in enumerate(zip(start[1], model.get_weights(), strict=True)):
        np.testing.assert_array_equal(q, p, err_msg=f"weight {i} (moving statistics: {bn})")
    assert np.all(np.isfinite(np.asarray(model.predict(X))))
