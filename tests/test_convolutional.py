"""Conv2D: forward passes and gradients (dx, dW, db) against PyTorch's conv2d and autograd in
float64 (the kernel permuted from Keras's layout), TensorFlow's 'same' padding, the output
shapes of Keras's formulas, every backend, argument checks, configs and a small CNN."""

import json
import math

import numpy as np
import pytest
from conftest import HAS_TORCH, assert_close

import backprop as bp
from backprop.backend import resolve
from backprop.layers import Conv2D

torch = pytest.importorskip("torch") if HAS_TORCH else None
requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")


def _tf_same_pads(size, k, s):
    """TensorFlow's 'same' padding of one axis: (before, after), the odd one after."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def torch_conv2d(x, W, b, strides, padding):
    """The oracle: x (n, h, w, c) and W (kh, kw, c, f) in Keras's layout, as torch tensors."""
    import torch.nn.functional as F

    xt = x.permute(0, 3, 1, 2)  # NCHW
    kh, kw = W.shape[:2]
    if padding == "same":
        top, bottom = _tf_same_pads(x.shape[1], kh, strides[0])
        left, right = _tf_same_pads(x.shape[2], kw, strides[1])
        xt = F.pad(xt, (left, right, top, bottom))
    z = F.conv2d(xt, W.permute(3, 2, 0, 1), b, stride=strides)
    return z.permute(0, 2, 3, 1)


def _built(layer, backend, shape, seed=0, dtype="float64"):
    layer.build_from_shape(shape, backend, np.random.default_rng(seed), backend.dtype(dtype))
    return layer


def _keras_out(size, k, s, padding):
    return math.ceil(size / s) if padding == "same" else (size - k) // s + 1


# (h, w, c_in, filters, kernel_size, strides, padding): strides 1 and 2, 'valid' and 'same',
# odd and even sizes, kernels 1x1, 3x3, 5x5 and rectangular
CASES = [
    (5, 5, 2, 3, 3, 1, "valid"),
    (6, 6, 2, 3, 3, 1, "same"),
    (7, 6, 3, 2, 3, 2, "same"),
    (8, 7, 2, 3, 3, 2, "valid"),
    (6, 5, 2, 4, 1, 1, "valid"),
    (5, 6, 1, 2, 1, 2, "same"),
    (7, 7, 2, 2, 5, 1, "same"),
    (9, 8, 2, 3, 5, 2, "valid"),
    (6, 7, 3, 2, (2, 3), (1, 2), "same"),
    (7, 6, 2, 3, (3, 2), (2, 1), "valid"),
    (4, 4, 2, 2, 4, 3, "same"),  # even kernel, stride beyond it: asymmetric pads, skipped rows
]


def _case_id(case):
    return "-".join(str(v).replace(" ", "") for v in case)


