"""BatchNormalization and LayerNormalization: gradients against PyTorch autograd and finite
differences, forward passes and moving statistics against NumPy formulas, Keras defaults and
counts, parity across backends and engines, save/load, frozen layers and argument checks."""

import functools
import json
import math
import re

import numpy as np
import pytest
from conftest import HAS_JAX, HAS_TORCH, assert_close, numeric_grad

import backprop as bp
from backprop.backend import resolve
from backprop.layers import Activation, BatchNormalization, Dense, LayerNormalization
from backprop.training import compiled as compiled_engine

BN, LN = BatchNormalization, LayerNormalization

# -- helpers -------------------------------------------------------------------------------------


def _labels(loss, rng, n, k):
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, n).astype(float)
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, n)]
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, k, n)
    return rng.normal(size=(n, k))


def _randomize(model, rng):
    """Weights away from the defaults (gamma 1, beta 0, moving stats 0 and 1), which would
    hide a missing factor of gamma or a wrong statistic. Walks the layers in Keras order:
    each layer's params, then its buffers."""
    weights = []
    for layer in model.layers:
        for k, v in [*layer.params.items(), *layer.buffers.items()]:
            shape = tuple(v.shape)
            if k == "W":
                w = bp.to_numpy(v).astype(np.float64)
            elif k in ("gamma", "moving_variance"):
                w = rng.uniform(0.5, 2.0, shape)
            else:  # b, beta, moving_mean
                w = rng.normal(0.0, 0.5, shape)
            weights.append(w)
    model.set_weights(weights)


def _bn_ref(x, gamma, beta, eps):
    """Batch normalization in training mode: batch mean, biased variance (per feature)."""
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta, mu, var


def _bn_inference_ref(x, gamma, beta, mean, var, eps):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def _ln_ref(x, gamma, beta, eps):
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def _torch_loss_and_grads(model, X, y, loss_name, training):
    """The same network written with torch ops (F.batch_norm, F.layer_norm), differentiated by
    autograd. Returns the loss and one gradient per trainable weight, in get_weights order."""
    import torch
    import torch.nn.functional as F

    acts = {
        "relu": F.relu,
        "tanh": torch.tanh,
        "gelu": F.gelu,  # exact, as Keras (and backprop) by default
        "elu": F.elu,
        "sigmoid": torch.sigmoid,
        "softmax": lambda z: torch.softmax(z, dim=1),
        "linear": lambda z: z,
    }

    def t(a, grad=False):
        return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)

    weights = iter(model.get_weights())
    trainable = []
    a = t(X)
    for layer in model.layers:
        p = {k: t(next(weights), layer.trainable) for k in layer.params}
        buf = {k: t(next(weights)) for k in layer.buffers}
        if layer.trainable:
            trainable.extend(p.values())
        if isinstance(layer, Dense):
            a = a @ p["W"] + p["b"]
            a = acts[layer.activation.name](a)
        elif isinstance(layer, BatchNormalization):
            batch = training and layer.trainable  # a frozen layer uses its moving statistics
            a = F.batch_norm(
                a,
                None if batch else buf["moving_mean"],
                None if batch else buf["moving_variance"],
                p.get("gamma"),
                p.get("beta"),
                training=batch,
                eps=layer.epsilon,
            )
        elif isinstance(layer, LayerNormalization):
            a = F.layer_norm(a, (a.shape[1],), p.get("gamma"), p.get("beta"), eps=layer.epsilon)
        else:
            assert isinstance(layer, Activation)
            a = acts[layer.activation.name](a)
    assert next(weights, None) is None
    yt = torch.tensor(y)
    if loss_name == "binary_crossentropy":
        loss = F.binary_cross_entropy(a, yt.reshape(a.shape).double())
    elif loss_name == "categorical_crossentropy":
        loss = -(yt.double() * torch.log(a)).sum(dim=1).mean()
    elif loss_name == "sparse_categorical_crossentropy":
        loss = F.nll_loss(torch.log(a), yt.long())
    elif loss_name == "mse":
        loss = F.mse_loss(a, yt.double())
    else:
        loss = F.l1_loss(a, yt.double())
    loss.backward()
    return loss.item(), [w.grad.numpy() for w in trainable]


# (layers, loss, input features, outputs). Every width is 4 (or 1): JAX compiles each eager
# operation once per shape, so shared shapes keep the file fast.
ARCHS = {
    "bn-bce": (lambda: [Dense(4, "relu", input_dim=4), BN(), Dense(1, "sigmoid")],
               "binary_crossentropy", 4, 1),
    "ln-cce": (lambda: [Dense(4, "tanh", input_dim=4), LN(), Dense(4, "softmax")],
               "categorical_crossentropy", 4, 4),
    "bn-first-sparse": (lambda: [BN(momentum=0.9), Dense(4, "elu"), Dense(4, "softmax")],
                        "sparse_categorical_crossentropy", 4, 4),
    "ln-first-mse": (lambda: [LN(epsilon=1e-5), Dense(4, "elu"), Dense(4)], "mse", 4, 4),
    "bn-ln-mae": (lambda: [Dense(4, "sigmoid", input_dim=4), BN(), Dense(4, "relu"), LN(),
                           Dense(4)], "mae", 4, 4),
    "bn-output-mse": (lambda: [Dense(4, "tanh", input_dim=4), BN(epsilon=0.1)], "mse", 4, 4),
    "ln-output-mae": (lambda: [Dense(4, input_dim=4), LN()], "mae", 4, 4),
    "bn-activation-cce": (lambda: [Dense(4, input_dim=4), BN(), Activation("relu"),
                                   Dense(4, "softmax")], "categorical_crossentropy", 4, 4),
    "no-center-no-scale-sparse": (lambda: [Dense(4, "relu", input_dim=4), BN(center=False),
                                           Dense(4, "gelu"), LN(scale=False),
                                           Dense(4, "softmax")],
                                  "sparse_categorical_crossentropy", 4, 4),
    "bare-bce": (lambda: [Dense(4, input_dim=4), BN(center=False, scale=False),
                          Dense(4, "tanh"), LN(center=False, scale=False),
                          Dense(1, "sigmoid")], "binary_crossentropy", 4, 1),
    "bn-scale-only-ln-center-only-mse": (lambda: [Dense(4, "tanh", input_dim=4),
                                                  BN(scale=False), Dense(4, "sigmoid"),
                                                  LN(center=False), Dense(4)], "mse", 4, 4),
}  # fmt: skip


