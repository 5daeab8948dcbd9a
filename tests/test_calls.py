"""Keras's calls on a model: ``model(X)``, ``predict_on_batch``, ``train_on_batch``,
``test_on_batch``, ``model.weights`` (and its trainable / non-trainable parts) and ``pop``.

Each against what it must equal: a fit of one step, ``evaluate``, ``predict``, hand-computed
batch normalization; on every float64 backend (numpy, array_api_strict on both devices, torch,
jax).
"""

import math

import numpy as np
import pytest
from conftest import assert_close

import backprop as bp
from backprop.layers import BatchNormalization, Dense, Dropout

N = 12


def data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.float64)
    return X, y


def net(backend, seed=0, metrics=("accuracy",), optimizer=None, compiled=True):
    """Dense, BatchNormalization (moving statistics), Dense: float64 on ``backend``."""
    model = bp.Sequential(
        [Dense(5, "relu", input_dim=3), BatchNormalization(), Dense(1, "sigmoid")],
        backend=backend.spec,
        dtype="float64",
        seed=seed,
    )
    if compiled:
        model.compile(
            loss="binary_crossentropy",
            optimizer=optimizer or bp.optimizers.Adam(0.05),
            metrics=list(metrics),
        )
    return model


def on(backend, a):
    """``a`` as an array of the backend, on its device."""
    return backend.asarray(np.asarray(a, dtype=np.float64), backend.dtype("float64"))


def host_weights(model):
    return model.get_weights()


def same_weights(a, b, rtol=0.0):
    wa, wb = host_weights(a), host_weights(b)
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=0.0)


def _rtol(backend):
    # eager backends run the very same operations as fit's eager engine; JAX's fit runs the
    # epoch as one compiled program, which may round differently in the last bits
    return 100 * np.finfo(np.float64).eps if backend.name == "jax" else 0.0


# -- train_on_batch --------------------------------------------------------------------------


def test_train_on_batch_equals_a_fit_step_of_the_whole_batch(backend64):
    """Each call is one fit step (shuffle=False, batch_size=the batch): the same weights,
    moving statistics, step count, and the loss and metrics of that batch alone (as Keras 3
    returns since keras-team/keras#22617: no running mean over earlier calls)."""
    X, y = data()
    a, b = net(backend64), net(backend64)
    first = a.train_on_batch(on(backend64, X), y)
    second = a.train_on_batch(X, on(backend64, y))
    h = b.fit(X, y, epochs=2, batch_size=N, shuffle=False, verbose=0).history
    rtol = _rtol(backend64)
    assert isinstance(first, list) and len(first) == 2
    assert all(type(v) is float for v in first + second)
    np.testing.assert_allclose(first, [h["loss"][0], h["accuracy"][0]], rtol=rtol)
    np.testing.assert_allclose(second, [h["loss"][1], h["accuracy"][1]], rtol=rtol)
    same_weights(a, b, rtol=rtol)  # the moving statistics too
    assert a.optimizer.iterations == b.optimizer.iterations == 2


def test_train_on_batch_with_sample_and_class_weights_equals_fit(backend64):
    X, y = data(1)
    w = np.linspace(0.5, 2.0, N)
    a, b = net(backend64), net(backend64)
    got = a.train_on_batch(X, y, sample_weight=on(backend64, w), return_dict=True)
    h = b.fit(X, y, batch_size=N, shuffle=False, verbose=0, sample_weight=w).history
    assert list(got) == ["loss", "accuracy"]
    np.testing.assert_allclose(
        [got["loss"], got["accuracy"]], [h["loss"][0], h["accuracy"][0]], rtol=_rtol(backend64)
    )
    same_weights(a, b, rtol=_rtol(backend64))
    # a class_weight is the matching sample_weight
    c, d = net(backend64), net(backend64)
    cw = {0: 0.5, 1: 3.0}
    got = c.train_on_batch(X, y, class_weight=cw)
    want = d.train_on_batch(X, y, sample_weight=np.where(y == 1, 3.0, 0.5))
    assert got == want
    same_weights(c, d)