def _check_against_torch(backend, case, activation="linear", seed=0):
    h, w, c, f, k, s, padding = case
    layer = _built(
        Conv2D(f, k, strides=s, padding=padding, activation=activation), backend, (h, w, c)
    )
    rng = np.random.default_rng(seed)
    W = rng.normal(size=tuple(layer.params["W"].shape))
    b = rng.normal(size=(f,))
    x = rng.normal(size=(3, h, w, c))
    layer.params = {"W": backend.asarray(W), "b": backend.asarray(b)}
    y = layer.forward(backend.asarray(x), training=True)

    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    out = (3, _keras_out(h, kh, sh, padding), _keras_out(w, kw, sw, padding), f)
    assert tuple(y.shape) == out
    assert layer.compute_output_shape((h, w, c)) == out[1:]

    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    zt = torch_conv2d(xt, Wt, bt, (sh, sw), padding)
    yt = torch.tanh(zt) if activation == "tanh" else zt
    dy = rng.normal(size=tuple(yt.shape))
    (yt * torch.tensor(dy)).sum().backward()
    dx = layer.backward(backend.asarray(dy))
    assert_close(y, yt.detach().numpy(), backend, rtol=1e-9, atol=1e-12)
    assert_close(dx, xt.grad.numpy(), backend, rtol=1e-9, atol=1e-12)
    assert_close(layer.grads["W"], Wt.grad.numpy(), backend, rtol=1e-9, atol=1e-12)
    assert_close(layer.grads["b"], bt.grad.numpy(), backend, rtol=1e-9, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_and_gradients_match_torch(case):
    _check_against_torch(resolve("numpy"), case)


@requires_torch
def test_every_backend_matches_torch(backend64):
    """One case on every backend (JAX compiles each new op shape: one case keeps it quick):
    'same' padding, a rectangular kernel and strides 2 and 1 (col2im's phases)."""
    _check_against_torch(backend64, (5, 4, 2, 2, (2, 3), (2, 1), "same"), activation="tanh")


def test_float32_on_every_backend(backend):
    """The dtype and device of the input are kept (no silent float64, no host round trip)."""
    layer = _built(
        Conv2D(2, 2, padding="same", activation="relu"), backend, (3, 4, 2), dtype="float32"
    )
    x = backend.asarray(
        np.random.default_rng(1).normal(size=(2, 3, 4, 2)), backend.dtype("float32")
    )
    y = layer.forward(x, training=True)
    dx = layer.backward(y)
    assert backend.owns(y) and backend.owns(dx)
    assert y.dtype == x.dtype and dx.dtype == x.dtype
    assert tuple(dx.shape) == (2, 3, 4, 2) and tuple(y.shape) == (2, 3, 4, 2)


def test_keras_weight_layout_and_defaults():
    """W is (kh, kw, c_in, filters), b (filters,); Keras's defaults."""
    layer = Conv2D(8, (3, 2))
    assert (layer.strides, layer.padding, layer.use_bias) == ((1, 1), "valid", True)
    assert layer.activation.name == "linear"
    _built(layer, resolve("numpy"), (10, 9, 4))
    W = bp.to_numpy(layer.params["W"])
    assert W.shape == (3, 2, 4, 8) and layer.params["b"].shape == (8,)
    assert not np.any(bp.to_numpy(layer.params["b"]))
    assert layer.count_params() == 3 * 2 * 4 * 8 + 8
    assert layer.compute_output_shape((10, 9, 4)) == (8, 8, 8)


def test_a_pixel_in_several_windows_sums_their_gradients():
    """A hand case: 1 channel, a 2x2 kernel of ones over a 3x3 image, stride 1: dx counts the
    windows each pixel lies in (1 at the corners, 2 on the edges, 4 in the middle)."""
    backend = resolve("numpy")
    layer = _built(Conv2D(1, 2, use_bias=False), backend, (3, 3, 1))
    layer.params["W"] = backend.asarray(np.ones((2, 2, 1, 1)))
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    y = layer.forward(backend.asarray(x), training=True)
    np.testing.assert_array_equal(bp.to_numpy(y)[0, :, :, 0], [[8, 12], [20, 24]])
    dx = layer.backward(backend.asarray(np.ones((1, 2, 2, 1))))
    np.testing.assert_array_equal(bp.to_numpy(dx)[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_array_equal(
        bp.to_numpy(layer.grads["W"])[:, :, 0, 0],
        [[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]],
    )


def test_regularizer_and_no_bias():
    backend = resolve("numpy")
    layer = _built(
        Conv2D(2, 3, use_bias=False, kernel_regularizer=bp.regularizers.L2(0.1)), backend, (4, 4, 1)
    )
    assert list(layer.params) == ["W"]
    x = backend.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 1)))
    layer.forward(x, training=True)
    layer.backward(backend.asarray(np.zeros((2, 2, 2, 2))))
    W = bp.to_numpy(layer.params["W"])
    np.testing.assert_allclose(bp.to_numpy(layer.grads["W"]), 2 * 0.1 * W, rtol=1e-12)
    np.testing.assert_allclose(float(bp.to_numpy(layer.penalty())), 0.1 * np.sum(W * W), rtol=1e-12)


def test_first_layer_returns_no_dx():
    backend = resolve("numpy")
    layer = _built(Conv2D(2, 3), backend, (4, 4, 1))
    layer.need_dx = False
    layer.forward(backend.asarray(np.ones((1, 4, 4, 1))), training=True)
    assert layer.backward(backend.asarray(np.ones((1, 2, 2, 2)))) is None
    assert layer.grads["W"].shape == (3, 3, 1, 2)