def _arch_model(arch, backend="numpy", dtype="float64", seed=11, rng=None):
    make, loss_name, d_in, _ = ARCHS[arch]
    model = bp.Sequential(make(), backend=backend, dtype=dtype, seed=seed)
    if not model.built:
        model.build(d_in)
    model.compile(loss=loss_name, optimizer="sgd")
    if rng is not None:
        _randomize(model, rng)
    return model


def _slots(model):
    """(layer, name) of each array of get_weights: each layer's params, then its buffers."""
    return [(layer, k) for layer in model.layers for k in [*layer.params, *layer.buffers]]


def _weights_equal(a, b):
    assert len(a) == len(b)
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)


def _net(backend="numpy", dtype="float64", seed=3, momentum=0.9):
    """Dense - BN - Dense - LN - Dense: every kind of weight, for training tests."""
    return bp.Sequential(
        [
            Dense(6, "relu", input_dim=3),
            BN(momentum=momentum),
            Dense(5, "tanh"),
            LN(),
            Dense(3, "softmax"),
        ],
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


def _data(n=45, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * np.array([1.0, 3.0, 0.5]) + np.array([0.5, -1.0, 2.0])
    y = (X[:, 0] > 0.5).astype(np.int64) + (X[:, 1] > -1.0).astype(np.int64)
    return X, y


# -- 1. gradients --------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")
@pytest.mark.parametrize("arch", list(ARCHS))
def test_gradients_equal_torch_autograd(arch, backend64):
    """Training mode (batch statistics, F.batch_norm(training=True)) and inference mode
    (moving statistics), on weights away from their defaults."""
    rng = np.random.default_rng(len(arch))
    model = _arch_model(arch, backend64, rng=rng)
    _, loss_name, d_in, k = ARCHS[arch]
    X = rng.normal(size=(16, d_in)) * 2.0 + 0.5
    y = _labels(loss_name, rng, 16, k)
    n_trainable = sum(len(layer.params) for layer in model.layers)
    weights = model.get_weights()
    for training in (True, False):
        model.set_weights(weights)  # a training-mode pass moved the moving statistics
        t_loss, t_grads = _torch_loss_and_grads(model, X, y, loss_name, training)
        loss, grads = model.loss_and_gradients(X, y, training=training)
        assert loss == pytest.approx(t_loss, rel=1e-9), f"training={training}"
        assert len(grads) == len(t_grads) == n_trainable
        for g, tg in zip(grads, t_grads, strict=True):
            assert g.shape == tg.shape
            np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-13, err_msg=f"{training=}")


@pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")
@pytest.mark.parametrize("frozen", [0, 1, 3], ids=["dense", "bn", "ln"])
def test_frozen_layer_gradients_left_out_and_equal_torch(frozen, backend64):
    """A frozen layer's weights get no gradient; a frozen BN normalises with its moving
    statistics even in training mode, and the gradient flows through it as a constant
    affine map."""
    rng = np.random.default_rng(7)
    model = _arch_model("bn-ln-mae", backend64, rng=rng)
    model.layers[frozen].trainable = False
    model.compile(loss="mae", optimizer="sgd")
    X = rng.normal(size=(16, 4))
    y = rng.normal(size=(16, 4))
    t_loss, t_grads = _torch_loss_and_grads(model, X, y, "mae", training=True)
    loss, grads = model.loss_and_gradients(X, y, training=True)
    expected_shapes = [
        tuple(v.shape) for layer in model.layers if layer.trainable for v in layer.params.values()
    ]
    assert [g.shape for g in grads] == expected_shapes
    assert len(grads) == len(model.get_weights()) - 2 - 2  # minus moving stats, frozen pair
    assert loss == pytest.approx(t_loss, rel=1e-9)
    for g, tg in zip(grads, t_grads, strict=True):
        np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_gradcheck_inference_mode(arch):
    rng = np.random.default_rng(len(arch) + 1)
    model = _arch_model(arch, rng=rng)
    _, loss_name, d_in, k = ARCHS[arch]
    X = rng.normal(size=(6, d_in))
    y = _labels(loss_name, rng, 6, k)
    assert bp.gradcheck(model, X, y) < 1e-6


def test_gradcheck_on_every_float64_backend(backend64):
    rng = np.random.default_rng(5)
    model = _arch_model("bn-output-mse", backend64, rng=rng)
    X = rng.normal(size=(16, 4))
    y = rng.normal(size=(16, 4))
    assert bp.gradcheck(model, X, y) < 1e-6


@pytest.mark.parametrize("arch", ["bn-ln-mae", "bn-first-sparse", "bn-output-mse"])
def test_training_mode_gradients_equal_finite_differences(arch):
    """gradcheck runs in inference mode; this checks the batch-statistics backward pass (dx
    through mu and var) against central differences of the training-mode loss itself."""
    rng = np.random.default_rng(3)
    model = _arch_model(arch, rng=rng)
    _, loss_name, d_in, k = ARCHS[arch]
    X = rng.normal(size=(7, d_in))
    y = _labels(loss_name, rng, 7, k)
    weights = model.get_weights()
    _, grads = model.loss_and_gradients(X, y, training=True)
    trainable = [i for i, (layer, k) in enumerate(_slots(model)) if k in layer.params]
    worst = 0.0
    for i, g in zip(trainable, grads, strict=True):

        def loss_at(w, i=i):
            model.set_weights([w if j == i else v for j, v in enumerate(weights)])
            return model.loss_and_gradients(X, y, training=True)[0]

        g_num = numeric_grad(loss_at, weights[i])
        err = np.linalg.norm(g - g_num) / max(np.linalg.norm(g) + np.linalg.norm(g_num), 1e-300)
        worst = max(worst, err)
    assert worst < 1e-6


def test_batch_statistics_cancel_the_bias_before_bn():
    """In training mode BN subtracts the batch mean: the Dense bias feeding it has no effect,
    so its gradient is zero (to rounding) while its kernel's is not."""
    rng = np.random.default_rng(0)
    model = _arch_model("bn-activation-cce", rng=rng)  # Dense (linear) straight into BN
    X, y = rng.normal(size=(10, 4)), np.eye(4)[rng.integers(0, 4, 10)]
    _, grads = model.loss_and_gradients(X, y, training=True)
    assert np.max(np.abs(grads[1])) < 1e-14 * max(1.0, np.max(np.abs(grads[0])))
    assert np.max(np.abs(grads[0])) > 1e-3
    _, grads = model.loss_and_gradients(X, y, training=False)
    assert np.max(np.abs(grads[1])) > 1e-3  # moving statistics are constants


# -- 2. forward passes, moving statistics, defaults, counts ---------------------------------------


def test_batchnorm_forward_against_numpy(backend64):
    rng = np.random.default_rng(1)
    model = bp.Sequential([BN(momentum=0.8, epsilon=1e-2)], backend=backend64, dtype="float64")
    model.build(4)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    mm, mv = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    model.set_weights([gamma, beta, mm, mv])
    layer = model.layers[0]
    X = rng.normal(size=(9, 4)) * 3 + 1
    x = backend64.asarray(X, backend64.dtype("float64"))

    # inference: moving statistics, and they stay put
    y = layer.forward(x, training=False)
    assert_close(y, _bn_inference_ref(X, gamma, beta, mm, mv, 1e-2), backend64, rtol=1e-12)
    _weights_equal(model.get_weights(), [gamma, beta, mm, mv])

    # training: batch mean and biased variance; the moving statistics move by the recurrence
    y = layer.forward(x, training=True)
    ref, mu, var = _bn_ref(X, gamma, beta, 1e-2)
    assert_close(y, ref, backend64, rtol=1e-12, atol=1e-14)
    w = model.get_weights()
    np.testing.assert_allclose(w[2], 0.8 * mm + 0.2 * mu, rtol=1e-13)
    np.testing.assert_allclose(w[3], 0.8 * mv + 0.2 * var, rtol=1e-13)
    # the biased variance, not torch's unbiased one, goes into the moving variance (Keras)
    assert not np.allclose(w[3], 0.8 * mv + 0.2 * X.var(axis=0, ddof=1), rtol=1e-6)
    _weights_equal(w[:2], [gamma, beta])


def test_layernorm_forward_against_numpy(backend64):
    rng = np.random.default_rng(2)
    model = bp.Sequential([LN()], backend=backend64, dtype="float64")
    model.build(5)
    gamma, beta = rng.uniform(0.5, 2, 5), rng.normal(size=5)
    model.set_weights([gamma, beta])
    X = rng.normal(size=(6, 5)) * rng.uniform(0.1, 10, (6, 1)) + rng.normal(size=(6, 1))
    x = backend64.asarray(X, backend64.dtype("float64"))
    ref = _ln_ref(X, gamma, beta, 1e-3)
    for training in (True, False):  # the same in both modes
        assert_close(model.layers[0].forward(x, training), ref, backend64, rtol=1e-12, atol=1e-14)
    # per row: a row's output does not depend on the other rows
    assert_close(model.predict(x[:2, ...]), ref[:2], backend64, rtol=1e-12, atol=1e-14)
    assert model.get_weights()[0].shape == (5,) and len(model.get_weights()) == 2


def test_center_scale_false_forward():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(8, 3)) * 2 + 1
    bn = bp.Sequential([BN(center=False, scale=False)], dtype="float64")
    bn.build(3)
    np.testing.assert_allclose(bn.predict(X), X / np.sqrt(1 + 1e-3), rtol=1e-12)
    np.testing.assert_allclose(
        bn.layers[0].forward(X, training=True), _bn_ref(X, 1.0, 0.0, 1e-3)[0], rtol=1e-12
    )
    ln = bp.Sequential([LN(center=False)], dtype="float64")
    ln.build(3)
    gamma = rng.uniform(0.5, 2, 3)
    ln.set_weights([gamma])
    np.testing.assert_allclose(ln.predict(X), _ln_ref(X, gamma, 0.0, 1e-3), rtol=1e-12)


