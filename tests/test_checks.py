"""NumPy scalars as hyper-parameters: every constructor accepts them and stores Python numbers.

Sweeps over ``np.arange``/``np.logspace`` hand constructors ``np.int64`` and ``np.float64``
values; ``backprop._checks`` is the one definition of "an integer" and "a real number" that
every argument check uses. Each object built from NumPy scalars must behave exactly as the one
built from the equal Python numbers, and its config must hold only Python types (a saved model
holds its configs as JSON).
"""

import ast
import fractions
import json
import pathlib
import types

import numpy as np
import pytest

import backprop as bp
from backprop import _checks
from backprop import callbacks as C
from backprop import layers as L
from backprop import optimizers as O
from backprop import schedules as S
from backprop.rng import Streams

# -- the helpers --------------------------------------------------------------------------------

INTEGERS = [3, np.int64(3), np.int32(-2), np.uint8(7), np.int16(0)]
REALS_NOT_INTEGERS = [0.5, np.float32(0.5), np.float64(-1.5), np.float16(2.0), float("nan")]
NEITHER = [True, False, np.bool_(True), np.bool_(False), "3", None, 1 + 0j, np.complex64(1)]


@pytest.mark.parametrize("value", INTEGERS, ids=repr)
def test_integers_are_integers_and_reals(value):
    assert _checks.is_int(value) and _checks.is_real(value)
    assert type(_checks.as_int(value)) is int and _checks.as_int(value) == value
    assert type(_checks.as_float(value)) is float and _checks.as_float(value) == value
    # the kind given is kept: an integer stays an int
    assert type(_checks.as_number(value)) is int


@pytest.mark.parametrize("value", REALS_NOT_INTEGERS, ids=repr)
def test_reals_are_not_integers(value):
    assert _checks.is_real(value) and not _checks.is_int(value)
    assert _checks.as_int(value) is None
    assert type(_checks.as_float(value)) is float
    assert type(_checks.as_number(value)) is float
    assert _checks.as_float(value) == pytest.approx(float(value), nan_ok=True)


def test_a_fraction_is_a_real_number():
    assert _checks.as_float(fractions.Fraction(1, 4)) == 0.25


@pytest.mark.parametrize("value", NEITHER, ids=repr)
def test_bools_strings_and_complex_are_neither(value):
    assert not _checks.is_int(value) and not _checks.is_real(value)
    assert _checks.as_int(value) is None
    assert _checks.as_float(value) is None
    assert _checks.as_number(value) is None


def test_checks_is_on_the_bottom_floor():
    # it imports nothing from backprop, and no array library: the math modules use it
    tree = ast.parse(pathlib.Path(_checks.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "backprop._checks imports from backprop"
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "numbers", "typing"}


# -- every constructor, with NumPy scalars ------------------------------------------------------


def _build_layer(layer):
    layer.build(3, bp.backend.resolve("numpy"), np.random.default_rng(0), np.float64)
    return layer


def _use_layer(layer):
    layer = _build_layer(layer)
    x = np.linspace(-2.0, 2.0, 12).reshape(4, 3)
    return [layer.forward(x, training=True), *layer.params.values()]


def _use_optimizer(opt):
    W, dW = np.linspace(-1.0, 1.0, 6), np.linspace(3.0, -2.0, 6)
    for _ in range(3):
        W = opt.apply([W], [dW])[0]
    return W


def _use_schedule(schedule):
    return [schedule(t) for t in range(0, 40, 3)]


def _use_early_stopping(stop):
    stop.model = types.SimpleNamespace(stop_training=False)
    stop.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.95, 0.9, 0.89, 0.88, 0.87, 0.86]):
        stop.on_epoch_end(epoch, {"loss": loss})
        if stop.model.stop_training:
            return epoch
    return None


def _use_activation(act):
    z = np.linspace(-3.0, 3.0, 9)
    return act.forward(z, bp.backend.resolve("numpy").xp)


def _use_regularizer(reg):
    W = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    xp = bp.backend.resolve("numpy").xp
    return [reg.penalty(W, xp), reg.gradient(W, xp)]