def test_config_round_trip():
    layer = Conv2D(
        4,
        (3, 2),
        strides=(2, 1),
        padding="SAME",
        activation="relu",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer="l2",
        name="conv",
        input_shape=(8, 8, 1),
    )
    config = json.loads(json.dumps(layer.get_config()))
    again = bp.layers.from_config("Conv2D", config)
    assert type(again) is Conv2D and again.get_config() == layer.get_config()
    assert (again.kernel_size, again.strides, again.padding) == ((3, 2), (2, 1), "same")
    assert again.input_shape == (8, 8, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"filters": 0, "kernel_size": 3}, "filters"),
        ({"filters": -2, "kernel_size": 3}, "filters"),
        ({"filters": 2, "kernel_size": 0}, "kernel_size"),
        ({"filters": 2, "kernel_size": (3, -1)}, "kernel_size"),
        ({"filters": 2, "kernel_size": (3, 3, 3)}, "kernel_size"),
        ({"filters": 2, "kernel_size": 3, "strides": 0}, "strides"),
        ({"filters": 2, "kernel_size": 3, "padding": "full"}, "padding"),
        ({"filters": 2, "kernel_size": 3, "input_shape": (28, 28)}, "height, width, channels"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2D(**kwargs)


def test_bad_inputs_name_the_layer():
    backend = resolve("numpy")
    with pytest.raises(ValueError, match=r"conv_big.*kernel_size \(5, 5\) is larger"):
        _built(Conv2D(2, 5, name="conv_big"), backend, (4, 6, 1))
    with pytest.raises(ValueError, match=r"conv_flat.*height, width, channels"):
        _built(Conv2D(2, 3, name="conv_flat"), backend, (16,))
    layer = _built(Conv2D(2, 3, name="conv_in"), backend, (5, 5, 3))
    with pytest.raises(
        ValueError, match=r"conv_in expected .*\(n, height, width, 3\).*\(2, 5, 5, 1\)"
    ):
        layer.forward(backend.asarray(np.ones((2, 5, 5, 1))))
    with pytest.raises(ValueError, match=r"conv_in expected .*received shape \(2, 25\)"):
        layer.forward(backend.asarray(np.ones((2, 25))))
    # 'same' pads a small image up to the kernel: accepted
    assert _built(Conv2D(2, 5, padding="same"), backend, (4, 6, 1)).compute_output_shape(
        (4, 6, 1)
    ) == (4, 6, 2)


# -- in a model ----------------------------------------------------------------------------------
def _cnn(backend="numpy", dtype="float64", seed=0):
    """Conv2D-ReLU-MaxPool-Conv2D(strided)-Flatten-Dense-softmax, on 6x6 greyscale images."""
    L = bp.layers
    model = bp.Sequential(
        [
            L.Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 1)),
            L.MaxPooling2D(),
            L.Conv2D(4, (2, 3), strides=(1, 2)),
            L.Flatten(),
            L.Dense(3, "softmax"),
        ],
        backend=backend,
        dtype=dtype,
        seed=seed,
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model


def _images(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)), rng.integers(0, 3, n)


def test_small_cnn_trains_equally_on_every_backend(backend64):
    X, y = _images()
    reference = _cnn()
    expected = reference.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    model = _cnn(backend64, seed=0)
    history = model.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-9)
    for w, w_ref in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(w, w_ref, rtol=1e-9, atol=1e-12)


def test_gradcheck_on_cnns():
    """Every pooling, a strided 'same' convolution and BatchNormalization on images, by
    central differences (float64)."""
    L = bp.layers
    X, y = _images(6)
    model = _cnn()
    assert bp.gradcheck(model, X, y) < 1e-6
    model = bp.Sequential(
        [
            L.Conv2D(2, (3, 2), strides=2, padding="same", input_shape=(6, 6, 1)),
            L.BatchNormalization(),
            L.Activation("tanh"),
            L.AveragePooling2D(2, strides=1, padding="same"),
            L.Conv2D(3, 1, activation="sigmoid"),
            L.GlobalMaxPooling2D(),
            L.Dense(3, "softmax"),
        ],
        seed=1,
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    assert bp.gradcheck(model, X, y) < 1e-6
    model = bp.Sequential(
        [
            L.Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)),
            L.LayerNormalization(),
            L.GlobalAveragePooling2D(),
            L.Dense(3, "softmax"),
        ],
        seed=2,
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    assert bp.gradcheck(model, X, y) < 1e-6


def test_save_and_load(tmp_path):
    X, y = _images()
    model = _cnn()
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "cnn")
    again = bp.load(tmp_path / "cnn")
    assert [type(layer) for layer in again.layers] == [type(layer) for layer in model.layers]
    assert [layer.get_config() for layer in again.layers] == [
        layer.get_config() for layer in model.layers
    ]
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