def test_moving_statistics_recurrence_direct_forward(backend64):
    rng = np.random.default_rng(4)
    model = bp.Sequential([BN(momentum=0.75)], backend=backend64, dtype="float64")
    model.build(3)
    layer = model.layers[0]
    mean, var = np.zeros(3), np.ones(3)
    for step in range(5):
        X = rng.normal(size=(4 + step, 3)) * (step + 1) + step
        layer.forward(backend64.asarray(X, backend64.dtype("float64")), training=True)
        mean = 0.75 * mean + 0.25 * X.mean(axis=0)
        var = 0.75 * var + 0.25 * X.var(axis=0)
        layer.forward(backend64.asarray(X, backend64.dtype("float64")), training=False)
    w = model.get_weights()
    np.testing.assert_allclose(w[2], mean, rtol=1e-12)
    np.testing.assert_allclose(w[3], var, rtol=1e-12)


def test_moving_statistics_recurrence_through_fit(backend64):
    """BN first (its input is the data whatever the optimizer does), no shuffle: the batches,
    hence the statistics, are known. On JAX the compiled epoch carries them through its loop."""
    X, y = _data(21)
    model = bp.Sequential(
        [BN(momentum=0.7), Dense(4, "tanh"), Dense(3, "softmax")],
        backend=backend64,
        dtype="float64",
        seed=0,
    )
    model.compile("sparse_categorical_crossentropy", "adam")
    model.fit(X, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    mean, var = np.zeros(3), np.ones(3)
    for _ in range(3):
        for lo in range(0, 21, 8):  # 8, 8 and 5 rows
            xb = X[lo : lo + 8]
            mean = 0.7 * mean + 0.3 * xb.mean(axis=0)
            var = 0.7 * var + 0.3 * xb.var(axis=0)
    w = model.get_weights()
    np.testing.assert_allclose(w[2], mean, rtol=1e-12)
    np.testing.assert_allclose(w[3], var, rtol=1e-12)
    # evaluate and predict read them, and leave them alone
    model.evaluate(X, y)
    model.predict(X)
    _weights_equal(model.get_weights()[2:4], [w[2], w[3]])


def test_keras_defaults_and_weight_order():
    bn, ln = BN(), LN()
    c = bn.get_config()
    assert re.fullmatch(r"batch_normalization(_\d+)?", c.pop("name"))
    assert c == {
        "epsilon": 0.001,
        "center": True,
        "scale": True,
        "beta_initializer": {"name": "zeros"},
        "gamma_initializer": {"name": "ones"},
        "momentum": 0.99,
        "moving_mean_initializer": {"name": "zeros"},
        "moving_variance_initializer": {"name": "ones"},
    }
    c = ln.get_config()
    assert re.fullmatch(r"layer_normalization(_\d+)?", c.pop("name"))
    assert c == {
        "epsilon": 0.001,
        "center": True,
        "scale": True,
        "beta_initializer": {"name": "zeros"},
        "gamma_initializer": {"name": "ones"},
    }
    json.dumps([bn.get_config(), ln.get_config()])
    model = bp.Sequential([Dense(4, input_dim=2), bn, ln], seed=0)
    w = model.get_weights()
    assert [a.shape for a in w] == [(2, 4), (4,), (4,), (4,), (4,), (4,), (4,), (4,)]
    # Keras order: gamma, beta, moving_mean, moving_variance; then LN's gamma, beta
    for a, value in zip(w[2:], [1, 0, 0, 1, 1, 0], strict=True):
        np.testing.assert_array_equal(a, np.full(4, value, np.float32))
    assert list(bn.params) == ["gamma", "beta"]
    assert list(bn.buffers) == ["moving_mean", "moving_variance"]
    assert list(ln.params) == ["gamma", "beta"] and ln.buffers == {}
    # from_config gives the same layer back
    again = bp.layers.from_config("BatchNormalization", bn.get_config())
    assert again.get_config() == bn.get_config()


def test_initializers_are_used():
    model = bp.Sequential(
        [
            BN(
                beta_initializer="ones",
                gamma_initializer="zeros",
                moving_mean_initializer=bp.initializers.Constant(-2.0),
                moving_variance_initializer=bp.initializers.Constant(3.0),
            )
        ]
    )
    model.build(2)
    expected = [[0, 0], [1, 1], [-2, -2], [3, 3]]
    for w, e in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(w, e)
    config = model.layers[0].get_config()
    assert config["moving_variance_initializer"] == bp.initializers.Constant(3.0).get_config()
    again = bp.Sequential([bp.layers.from_config("BatchNormalization", config)])
    again.build(2)
    _weights_equal(again.get_weights(), model.get_weights())


def _summary_counts(model):
    text = model.summary(print_fn=None)
    return [int(re.search(rf"{what} params: (\d+)", text).group(1)) for what in
            ("Total", "Trainable", "Non-trainable")]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "total", "trainable"),
    [({}, 4 * 5, 2 * 5), ({"center": False}, 3 * 5, 5), ({"scale": False, "center": False}, 10, 0)],
)
def test_batchnorm_counts_like_keras(kwargs, total, trainable):
    model = bp.Sequential([Dense(5, input_dim=3), BN(**kwargs), LN(), Dense(1)])
    assert model.layers[1].count_params() == total
    assert model.layers[2].count_params() == 2 * 5
    dense = 3 * 5 + 5 + 5 + 1
    all_ = dense + total + 10
    assert model.count_params() == all_
    assert _summary_counts(model) == [all_, dense + trainable + 10, total - trainable]
    # a frozen layer's params count as non-trainable (Keras)
    model.layers[0].trainable = False
    assert _summary_counts(model) == [all_, 6 + trainable + 10, total - trainable + 20]