def _use_initializer(init):
    return init((4, 5), np.random.default_rng(0))


# (id, make(i, r), use, attributes compared when there is no get_config): ``i`` converts the
# integer arguments, ``r`` the real ones
CONSTRUCTORS = [
    ("Dense", lambda i, r: L.Dense(i(4), "tanh", input_dim=i(3)), _use_layer, ()),
    ("Dropout", lambda i, r: L.Dropout(r(0.25)), _use_layer, ()),
    ("Adam", lambda i, r: O.Adam(r(1e-2), r(0.8), r(0.99), r(1e-6)), _use_optimizer, ()),
    ("AdamW", lambda i, r: O.AdamW(r(1e-2), weight_decay=r(0.01)), _use_optimizer, ()),
    ("Adamax", lambda i, r: O.Adamax(r(1e-2), beta1=r(0.8)), _use_optimizer, ()),
    ("SGD", lambda i, r: O.SGD(r(0.1), momentum=r(0.5), clipvalue=r(0.75)), _use_optimizer, ()),
    ("RMSprop", lambda i, r: O.RMSprop(r(1e-2), rho=r(0.8), clipnorm=r(0.5)), _use_optimizer, ()),
    (
        "Adagrad",
        lambda i, r: O.Adagrad(r(0.1), r(0.2), global_clipnorm=r(1.5)),
        _use_optimizer,
        (),
    ),
    (
        "SGD-schedule",
        lambda i, r: O.SGD(S.ExponentialDecay(r(0.1), i(4), r(0.5), staircase=True)),
        _use_optimizer,
        (),
    ),
    ("ExponentialDecay", lambda i, r: S.ExponentialDecay(r(0.1), i(7), r(0.5)), _use_schedule, ()),
    ("StepDecay", lambda i, r: S.StepDecay(r(0.2), i(5), r(0.5)), _use_schedule, ()),
    ("CosineDecay", lambda i, r: S.CosineDecay(r(0.2), i(20), r(0.25)), _use_schedule, ()),
    ("Streams", lambda i, r: Streams(i(3)), lambda s: s.permutation(10), ("seed",)),
    (
        "EarlyStopping",
        lambda i, r: C.EarlyStopping("loss", min_delta=r(0.02), patience=i(2), baseline=r(2.0)),
        _use_early_stopping,
        ("patience", "min_delta", "baseline"),
    ),
    ("LeakyReLU", lambda i, r: bp.activations.LeakyReLU(r(0.25)), _use_activation, ()),
    ("ELU", lambda i, r: bp.activations.ELU(r(0.5)), _use_activation, ()),
    ("Regularizer", lambda i, r: bp.regularizers.Regularizer(r(0.1), r(0.2)), _use_regularizer, ()),
    ("L1", lambda i, r: bp.regularizers.L1(r(0.1)), _use_regularizer, ()),
    ("L2", lambda i, r: bp.regularizers.L2(r(0.1)), _use_regularizer, ()),
    (
        "VarianceScaling",
        lambda i, r: bp.initializers.VarianceScaling(r(2.0), "fan_avg", "uniform"),
        _use_initializer,
        (),
    ),
]

# (integer type, real type) pairs; a NumPy float32 is not a Python float subclass (float64 is)
SCALAR_TYPES = [(np.int64, np.float32), (np.int32, np.float64), (np.uint16, np.float16)]