def test_train_on_batch_without_metrics_returns_the_loss(backend64):
    X, y = data()
    model = net(backend64, metrics=())
    loss = model.train_on_batch(X, y)
    assert type(loss) is float and math.isfinite(loss)
    assert model.train_on_batch(X, y, return_dict=True).keys() == {"loss"}


def test_train_on_batch_builds_a_model_that_does_not_know_its_input():
    X, y = data()
    model = bp.Sequential([Dense(4, "relu"), Dense(1, "sigmoid")], dtype="float64", seed=0)
    model.compile(loss="binary_crossentropy", optimizer="sgd")
    assert not model.built
    model.train_on_batch(X, y)
    assert model.built and model.input_shape == (3,)


def test_train_on_batch_draws_the_dropout_masks_fit_draws():
    X, y = data()
    a, b = (
        bp.Sequential([Dense(8, "relu", input_dim=3), Dropout(0.5), Dense(1, "sigmoid")], seed=3)
        for _ in range(2)
    )
    for m in (a, b):
        m.compile(loss="binary_crossentropy", optimizer="adam")
    a.train_on_batch(X, y)
    b.fit(X, y, batch_size=N, shuffle=False, verbose=0)
    same_weights(a, b)


def _state(model):
    opt = model.optimizer
    return [{k: bp.to_numpy(v).copy() for k, v in s.items()} for s in opt.state], opt.iterations


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m, X, y: m.train_on_batch(X[:, :2], y), ValueError),  # 2 features, not 3
        (lambda m, X, y: m.train_on_batch(X, y[:-1]), ValueError),  # rows differ
        (lambda m, X, y: m.train_on_batch(X, y, sample_weight=np.ones(N - 1)), ValueError),
        (lambda m, X, y: m.train_on_batch(X, y, sample_weight=-np.ones(N)), ValueError),
        (lambda m, X, y: m.train_on_batch(X, y, sample_weight=np.full(N, np.nan)), ValueError),
        (
            lambda m, X, y: m.train_on_batch(
                X, y, sample_weight=np.ones(N), class_weight={0: 1.0, 1: 2.0}
            ),
            ValueError,
        ),
        (lambda m, X, y: m.train_on_batch(X, y, class_weight={0: -1.0}), ValueError),
        (lambda m, X, y: m.train_on_batch(X, None), TypeError),
        (lambda m, X, y: m.train_on_batch(X, y, return_dict="yes"), TypeError),
        (lambda m, X, y: m.test_on_batch(X[:, :2], y), ValueError),
        (lambda m, X, y: m.test_on_batch(X, y, sample_weight=np.ones(3)), ValueError),
        (lambda m, X, y: m.test_on_batch(X, None), TypeError),
        (lambda m, X, y: m.predict_on_batch(X[:, :2]), ValueError),
        (lambda m, X, y: m(X[:, :2]), ValueError),
        (lambda m, X, y: m(X[:, :2], training=True), ValueError),
        (lambda m, X, y: m(X, training="yes"), TypeError),
    ],
)
def test_bad_input_is_refused_before_anything_changes(call, error, backend64):
    X, y = data()
    model = net(backend64)
    model.train_on_batch(X, y)  # optimizer state to keep
    weights, (state, iterations) = host_weights(model), _state(model)
    with pytest.raises(error):
        call(model, X, y)
    for a, b in zip(host_weights(model), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    after, after_iterations = _state(model)
    assert after_iterations == iterations
    for s, t in zip(after, state, strict=True):
        for k in s:
            np.testing.assert_array_equal(s[k], t[k])


def test_the_batch_calls_need_a_compiled_model():
    X, y = data()
    model = net(bp.backend.resolve("numpy"), compiled=False)
    with pytest.raises(RuntimeError, match=r"train_on_batch\(\) needs a compiled model"):
        model.train_on_batch(X, y)
    with pytest.raises(RuntimeError, match=r"test_on_batch\(\) needs a compiled model"):
        model.test_on_batch(X, y)
    model.predict_on_batch(X)  # inference needs no compile, as predict
    model(X)


# -- test_on_batch, predict_on_batch, model(X) ------------------------------------------------


def test_test_on_batch_equals_evaluate_and_changes_nothing(backend64):
    X, y = data(2)
    w = np.linspace(0.1, 1.0, N)
    model = net(backend64)
    model.train_on_batch(X, y)  # moving statistics away from their start
    weights = host_weights(model)
    got = model.test_on_batch(on(backend64, X), y, sample_weight=w)
    want = model.evaluate(X, y, sample_weight=w)
    assert got == [want["loss"], want["accuracy"]]
    assert model.test_on_batch(X, y, return_dict=True) == model.evaluate(X, y)
    assert model.optimizer.iterations == 1
    for a, b in zip(host_weights(model), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    scalar = net(backend64, metrics=())
    assert scalar.test_on_batch(X, y) == scalar.evaluate(X, y)["loss"]


def test_predict_on_batch_and_model_call_equal_predict(backend64):
    X, _ = data(3)
    model = net(backend64)
    model.train_on_batch(*data())  # moving statistics away from their start
    Xd = on(backend64, X)
    want = model.predict(Xd)
    for got in (model.predict_on_batch(Xd), model(Xd), model(Xd, training=False)):
        assert_close(got, want, backend64, rtol=0.0)  # the input's library and device
    host = model(X)
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, bp.to_numpy(want))
    assert isinstance(model.predict_on_batch(X), np.ndarray)


def test_model_call_in_training_mode_normalizes_over_the_batch(backend64):
    """``model(X, training=True)`` normalizes with the batch's statistics and updates the
    moving statistics (as Keras's BatchNormalization does when called in training mode); the
    trainable weights and the optimizer are left alone."""
    X, _ = data(4)
    model = bp.Sequential(
        [BatchNormalization(input_shape=(3,))], backend=backend64.spec, dtype="float64"
    )
    model.compile(loss="mse", optimizer="adam")
    mu, var = X.mean(axis=0), X.var(axis=0)
    out = model(on(backend64, X), training=True)
    assert_close(out, (X - mu) / np.sqrt(var + 1e-3), backend64)
    gamma, beta, moving_mean, moving_var = host_weights(model)
    np.testing.assert_array_equal(gamma, np.ones(3))
    np.testing.assert_array_equal(beta, np.zeros(3))
    np.testing.assert_allclose(moving_mean, 0.01 * mu, rtol=1e-12)
    np.testing.assert_allclose(moving_var, 0.99 + 0.01 * var, rtol=1e-12)
    assert model.optimizer.iterations == 0 and not model.optimizer.state
    # inference mode normalizes with the moving statistics, and leaves them
    out = model(X)
    np.testing.assert_allclose(out, (X - moving_mean) / np.sqrt(moving_var + 1e-3), rtol=1e-12)
    np.testing.assert_array_equal(host_weights(model)[2], moving_mean)


def test_model_call_in_training_mode_leaves_a_frozen_batchnorm_alone():
    X, _ = data()
    layer = BatchNormalization(input_shape=(3,))
    model = bp.Sequential([layer], dtype="float64")
    layer.trainable = False  # Keras: a frozen BatchNormalization runs in inference mode
    before = host_weights(model)
    np.testing.assert_array_equal(model(X, training=True), model(X))
    for a, b in zip(host_weights(model), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_call_in_training_mode_drops_as_a_training_step_does():
    X, _ = data()

    def dropout_net():
        return bp.Sequential(
            [Dense(8, "relu", input_dim=3), Dropout(0.5), Dense(2)], dtype="float64", seed=4
        )

    model, twin = dropout_net(), dropout_net()
    out = model(X, training=True)
    np.testing.assert_array_equal(out, twin.forward(X, training=True))  # the same masks
    assert not np.allclose(out, model(X))  # some units dropped
    np.testing.assert_array_equal(model(X), twin.predict(X))


# -- weights ----------------------------------------------------------------------------------


def frozen_net(backend):
    model = net(backend)
    model.layers[2].trainable = False
    return model


def test_weights_in_keras_order_split_by_trainable(backend64):
    model = frozen_net(backend64)
    d0, bn, d2 = (layer.name for layer in model.layers)
    paths = [w.path for w in model.weights]
    assert paths == [
        f"{d0}/kernel", f"{d0}/bias",
        f"{bn}/gamma", f"{bn}/beta", f"{bn}/moving_mean", f"{bn}/moving_variance",
        f"{d2}/kernel", f"{d2}/bias",
    ]  # fmt: skip
    assert [w.path for w in model.trainable_weights] == paths[:4]
    assert [w.path for w in model.non_trainable_weights] == paths[4:]
    assert [w.name for w in model.weights[:2]] == ["kernel", "bias"]
    assert [w.trainable for w in model.weights] == [True] * 4 + [False] * 4
    for w, a in zip(model.weights, host_weights(model), strict=True):
        assert w.shape == a.shape
        np.testing.assert_array_equal(w.numpy(), a)
        np.testing.assert_array_equal(np.asarray(w), a)
        assert backend64.owns(w.value)
    assert bp.Sequential([Dense(2)]).weights == []  # unbuilt: no weights yet, as Keras


def test_writing_a_numpy_copy_leaves_the_model_and_assign_changes_it(backend64):
    X, y = data()
    model = frozen_net(backend64)
    before = model.predict(X)
    kernel = model.weights[0]
    copy = kernel.numpy()
    copy[...] = 0.0  # a host copy: the model is not changed
    np.testing.assert_array_equal(model.predict(X), before)
    # assign writes through to the model, on every backend (JAX's arrays are immutable)
    for i, w in enumerate(model.weights):
        value = np.full(w.shape, 0.1 * (i + 1))
        w.assign(on(backend64, value) if i % 2 else value)
    for i, a in enumerate(host_weights(model)):
        np.testing.assert_array_equal(a, np.full(a.shape, 0.1 * (i + 1)))
    twin = frozen_net(backend64)
    twin.set_weights(host_weights(model))
    np.testing.assert_array_equal(model.predict(X), twin.predict(X))
    # and training goes on from the assigned weights, as from set_weights
    model.train_on_batch(X, y)
    twin.train_on_batch(X, y)
    same_weights(model, twin)


def test_a_weight_reads_the_current_value_after_training(backend64):
    X, y = data()
    model = net(backend64)
    kernel = model.trainable_weights[0]
    model.fit(X, y, epochs=2, batch_size=4, verbose=0)
    np.testing.assert_array_equal(kernel.numpy(), host_weights(model)[0])


def test_assign_refuses_a_wrong_shape_and_changes_nothing():
    model = frozen_net(bp.backend.resolve("numpy"))
    before = host_weights(model)
    with pytest.raises(
        ValueError, match=r"assign: dense_?\d*/kernel expects shape \(3, 5\), received \(5, 3\)"
    ):
        model.weights[0].assign(np.zeros((5, 3)))
    for a, b in zip(host_weights(model), before, strict=True):
        np.testing.assert_array_equal(a, b)


# -- pop --------------------------------------------------------------------------------------


def test_a_model_popped_empty_says_it_has_no_layers():
    """fit on a compiled model emptied by pop() blamed y for the model's "3 outputs" (the old
    input width), and output_shape raised a bare TypeError."""
    X, y = np.ones((20, 3)), np.ones(20)
    model = bp.Sequential([Dense(1, input_dim=3)], seed=0)
    model.compile(loss="mse")
    model.fit(X, y, verbose=0)
    model.pop()
    for call in (
        lambda: model.fit(X, y, verbose=0),
        lambda: model.evaluate(X, y),
        lambda: model.train_on_batch(X, y),
        lambda: model.test_on_batch(X, y),
        lambda: model.output_shape,
        lambda: bp.Sequential().output_dim,
    ):
        with pytest.raises(ValueError, match="no layers"):
            call()


def test_pop_removes_the_last_layer_and_returns_it(backend64):
    X, _ = data()
    model = net(backend64, compiled=False)
    hidden = bp.to_numpy(model.layers[1].forward(model.layers[0].forward(on(backend64, X))))
    last = model.layers[-1]
    assert model.pop() is last
    assert len(model.layers) == 2 and model.output_shape == (5,)
    np.testing.assert_allclose(model.predict(X), hidden, rtol=1e-12)
    assert len(model.weights) == 6
    other = bp.Sequential([Dense(5, input_dim=3)], backend=backend64.spec, dtype="float64")
    other.add(last)  # a popped layer belongs to no model any more
    model.pop()
    model.pop()
    assert model.layers == [] and model.weights == []
    with pytest.raises(IndexError, match="no layers"):
        model.pop()


def test_pop_keeps_the_optimizer_state_of_the_remaining_weights(backend64):
    """Keras's optimizer keeps each remaining variable's moments and the step count; the
    popped layer's are dropped, so the next fit uses no state of a weight that is gone."""
    X, y = data()

    def layers():
        return [Dense(5, "relu", input_dim=3), BatchNormalization(), Dense(4, "relu")]

    model = bp.Sequential(
        [*layers(), Dense(1, "sigmoid")], backend=backend64.spec, dtype="float64", seed=0
    )
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.Adam(0.05))
    model.fit(X, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    (state,), iterations = _state(model)
    model.pop()
    kept = sum(math.prod(w.shape) for w in model.trainable_weights)
    (after,), after_iterations = _state(model)
    assert after_iterations == iterations
    assert after.keys() == state.keys()
    for k in state:
        np.testing.assert_array_equal(after[k], state[k][:kept])
    # the next fit equals a model that had these weights and this state to begin with
    target = np.random.default_rng(5).normal(size=(N, 4))
    twin = bp.Sequential(layers(), backend=backend64.spec, dtype="float64")
    twin.compile(loss="mse", optimizer=bp.optimizers.Adam(0.05))
    twin.set_weights(host_weights(model))
    twin.optimizer.state = [{k: on(backend64, v) for k, v in after.items()}]
    twin.optimizer.iterations = iterations
    model.compile(loss="mse", optimizer=model.optimizer)  # a new loss for the new output
    model.fit(X, target, batch_size=4, shuffle=False, verbose=0)
    twin.fit(X, target, batch_size=4, shuffle=False, verbose=0)
    same_weights(model, twin)


def test_pop_then_add_refuses_the_old_state_until_compiled_again():
    X, y = data()
    model = net(bp.backend.resolve("numpy"))
    model.fit(X, y, epochs=1, batch_size=4, verbose=0)
    model.pop()
    model.add(Dense(1, "sigmoid"))
    weights = host_weights(model)
    with pytest.raises(ValueError, match="compile"):
        model.fit(X, y, verbose=0)
    for a, b in zip(host_weights(model), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    model.compile(loss="binary_crossentropy", optimizer="adam")
    model.fit(X, y, verbose=0)


def test_pop_resolves_the_metrics_for_the_new_output():
    X, _ = data()
    # "accuracy" of a regression is binary for one output, categorical for several
    model = bp.Sequential([Dense(3, input_dim=3), Dense(1)], dtype="float64")
    model.compile(loss="mse", optimizer="adam", metrics=["accuracy"])
    model.pop()
    onehot = np.eye(3)[np.arange(N) % 3]
    result = model.test_on_batch(X, onehot, return_dict=True)
    want = np.mean(np.argmax(model.predict(X), axis=1) == np.arange(N) % 3)
    assert result["accuracy"] == pytest.approx(want)