# -- 3. parity across backends and engines --------------------------------------------------------


def _fit(backend, dtype, epochs=3):
    X, y = _data()
    model = _net(backend, dtype)
    model.compile("sparse_categorical_crossentropy", bp.optimizers.Adam(0.02), ["accuracy"])
    # 45 rows in batches of 8: five full batches and one of 5
    h = model.fit(X, y, epochs=epochs, batch_size=8, verbose=0, validation_data=(X[:9], y[:9]))
    return h.history, model.get_weights(), model


@functools.lru_cache
def _fit_result(backend, dtype):
    """``_fit``'s history and weights, computed once per backend and dtype for this file."""
    hist, w, model = _fit(backend, dtype)
    return hist, w, model._compiled is not None


def test_parity_float64(backend64):
    ref_hist, ref_w, _ = _fit_result("numpy", "float64")
    hist, w, _ = _fit_result(backend64, "float64")
    assert list(hist) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    for k in ref_hist:
        np.testing.assert_allclose(hist[k], ref_hist[k], rtol=1e-9)
    assert len(w) == len(ref_w) == 12
    for a, b in zip(w, ref_w, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # the moving statistics did move
    assert not np.allclose(w[4], 0) and not np.allclose(w[5], 1)


def test_parity_float32(backend):
    ref_hist, ref_w, _ = _fit_result("numpy", "float32")
    hist, w, _ = _fit_result(backend, "float32")
    for k in ref_hist:
        np.testing.assert_allclose(hist[k], ref_hist[k], rtol=1e-4)
    for a, b in zip(w, ref_w, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not HAS_JAX, reason="needs jax")
def test_jax_compiled_epoch_equals_eager(monkeypatch):
    hist_c, w_c, was_compiled = _fit_result(resolve("jax"), "float64")
    assert was_compiled  # the compiled engine ran
    monkeypatch.setattr(compiled_engine, "program", lambda model, batch_size: None)
    hist_e, w_e, model = _fit("jax", "float64")
    assert model._compiled is None  # the eager engine ran
    for k in hist_e:
        np.testing.assert_allclose(hist_c[k], hist_e[k], rtol=1e-9)
    for a, b in zip(w_c, w_e, strict=True):  # moving statistics included
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not HAS_JAX, reason="needs jax")
@pytest.mark.parametrize("last", [BatchNormalization, LayerNormalization])
def test_a_normalization_as_the_last_layer_trains_in_the_compiled_epoch(monkeypatch, last):
    """The compiled step handed over the last layer's logits ``z``, which a normalization
    layer does not have: the epoch failed to trace (AttributeError)."""
    X, labels = _data()
    y = np.stack([labels, 2.0 - labels], axis=1).astype(np.float64)

    def fit(compiled: bool):
        if not compiled:
            monkeypatch.setattr(compiled_engine, "program", lambda model, batch_size: None)
        model = bp.Sequential([Dense(2, input_dim=3), last()], backend="jax", dtype="float64",
                              seed=0)  # fmt: skip
        model.compile("mse", "sgd", metrics=["mae"])
        history = model.fit(X, y, epochs=2, batch_size=8, verbose=0)
        assert history.params["engine"] == ("compiled" if compiled else "eager")
        return history.history, model.get_weights()

    (h_c, w_c), (h_e, w_e) = fit(True), fit(False)
    for k in h_e:
        np.testing.assert_allclose(h_c[k], h_e[k], rtol=1e-9)
    for a, b in zip(w_c, w_e, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# -- 4. save / load --------------------------------------------------------------------------------


def test_save_load_roundtrip(tmp_path, backend64):
    X, y = _data()
    _, _, model = _fit("numpy", "float64", epochs=2)
    path = tmp_path / "bn.npz"
    model.save(path)
    loaded = bp.load(path, backend=backend64.name, device=backend64.device)
    assert loaded.get_config() == model.get_config()
    _weights_equal(loaded.get_weights(), model.get_weights())  # moving stats included
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-12)
    assert loaded.evaluate(X, y) == pytest.approx(model.evaluate(X, y), rel=1e-12)