def _python_only(value):
    """Whether every leaf of a config is a plain Python scalar (what JSON writes back)."""
    if isinstance(value, dict):
        return all(type(k) is str and _python_only(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_python_only(v) for v in value)
    return type(value) in (int, float, str, bool, type(None))


def _config(obj, attrs):
    if attrs:
        return {a: getattr(obj, a) for a in attrs}
    # a layer's automatic name counts the layers made so far: not a setting to compare
    return {
        k: v for k, v in obj.get_config().items() if not isinstance(obj, L.Layer) or k != "name"
    }


def _assert_same(a, b):
    if isinstance(a, list):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _assert_same(u, v)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("int_type, real_type", SCALAR_TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize(
    "make, use, attrs", [c[1:] for c in CONSTRUCTORS], ids=[c[0] for c in CONSTRUCTORS]
)
def test_numpy_scalars_work_and_are_stored_as_python_numbers(make, use, attrs, int_type, real_type):
    obj = make(int_type, real_type)
    # the same numbers as Python int/float: what the object must equal in every respect
    ref = make(lambda v: int(int_type(v)), lambda v: float(real_type(v)))
    config = _config(obj, attrs)
    assert _python_only(config), config
    assert config == _config(ref, attrs)
    json.dumps(config)  # a model file holds configs as JSON
    assert "np." not in repr(obj)
    _assert_same(use(obj), use(ref))


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: L.Dropout(np.int64(0)), "rate"),
        (lambda: O.Adam(np.int64(1)), "learning_rate"),
        (lambda: bp.regularizers.Regularizer(np.int32(1), np.int64(2)), "l1"),
        (lambda: S.CosineDecay(np.int64(1), np.int64(10), alpha=np.int8(1)), "alpha"),
        (lambda: bp.activations.ELU(np.int16(2)), "alpha"),
    ],
)
def test_numpy_integers_are_real_numbers(make, arg):
    obj = make()
    value = obj.get_config()[arg]
    assert type(value) is float, f"{arg}={value!r}"


@pytest.mark.parametrize("bad", [True, np.bool_(True)], ids=repr)
@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda v: L.Dense(v), ValueError, "Expected units to be a positive integer"),
        (lambda v: L.Dense(2, input_dim=v), ValueError, "input_dim"),
        (lambda v: L.Dropout(v), ValueError, "Dropout rate must be a float in"),
        (lambda v: O.Adam(v), TypeError, "learning_rate must be a number"),
        (lambda v: O.SGD(0.1, momentum=v), TypeError, "momentum must be a number"),
        (lambda v: O.Adam(clipnorm=v), TypeError, "clipnorm must be a number"),
        (lambda v: Streams(v), ValueError, "seed must be a non-negative integer or None"),
        (lambda v: bp.Sequential(seed=v), ValueError, "seed must be a non-negative integer"),
        (lambda v: C.EarlyStopping(patience=v), ValueError, "patience must be an integer >= 0"),
        (lambda v: C.EarlyStopping(min_delta=v), ValueError, "min_delta must be a number"),
        (lambda v: C.EarlyStopping(baseline=v), ValueError, "baseline must be a number or None"),
        (lambda v: S.ExponentialDecay(v, 10, 0.5), ValueError, "initial_learning_rate"),
        (lambda v: S.ExponentialDecay(0.1, v, 0.5), ValueError, "decay_steps"),
        (lambda v: S.StepDecay(0.1, v), TypeError, "step_size must be a positive integer"),
        (lambda v: S.CosineDecay(0.1, 10, alpha=v), ValueError, "alpha must be in"),
        (lambda v: bp.activations.LeakyReLU(v), ValueError, "leaky_relu alpha must be a number"),
        (lambda v: bp.activations.ELU(v), ValueError, "elu alpha must be a number"),
        (lambda v: bp.regularizers.Regularizer(l2=v), ValueError, "l2 must be a number >= 0"),
        (lambda v: bp.initializers.VarianceScaling(v), ValueError, "scale must be a positive"),
    ],
)
def test_bools_are_still_refused(make, exc, match, bad):
    with pytest.raises(exc, match=match):
        make(bad)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: L.Dense(np.int64(0)), ValueError, r"received units=np.int64\(0\)"),
        (lambda: L.Dense(np.float64(4.0)), ValueError, "units to be a positive integer"),
        (lambda: L.Dropout(np.float32(1.0)), ValueError, "rate must be a float in"),
        (lambda: O.Adam(np.float32("nan")), TypeError, "learning_rate must be a number"),
        (lambda: O.Adam(np.float64(-1e-3)), ValueError, "learning_rate must be > 0"),
        (lambda: Streams(np.int64(-1)), ValueError, "seed must be a non-negative integer"),
        (lambda: C.EarlyStopping(patience=np.float64(2.0)), ValueError, "patience"),
        (lambda: C.EarlyStopping(min_delta="0.1"), ValueError, "min_delta must be a number"),
        (lambda: S.StepDecay(0.1, np.float32(2.0)), TypeError, "step_size"),
        (lambda: S.CosineDecay(0.1, 10, alpha=np.float32(1.5)), ValueError, "alpha"),
        (lambda: bp.regularizers.Regularizer(np.float32("inf")), ValueError, "l1"),
        (lambda: bp.initializers.VarianceScaling(np.float32("inf")), ValueError, "scale"),
    ],
)
def test_bad_numpy_scalars_are_refused_with_the_usual_messages(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_cosine_decay_keeps_fractional_decay_steps():
    # int() would have made 0.5 into 0, and the first call a division by zero
    schedule = S.CosineDecay(0.1, decay_steps=np.float32(0.5))
    assert schedule.get_config()["decay_steps"] == 0.5
    assert schedule(0) == pytest.approx(0.1) and schedule(1) == pytest.approx(0.0)


def test_save_load_roundtrip_of_a_model_built_from_numpy_scalars(tmp_path, circles):
    X, y = circles
    units, rates = np.arange(4, 12, 4), np.logspace(-3, -1, 3)  # what a sweep hands out
    model = bp.Sequential(
        [
            L.Dense(
                units[1],
                bp.activations.LeakyReLU(np.float32(0.1)),
                input_dim=np.int64(2),
                kernel_regularizer=bp.regularizers.L2(rates[0]),
                kernel_initializer=bp.initializers.VarianceScaling(np.float32(2.0)),
            ),
            L.Dropout(np.float32(0.25)),
            L.Dense(units[0], "tanh"),
            L.Dense(np.int32(1), "sigmoid"),
        ],
        seed=3,
    )
    schedule = S.CosineDecay(np.float32(rates[2]), decay_steps=np.int64(50), alpha=rates[1])
    model.compile(
        loss="binary_crossentropy",
        optimizer=O.Adam(schedule, beta1=np.float32(0.85), clipnorm=np.float64(5.0)),
        metrics=["accuracy"],
    )
    model.fit(X, y, epochs=np.int64(2), batch_size=np.int64(64), verbose=0)
    path = tmp_path / "numpy-scalars.npz"
    model.save(path)
    loaded = bp.load(path)
    assert _python_only(loaded.get_config()) and _python_only(loaded.optimizer.get_config())
    assert loaded.get_config() == model.get_config()
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.layers[0].units == 8 and type(loaded.layers[0].units) is int
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6)


