"""Weight constraints (``kernel_constraint=``, ``bias_constraint=``), as Keras 3 has them.

Each constraint's values against a NumPy transcription of Keras's formula; a constraint holds
after every optimizer step on every backend and engine; it survives save, load and clone; an
unknown name is refused when the layer is made; the gradients do not see it.
"""

import numpy as np
import pytest
from conftest import HAS_JAX, assert_close, dtype_name
from distributed_helpers import ThreadGroup

import backprop as bp
from backprop import constraints as C

KERAS_EPSILON = 1e-7  # keras.backend.epsilon()


# -- NumPy references: Keras 3's keras/src/constraints/constraints.py, transcribed -------------


def _norms(w, axis):
    axis = tuple(axis) if isinstance(axis, list | tuple) else axis
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


def ref_max_norm(w, max_value=2, axis=0):
    norms = _norms(w, axis)
    return w * (np.clip(norms, 0, max_value) / (KERAS_EPSILON + norms))


def ref_non_neg(w):
    return np.maximum(w, 0)


def ref_unit_norm(w, axis=0):
    return w / (KERAS_EPSILON + _norms(w, axis))


def ref_min_max_norm(w, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
    norms = _norms(w, axis)
    desired = rate * np.clip(norms, min_value, max_value) + (1 - rate) * norms
    return w * (desired / (KERAS_EPSILON + norms))


CASES = [
    (C.MaxNorm(), ref_max_norm, {}),
    (C.MaxNorm(0.5, axis=1), ref_max_norm, {"max_value": 0.5, "axis": 1}),
    (C.MaxNorm(1.5, axis=[0, 1, 2]), ref_max_norm, {"max_value": 1.5, "axis": [0, 1, 2]}),
    (C.NonNeg(), ref_non_neg, None),
    (C.UnitNorm(), ref_unit_norm, {}),
    (C.UnitNorm(axis=[0, 1, 2]), ref_unit_norm, {"axis": [0, 1, 2]}),
    (C.MinMaxNorm(), ref_min_max_norm, {}),
    (
        C.MinMaxNorm(0.8, 1.2, rate=0.7, axis=-1),
        ref_min_max_norm,
        {"min_value": 0.8, "max_value": 1.2, "rate": 0.7, "axis": -1},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: repr(c[0]))
def test_each_constraint_equals_keras_formula(case, backend64):
    constraint, ref, kwargs = case
    rng = np.random.default_rng(3)
    # a 4-d kernel (kh, kw, c_in, filters) for the conv axes, a matrix otherwise; scaled so
    # that some norms are below the bounds and some above
    shape = (3, 3, 2, 4) if "[0, 1, 2]" in repr(constraint) else (5, 4)
    w = rng.normal(size=shape) * np.linspace(0.1, 1.5, shape[-1])
    w[0, ...] = -np.abs(w[0, ...])  # negatives for non_neg
    out = constraint(backend64.asarray(w, backend64.dtype("float64")))
    expected = ref(w) if kwargs is None else ref(w, **kwargs)
    assert_close(out, expected, backend64, dtype=backend64.dtype("float64"))


def test_keras_defaults_and_names():
    assert C.MaxNorm().get_config() == {"name": "max_norm", "max_value": 2, "axis": 0}
    assert C.NonNeg().get_config() == {"name": "non_neg"}
    assert C.UnitNorm().get_config() == {"name": "unit_norm", "axis": 0}
    assert C.MinMaxNorm().get_config() == {
        "name": "min_max_norm",
        "min_value": 0.0,
        "max_value": 1.0,
        "rate": 1.0,
        "axis": 0,
    }
    # Keras's function-style aliases are the classes
    assert C.max_norm is C.MaxNorm and C.non_neg is C.NonNeg
    assert C.unit_norm is C.UnitNorm and C.min_max_norm is C.MinMaxNorm


@pytest.mark.parametrize(
    "name",
    [
        "max_norm",
        "MaxNorm",
        "non_neg",
        "NonNeg",
        "unit_norm",
        "UnitNorm",
        "min_max_norm",
        "MinMaxNorm",
    ],
)
def test_get_by_name(name):
    c = C.get(name)
    assert isinstance(c, C.Constraint)
    assert C.get(c.get_config()).get_config() == c.get_config()


def test_get_dicts_instances_none_and_callables():
    assert C.get(None) is None
    c = C.MaxNorm(3.0, axis=[0, 1])
    assert C.get(c) is c
    rebuilt = C.get({"name": "max_norm", "max_value": 3.0, "axis": [0, 1]})
    assert isinstance(rebuilt, C.MaxNorm) and rebuilt.get_config() == c.get_config()

    def clip_at_one(w):
        return w

    assert C.get(clip_at_one) is clip_at_one  # Keras takes any callable w -> w


def test_an_unknown_name_is_refused_with_the_closest_match():
    with pytest.raises(ValueError, match="max_nrom") as info:
        C.get("max_nrom")
    message = str(info.value)
    assert "did you mean 'max_norm'" in message
    for known in ("max_norm", "non_neg", "unit_norm", "min_max_norm"):
        assert known in message
    with pytest.raises(ValueError, match="did you mean 'unit_norm'"):
        C.get({"name": "unit_nrm", "axis": 0})


@pytest.mark.parametrize("argument", ["kernel_constraint", "bias_constraint"])
def test_an_unknown_name_is_refused_when_the_layer_is_made(argument):
    with pytest.raises(ValueError, match="did you mean 'non_neg'"):
        bp.layers.Dense(2, **{argument: "non_negative"})
    with pytest.raises(ValueError, match="did you mean 'non_neg'"):
        bp.layers.Conv2D(2, 3, **{argument: "non_negative"})
    with pytest.raises(TypeError, match=argument):
        bp.layers.Dense(2, **{argument: 3})


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: C.MaxNorm(-1.0), "max_value"),
        (lambda: C.MaxNorm(float("nan")), "max_value"),
        (lambda: C.MaxNorm(axis="rows"), "axis"),
        (lambda: C.MaxNorm(axis=[0, 0]), "axis"),
        (lambda: C.UnitNorm(axis=1.0), "axis"),
        (lambda: C.MinMaxNorm(2.0, 1.0), "min_value"),
        (lambda: C.MinMaxNorm(rate=1.5), "rate"),
        (lambda: C.MaxNorm(foo=1), "foo"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_an_axis_the_kernel_does_not_have_is_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match="axis"):
        bp.Sequential([bp.layers.Dense(3, kernel_constraint=C.MaxNorm(axis=2), input_dim=2)])
    with pytest.raises(ValueError, match="axis"):
        bp.Sequential([bp.layers.Dense(3, bias_constraint=C.UnitNorm(axis=1), input_dim=2)])
    # the conv kernel has four axes
    bp.Sequential(
        [bp.layers.Conv2D(2, 3, kernel_constraint=C.MaxNorm(axis=[0, 1, 2]), input_shape=(5, 5, 1))]
    )


# -- training: the constraint holds after every step --------------------------------------------

MAX = 0.5


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * 2.0
    return X, (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def _model(backend, dtype="float64", optimizer=None, **constraints):
    kw = {"kernel_constraint": C.MaxNorm(MAX), "bias_constraint": "non_neg", **constraints}
    model = bp.Sequential(
        [bp.layers.Dense(8, "tanh", input_dim=4, **kw), bp.layers.Dense(1, "sigmoid")],
        backend=backend.spec if hasattr(backend, "spec") else backend,
        dtype=dtype,
        seed=0,
    )
    model.compile("binary_crossentropy", optimizer or bp.optimizers.SGD(0.5))
    return model


def _violations(model):
    W, b = (bp.to_numpy(a) for a in model.layers[0].get_weights())
    return {
        "norm": float(np.max(np.linalg.norm(W, axis=0)) - MAX * (1 + 1e-6)),
        "negative bias": float(-np.min(b)),
    }


def _check_holds(model):
    worst = _violations(model)
    assert worst["norm"] <= 0 and worst["negative bias"] <= 0, worst


class _EveryStep(bp.callbacks.Callback):
    """Checks the constraints after each step (and makes the engine run step by step)."""

    def __init__(self):
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        _check_holds(self.model)


def test_without_constraints_this_fit_breaks_both_bounds():
    """The fit of the tests below leaves the bounds if nothing holds it (numpy)."""
    model = _model("numpy", kernel_constraint=None, bias_constraint=None)
    model.fit(*_data(), epochs=2, batch_size=8, verbose=0)
    worst = _violations(model)
    assert worst["norm"] > 0 and worst["negative bias"] > 0, worst


def test_fit_keeps_the_constraints_after_every_step(backend):
    dtype = dtype_name(backend.dtype("float32"))
    model = _model(backend, dtype=dtype)
    watcher = _EveryStep()
    history = model.fit(*_data(), epochs=2, batch_size=8, verbose=0, callbacks=[watcher])
    assert watcher.steps == 12
    assert history.params["engine"] == "eager"


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_other_optimizers_and_clipnorm(optimizer):
    model = _model("numpy", optimizer=bp.optimizers.get(optimizer))
    model.fit(*_data(), epochs=2, batch_size=8, verbose=0, callbacks=[_EveryStep()])
    clipped = _model("numpy", optimizer=bp.optimizers.SGD(0.5, clipnorm=1.0))
    clipped.fit(*_data(), epochs=2, batch_size=8, verbose=0, callbacks=[_EveryStep()])


def test_one_step_is_the_constraint_of_the_sgd_update(backend64):
    """Keras's order: the optimizer's update, then ``W = constraint(W)``."""
    X, y = _data(8)
    free = _model(backend64, kernel_constraint=None, bias_constraint=None)
    model = _model(backend64)
    W0, b0 = model.layers[0].get_weights()
    _, grads = free.loss_and_gradients(X, y)
    dW, db = (bp.to_numpy(g) for g in grads[:2])
    model.train_step(*model._prepare(X, y))
    W, b = model.layers[0].params["W"], model.layers[0].params["b"]
    assert_close(W, ref_max_norm(W0 - 0.5 * dW, MAX), backend64)
    assert_close(b, ref_non_neg(b0 - 0.5 * db), backend64)


def test_gradients_do_not_see_the_constraints(backend64):
    X, y = _data(16)
    free = _model(backend64, kernel_constraint=None, bias_constraint=None)
    model = _model(backend64)
    loss_free, grads_free = free.loss_and_gradients(X, y)
    loss, grads = model.loss_and_gradients(X, y)
    assert loss == loss_free
    for g, g_free in zip(grads, grads_free, strict=True):
        np.testing.assert_array_equal(bp.to_numpy(g), bp.to_numpy(g_free))


def test_gradcheck_of_a_constrained_model():
    X, y = _data(6)
    assert bp.gradcheck(_model("numpy"), X, y) < 1e-6


def test_conv2d_kernel_with_keras_conv_axes():
    """Keras's advice for conv kernels (kh, kw, c_in, filters): axis=[0, 1, 2], one norm
    per filter."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 6, 6, 2)) * 3.0
    y = (X[:, :3, :, 0].sum(axis=(1, 2)) > 0).astype(np.int64)
    model = bp.Sequential(
        [
            bp.layers.Conv2D(
                3,
                3,
                activation="relu",
                input_shape=(6, 6, 2),
                kernel_constraint=C.MaxNorm(0.3, axis=[0, 1, 2]),
                bias_constraint=C.NonNeg(),
            ),
            bp.layers.Flatten(),
            bp.layers.Dense(1, "sigmoid"),
        ],
        dtype="float64",
        seed=0,
    )
    model.compile("binary_crossentropy", bp.optimizers.SGD(0.5))
    seen = []

    class Watch(bp.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            W, b = self.model.layers[0].get_weights()
            seen.append(np.linalg.norm(W.reshape(-1, 3), axis=0).max())
            assert np.min(b) >= 0

    model.fit(X, y, epochs=2, batch_size=4, verbose=0, callbacks=[Watch()])
    assert len(seen) == 6 and max(seen) <= 0.3 * (1 + 1e-9)


def test_a_frozen_layer_is_left_alone():
    """As in Keras, constraints apply to what the optimizer updates."""
    model = _model("numpy")
    model.layers[0].trainable = False
    W = model.layers[0].get_weights()[0]
    model.compile("binary_crossentropy", bp.optimizers.SGD(0.5))
    model.fit(*_data(), epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], W)


@pytest.mark.skipif(not HAS_JAX, reason="needs jax")
def test_jax_compiled_epoch_keeps_the_constraints():
    model = _model("jax")
    history = model.fit(*_data(), epochs=3, batch_size=8, verbose=0)
    assert history.params["engine"] == "compiled"
    _check_holds(model)
    # and it is the eager steps' result
    eager = _model("jax")
    eager.fit(*_data(), epochs=3, batch_size=8, verbose=0, callbacks=[_EveryStep()])
    for a, b in zip(model.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_captured_step_keeps_the_constraints(recorder):
    model = _model("numpy")
    history = model.fit(*_data(), epochs=3, batch_size=8, verbose=0)
    assert history.params["engine"] == "captured" and recorder
    _check_holds(model)
    eager = _model("numpy")
    eager.fit(*_data(), epochs=3, batch_size=8, verbose=0, callbacks=[_EveryStep()])
    for a, b in zip(model.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_data_parallel_steps_keep_the_constraints():
    X, y = _data(64)

    def rank(rank, comm):
        model = _model("numpy")
        watcher = _EveryStep()
        model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[watcher], distributed=comm)
        return model.get_weights(), watcher.steps

    results = ThreadGroup(2).run(rank)
    for result in results:
        assert not isinstance(result, BaseException), repr(result)
        weights, steps = result
        assert steps == 8  # 64 rows in global batches of 16: 4 steps an epoch, 2 epochs
        for a, b in zip(weights, results[0][0], strict=True):
            np.testing.assert_array_equal(a, b)


# -- save, load, clone ------------------------------------------------------------------------


def _configs(model):
    return [
        (layer.get_config().get("kernel_constraint"), layer.get_config().get("bias_constraint"))
        for layer in model.layers
    ]


def test_save_load_and_clone_keep_the_constraints(tmp_path):
    model = _model("numpy", kernel_constraint=C.MinMaxNorm(0.1, MAX, rate=0.9, axis=0))
    model.fit(*_data(), epochs=1, batch_size=8, verbose=0)
    expected = [
        (
            {"name": "min_max_norm", "min_value": 0.1, "max_value": MAX, "rate": 0.9, "axis": 0},
            {"name": "non_neg"},
        ),
        (None, None),
    ]
    assert _configs(model) == expected
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = bp.load(path)
    assert _configs(loaded) == expected
    assert isinstance(loaded.layers[0].kernel_constraint, C.MinMaxNorm)
    clone = bp.clone_model(model)
    assert _configs(clone) == expected
    # the loaded model and the clone step under them as the model does
    clone.set_weights(model.get_weights())
    X, y = _data(8, seed=1)
    for other in (loaded, clone):
        other.compile("binary_crossentropy", bp.optimizers.SGD(0.5))
    model.compile("binary_crossentropy", bp.optimizers.SGD(0.5))
    for m in (model, loaded, clone):
        m.train_step(*m._prepare(X, y))
    for other in (loaded, clone):
        for a, b in zip(other.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_function_constraint_trains_but_is_not_saved_as_code(tmp_path):
    def halve(w):
        return w * 0.5

    model = _model("numpy", kernel_constraint=halve, bias_constraint=None)
    W0 = model.layers[0].get_weights()[0]
    X, y = _data(8)
    dW = bp.to_numpy(model.loss_and_gradients(X, y)[1][0])
    model.train_step(*model._prepare(X, y))
    np.testing.assert_allclose(model.layers[0].get_weights()[0], (W0 - 0.5 * dW) * 0.5)
    config = model.layers[0].get_config()["kernel_constraint"]
    assert config == {"name": "custom", "function": "halve"}
    with pytest.raises(ValueError, match="halve"):
        bp.layers.Dense(2, kernel_constraint=config)