def test_to_moves_the_moving_statistics(backend64):
    X, y = _data()
    _, w, model = _fit("numpy", "float64", epochs=1)
    expected = model.predict(X)
    model.to(backend64.name, backend64.device)
    assert all(backend64.owns(a) for a in model.layers[1].buffers.values())
    _weights_equal(model.get_weights(), w)
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-12)
    assert model.evaluate(X, y)["loss"] > 0


def test_resumed_training_after_load_is_identical(tmp_path):
    """Optimizer state, shuffling stream and moving statistics all come back: one more epoch
    gives the same weights bit for bit (across backends, test_parity_float64 covers fit)."""
    X, y = _data()
    _, _, model = _fit("numpy", "float64", epochs=2)
    model.save(tmp_path / "bn.npz")
    loaded = bp.load(tmp_path / "bn.npz")
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    loaded.fit(X, y, epochs=1, batch_size=8, verbose=0)
    _weights_equal(loaded.get_weights(), model.get_weights())


def test_frozen_layer_saves_and_reloads_frozen(tmp_path):
    X, y = _data()
    model = _net()
    model.layers[1].trainable = False
    model.compile("sparse_categorical_crossentropy", "adam")
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    config = model.get_config()["layers"]
    assert config[1]["config"]["trainable"] is False
    assert all("trainable" not in c["config"] for i, c in enumerate(config) if i != 1)
    assert "trainable=False" in repr(model.layers[1])
    model.save(tmp_path / "frozen.npz")
    loaded = bp.load(tmp_path / "frozen.npz")
    assert [layer.trainable for layer in loaded.layers] == [True, False, True, True, True]
    _weights_equal(loaded.get_weights(), model.get_weights())
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    bn_before = loaded.get_weights()[2:6]
    loaded.fit(X, y, epochs=1, batch_size=8, verbose=0)
    _weights_equal(loaded.get_weights()[2:6], bn_before)  # still frozen, stats included


