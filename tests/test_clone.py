"""bp.clone_model (Keras's semantics: same architecture, new weights, not compiled) and the
working copy that explain and gradcheck run on (the model's current weights and compile)."""

import numpy as np

import backprop as bp
from backprop.clone import _working_copy


def _net(backend, **kwargs):
    return bp.Sequential(
        [
            bp.layers.Dense(4, "relu", input_dim=3),
            bp.layers.BatchNormalization(),
            bp.layers.Dense(1, "sigmoid"),
        ],
        backend=backend.spec,
        device=backend.device,
        seed=0,
        **kwargs,
    )


def test_clone_model_is_a_new_uncompiled_model_with_the_seeds_weights(backend):
    model = _net(backend, name="net")
    initial = model.get_weights()
    model.compile("binary_crossentropy", "adam", ["accuracy"])
    model.set_weights([w + 0.5 for w in initial])  # as if trained
    clone = bp.clone_model(model)
    assert type(clone) is bp.Sequential and clone.name == "net" and clone.seed == 0
    assert clone.backend == model.backend and clone._dtype_name == model._dtype_name
    assert clone.loss is None and clone.optimizer is None  # compile it, as in Keras
    assert not any(a is b for a, b in zip(clone.layers, model.layers, strict=True))
    assert clone.get_config() == model.get_config()
    # new weights, drawn from the seed: those the model started from, not its trained ones
    for a, b in zip(clone.get_weights(), initial, strict=True):
        np.testing.assert_array_equal(a, b)
    trained = model.get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(clone.get_weights(), trained, strict=True))
    clone.set_weights([w - 1.0 for w in trained])  # its layers and weights are its own
    for a, b in zip(model.get_weights(), trained, strict=True):
        np.testing.assert_array_equal(a, b)


def test_clone_model_of_an_unbuilt_model(backend):
    model = bp.Sequential([bp.layers.Dense(2), bp.layers.Dense(1)], backend=backend.spec, seed=3)
    assert not bp.clone_model(model).built
    clone = bp.clone_model(model, input_dim=5)
    model.build(5)
    assert clone.built
    for a, b in zip(clone.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_clone_model_to_another_backend_and_dtype(backend64):
    model = _net(bp.backend.resolve("numpy"))
    clone = bp.clone_model(model, backend=backend64.name, device=backend64.device, dtype="float64")
    assert clone.backend == backend64 and clone._dtype_name == "float64"
    # the weights a float64 model of that seed draws, whatever the backend
    expected = _net(bp.backend.resolve("numpy"), dtype="float64").get_weights()
    for a, b in zip(clone.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_working_copy_has_the_current_weights_and_the_compile_settings(backend):
    model = _net(backend)
    model.compile("binary_crossentropy", bp.optimizers.Adam(0.01), ["accuracy"])
    model.set_weights([w + 0.5 for w in model.get_weights()])  # as if trained
    copy = _working_copy(model)
    for a, b in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert copy.loss is model.loss and copy.optimizer is not model.optimizer
    assert copy.optimizer.get_config() == model.optimizer.get_config()
    assert copy.optimizer.iterations == 0 and [n for n, _ in copy.metrics] == ["accuracy"]


def test_the_working_copy_keeps_the_weighted_metrics(backend):
    model = _net(backend)
    model.compile("binary_crossentropy", "sgd", ["accuracy"], weighted_metrics=["accuracy", "mse"])
    copy = _working_copy(model)
    assert [n for n, _ in copy.metrics] == ["accuracy", "weighted_accuracy", "mse"]
    X = np.random.default_rng(0).normal(size=(6, copy.input_shape[0]))
    y, w = np.array([0, 1, 1, 0, 1, 0]), np.arange(6.0)
    got, expected = copy.evaluate(X, y, sample_weight=w), model.evaluate(X, y, sample_weight=w)
    assert list(got) == list(expected)
    np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=1e-6)