def test_sequential_accepts_a_numpy_seed():
    def weights(seed):
        model = bp.Sequential([L.Dense(3, "tanh", input_dim=2), L.Dropout(0.5)], seed=seed)
        return model.get_weights(), model.streams.seed

    (got, seed), (want, _) = weights(np.int64(3)), weights(3)
    assert type(seed) is int and seed == 3
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_numpy_seed_is_saved_as_an_int(tmp_path):
    model = bp.Sequential([L.Dense(1, input_dim=2)], seed=np.int64(3))
    assert type(model.get_config()["seed"]) is int
    model.save(tmp_path / "seed.npz")
    assert bp.load(tmp_path / "seed.npz").seed == 3


@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)], ids=repr)
def test_bools_are_truth_values(value):
    assert type(_checks.as_bool(value)) is bool and _checks.as_bool(value) == bool(value)


@pytest.mark.parametrize("value", [1, 0, np.int64(1), "True", None, np.array([True]), 1.0])
def test_numbers_strings_and_arrays_are_not_truth_values(value):
    assert _checks.as_bool(value) is None


def test_a_numpy_bool_switches_capture_and_trainable():
    assert bp.Sequential(capture=np.bool_(False)).capture is False
    assert L.Dense(2, trainable=np.bool_(False)).trainable is False
    with pytest.raises(TypeError, match="trainable must be True or False, received trainable=1"):
        L.Dense(2, trainable=1)