def test_save_after_freezing_without_recompile_loads_or_refuses(tmp_path):
    X, y = _data()
    model = _net()
    model.compile("sparse_categorical_crossentropy", "adam")
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    model.layers[1].trainable = False
    path = tmp_path / "m.npz"
    try:
        model.save(path)
    except ValueError as exc:  # refusing with a hint is fine too
        assert "compile" in str(exc)
        return
    loaded = bp.load(path)  # but a file written by save() must load
    assert loaded.layers[1].trainable is False
    _weights_equal(loaded.get_weights(), model.get_weights())


# -- 5. frozen layers ----------------------------------------------------------------------------


def test_frozen_layers_are_left_alone_by_fit(backend64):
    """Freeze BN; then unfreeze it and freeze Dense and LN instead; then unfreeze all. After
    each compile, theta holds exactly the trainable params, and a fit changes exactly the
    weights of trainable layers (moving statistics of a trainable BN included), leaving the
    frozen ones bit for bit. On JAX each configuration is a new compiled epoch."""
    X, y = _data()
    model = _net(backend64)
    total = sum(math.prod(w.shape) for w in model.get_weights())
    assert total == 111 and model.count_params() == 111
    # theta holds no moving statistics (12) and none of the frozen layers' params
    # (Dense 3x6+6 = 24, BN gamma and beta 12, LN gamma and beta 10)
    for frozen, theta_size in [((1,), 87), ((0, 3), 65), ((), 99)]:
        for i, layer in enumerate(model.layers):
            layer.trainable = i not in frozen
        model.compile("sparse_categorical_crossentropy", bp.optimizers.Adam(0.02))
        assert tuple(model._theta.shape) == (theta_size,)
        before = model.get_weights()
        model.fit(X, y, epochs=2, batch_size=8, verbose=0)
        after = model.get_weights()
        for i, (layer, k) in enumerate(_slots(model)):
            if layer.trainable:
                assert not np.array_equal(after[i], before[i]), f"{layer.name}.{k} unchanged"
            else:
                np.testing.assert_array_equal(after[i], before[i])  # bit for bit


def test_frozen_batchnorm_uses_moving_statistics_in_training():
    rng = np.random.default_rng(0)
    model = bp.Sequential([BN()], dtype="float64")
    model.build(3)
    w = [rng.uniform(0.5, 2, 3), rng.normal(size=3), rng.normal(size=3), rng.uniform(0.5, 2, 3)]
    model.set_weights(w)
    model.layers[0].trainable = False
    X = rng.normal(size=(6, 3))
    y = model.layers[0].forward(X, training=True)
    np.testing.assert_allclose(y, _bn_inference_ref(X, *w, 1e-3), rtol=1e-13)
    _weights_equal(model.get_weights(), w)


def test_freezing_between_compile_and_fit_is_honoured():
    X, y = _data()
    model = _net()
    model.compile("sparse_categorical_crossentropy", "adam")
    model.layers[1].trainable = False  # after compile, before any step
    before = model.get_weights()
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    _weights_equal(model.get_weights()[2:6], before[2:6])


@pytest.mark.parametrize("change", ["freeze", "unfreeze"])
def test_changing_trainable_after_fit_asks_for_compile(change):
    X, y = _data()
    model = _net()
    if change == "unfreeze":
        model.layers[3].trainable = False
    model.compile("sparse_categorical_crossentropy", "adam")
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    model.layers[3].trainable = change == "unfreeze"
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"optimizer's state.*compile\("):
        model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    _weights_equal(model.get_weights(), before)
    model.compile("sparse_categorical_crossentropy", "adam")
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    changed = not np.array_equal(model.get_weights()[8], before[8])
    assert changed == (change == "unfreeze")


def test_loss_and_gradients_follows_trainable_without_compile():
    X, y = _data(10)
    model = _net()
    model.compile("sparse_categorical_crossentropy", "sgd")
    _, grads = model.loss_and_gradients(X, y)
    assert len(grads) == 10
    model.layers[1].trainable = False
    _, grads = model.loss_and_gradients(X, y)
    assert [g.shape for g in grads] == [(3, 6), (6,), (6, 5), (5,), (5,), (5,), (5, 3), (3,)]


# -- 6. argument checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [1.0, -0.1, float("nan"), "x", None, True, 2])
def test_bad_momentum(momentum):
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\), received"):
        BN(momentum=momentum)


@pytest.mark.parametrize("cls", [BN, LN])
@pytest.mark.parametrize("epsilon", [0, 0.0, -1, float("nan"), float("inf"), "x", None])
def test_bad_epsilon(cls, epsilon):
    with pytest.raises(ValueError, match="epsilon must be a positive number, received"):
        cls(epsilon=epsilon)


@pytest.mark.parametrize("cls", [BN, LN])
@pytest.mark.parametrize("shape", [(5,), (5, 3, 1), (5, 4), (5, 2)])
def test_bad_input_shape_at_forward(cls, shape, backend):
    model = bp.Sequential([Dense(3, input_dim=2), cls()], backend=backend)
    x = backend.asarray(np.ones(shape), backend.dtype("float32"))
    with pytest.raises(ValueError, match=r"expected input of shape \(n, 3\), received shape"):
        model.layers[1].forward(x, training=True)
    with pytest.raises(ValueError, match=r"expected input of shape \(n, 3\)"):
        model.layers[1].forward(x, training=False)


@pytest.mark.parametrize("cls", [BN, LN])
def test_unbuilt_layer_and_backward_before_forward_refused(cls):
    with pytest.raises(RuntimeError, match="not built"):
        cls().forward(np.ones((2, 3)))
    layer = cls()
    bp.Sequential([layer]).build(3)
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward"):
        layer.backward(np.ones((2, 3)))


@pytest.mark.parametrize("cls", [BN, LN])
@pytest.mark.parametrize("value", ["yes", 1, None, np.array([True])])
def test_trainable_must_be_a_bool(cls, value):
    with pytest.raises(TypeError, match="trainable must be True or False"):
        cls(trainable=value)
    layer = cls()
    with pytest.raises(TypeError, match="trainable must be True or False"):
        layer.trainable = value
    assert layer.trainable is True


def test_numpy_scalars_become_python_floats():
    bn = BN(momentum=np.float32(0.9), epsilon=np.float64(1e-5))
    assert type(bn.momentum) is float and type(bn.epsilon) is float
    assert bn.momentum == float(np.float32(0.9)) and bn.epsilon == 1e-5
    ln = LN(epsilon=np.float32(1e-4))
    assert type(ln.epsilon) is float
    assert BN(momentum=np.int64(0)).momentum == 0.0
    json.dumps([bn.get_config(), ln.get_config()])
    assert "np." not in repr(bn)


# -- 7. JAX: the compiled probe and predict read the current moving statistics -------------------


def test_probe_predict_evaluate_read_current_moving_statistics(backend64):
    """Fit (on JAX: compiles the epoch and the probe), then change only the moving statistics:
    dead_layers, predict and evaluate must see the new values, not ones baked into a program."""
    X, y = _data(30)
    y = (y > 0).astype(float)

    def make(backend):
        m = bp.Sequential(
            [Dense(3, input_dim=3), BN(), Dense(4, "relu"), Dense(1, "sigmoid")],
            backend=backend,
            dtype="float64",
            seed=1,
        )
        m.compile("binary_crossentropy", "adam", ["accuracy"])
        return m

    model = make(backend64)
    model.fit(X, y, epochs=2, batch_size=30, verbose=0)  # one full batch per epoch
    assert model.dead_layers(X) == []
    w = model.get_weights()
    w[6] = np.abs(w[6]) + 0.1  # the ReLU layer: positive kernel, zero bias
    w[7] = np.zeros_like(w[7])
    w[2], w[3] = np.ones(3), np.zeros(3)  # gamma 1, beta 0
    ref = make("numpy")
    for mean, dead in [(100.0, [2]), (-100.0, [])]:
        w[4] = np.full(3, mean)  # BN output ~ (x - mean): all negative, or all positive
        model.set_weights(w)
        ref.set_weights(w)
        assert model.dead_layers(X) == [model.layers[i].name for i in dead]
        assert ref.dead_layers(X) == [ref.layers[i].name for i in dead]
        np.testing.assert_allclose(model.predict(X), ref.predict(X), rtol=1e-12)
        got, want = model.evaluate(X, y), ref.evaluate(X, y)
        assert got == pytest.approx(want, rel=1e-12)
        # and the probe's forward pass left the model's weights as they were
        _weights_equal(model.get_weights(), w)
    # inference predictions are per row: batching does not change them
    np.testing.assert_allclose(model.predict(X, batch_size=7), model.predict(X), rtol=1e-13)
    # fit on the changed statistics starts from them (the compiled epoch takes them as
    # inputs); one full batch, so the shuffle does not change the batch mean
    model.fit(X, y, epochs=1, batch_size=30, verbose=0)
    expected = 0.99 * w[4] + 0.01 * (X @ w[0] + w[1]).mean(axis=0)
    np.testing.assert_allclose(model.get_weights()[4], expected, rtol=1e-12)


def test_swapping_frozen_layers_of_the_same_size_asks_for_compile():
    """Freeze a BN(4) and unfreeze an LN(4) (8 params each): theta keeps its length, but the
    optimizer's moments belong to other weights."""
    X = np.random.default_rng(0).normal(size=(32, 3))
    y = (X[:, 0] > 0).astype(int)
    bn, ln = BatchNormalization(), LayerNormalization(trainable=False)
    model = bp.Sequential([Dense(4, input_dim=3), bn, ln, Dense(1, "sigmoid")], seed=0)
    model.compile("binary_crossentropy", "adam")
    model.fit(X, y, epochs=1, verbose=0)
    size = model._theta.shape[0]
    bn.trainable, ln.trainable = False, True
    with pytest.raises(ValueError, match=r"frozen or unfrozen.*compile\("):
        model.fit(X, y, epochs=1, verbose=0)
    assert model._theta.shape[0] == size
    model.compile("binary_crossentropy", model.optimizer)
    assert model.optimizer.iterations == 0
    model.fit(X, y, epochs=1, verbose=0)


# -- images: (n, h, w, c), the features on the last axis -----------------------------------------
def _built_on(layer, backend, shape):
    layer.build_from_shape(shape, backend, np.random.default_rng(0), backend.dtype("float64"))
    return layer


@pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_on_images_equals_torch(backend64, training):
    """Statistics per channel over the batch, height and width (torch's batch_norm on the
    channels-first copy); gamma, beta and x's gradients by autograd; the moving statistics
    by their recurrence with the biased variance over n*h*w entries."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 5, 2)) * np.array([1.0, 3.0]) + np.array([2.0, -1.0])
    layer = _built_on(BN(momentum=0.8, epsilon=1e-3), backend64, (3, 5, 2))
    gamma, beta = rng.uniform(0.5, 2.0, 2), rng.normal(size=2)
    mean0, var0 = rng.normal(size=2), rng.uniform(0.5, 2.0, 2)
    layer.params = {"gamma": backend64.asarray(gamma), "beta": backend64.asarray(beta)}
    layer.buffers = {
        "moving_mean": backend64.asarray(mean0),
        "moving_variance": backend64.asarray(var0),
    }
    y = layer.forward(backend64.asarray(x), training=training)
    dy = rng.normal(size=x.shape)
    dx = layer.backward(backend64.asarray(dy))

    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    yt = F.batch_norm(
        xt.permute(0, 3, 1, 2),
        None if training else torch.tensor(mean0),
        None if training else torch.tensor(var0),
        gt,
        bt,
        training=training,
        eps=1e-3,
    ).permute(0, 2, 3, 1)
    (yt * torch.tensor(dy)).sum().backward()
    assert_close(y, yt.detach().numpy(), backend64, rtol=1e-9, atol=1e-12)
    assert_close(dx, xt.grad.numpy(), backend64, rtol=1e-9, atol=1e-12)
    assert_close(layer.grads["gamma"], gt.grad.numpy(), backend64, rtol=1e-9)
    assert_close(layer.grads["beta"], bt.grad.numpy(), backend64, rtol=1e-9)
    mu, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    expected_mean = 0.8 * mean0 + 0.2 * mu if training else mean0
    expected_var = 0.8 * var0 + 0.2 * var if training else var0
    assert_close(layer.buffers["moving_mean"], expected_mean, backend64, rtol=1e-12)
    assert_close(layer.buffers["moving_variance"], expected_var, backend64, rtol=1e-12)


def test_batchnorm_on_images_under_a_communicator_equals_the_plain_statistics():
    """The sharded engine's sums divide by the number of rows: each row's mean over its pixels
    is what it is handed, so one rank holding every row gets the plain statistics."""

    class OneRank:  # the communicator of a single rank holding all n rows
        def __init__(self, n):
            self.n = n

        def batch_mean(self, local_sum):
            return local_sum / self.n

        grad_mean = batch_mean

    backend = resolve("numpy")
    rng = np.random.default_rng(1)
    x, dy = rng.normal(size=(5, 3, 2, 4)), rng.normal(size=(5, 3, 2, 4))
    plain, synced = (_built_on(BN(), backend, (3, 2, 4)) for _ in range(2))
    synced.sync = OneRank(5)
    for layer in (plain, synced):
        layer.forward(x, training=True)
        layer.backward(dy)
    np.testing.assert_allclose(synced.forward(x, training=True), plain.forward(x, training=True))
    np.testing.assert_allclose(synced.backward(dy), plain.backward(dy), rtol=1e-12)
    for k in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(synced.buffers[k], plain.buffers[k], rtol=1e-12)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")
def test_layernorm_on_images_equals_torch(backend64):
    """Each pixel standardised over its channels (Keras's axis=-1): torch's layer_norm over
    the last axis, and its autograd."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 2, 5))
    layer = _built_on(LN(epsilon=1e-5), backend64, (4, 2, 5))
    gamma, beta = rng.uniform(0.5, 2.0, 5), rng.normal(size=5)
    layer.params = {"gamma": backend64.asarray(gamma), "beta": backend64.asarray(beta)}
    y = layer.forward(backend64.asarray(x), training=True)
    dy = rng.normal(size=x.shape)
    dx = layer.backward(backend64.asarray(dy))
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    yt = F.layer_norm(xt, (5,), gt, bt, eps=1e-5)
    (yt * torch.tensor(dy)).sum().backward()
    assert_close(y, yt.detach().numpy(), backend64, rtol=1e-9, atol=1e-12)
    assert_close(dx, xt.grad.numpy(), backend64, rtol=1e-9, atol=1e-12)
    assert_close(layer.grads["gamma"], gt.grad.numpy(), backend64, rtol=1e-9)
    assert_close(layer.grads["beta"], bt.grad.numpy(), backend64, rtol=1e-9)


@pytest.mark.parametrize("cls", [BN, LN])
def test_images_of_another_shape_are_refused(cls):
    layer = _built_on(cls(name="norm_img"), resolve("numpy"), (3, 5, 2))
    with pytest.raises(ValueError, match=r"norm_img expected input of shape \(n, 3, 5, 2\)"):
        layer.forward(np.ones((4, 3, 5, 3)), training=True)


@pytest.mark.parametrize("cls", [BN, LN])
def test_a_normalization_layer_can_be_the_first_layer(cls, backend64):
    """input_shape on the first layer, as Keras takes it: the model builds from it."""
    model = bp.Sequential(
        [cls(input_shape=(4, 4, 2)), bp.layers.Flatten(), Dense(3, "softmax")],
        backend=backend64,
        seed=0,
    )
    assert model.input_shape == (4, 4, 2) and model.output_shape == (3,)
    clone = bp.layers.from_config(cls.__name__, cls(input_shape=(3,)).get_config())
    assert clone.input_shape == (3,)
    X = np.random.default_rng(0).normal(size=(5, 4, 4, 2))
    assert bp.to_numpy(model.predict(X)).shape == (5, 3)
    with pytest.raises(ValueError, match="input_shape"):
        cls(input_shape=(0, 2))
