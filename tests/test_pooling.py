"""Pooling layers: forward passes and gradients against PyTorch's max_pool2d / avg_pool2d and
autograd in float64 (TensorFlow's 'same' padding built by hand), where the gradient goes when
a window's entries tie, the global poolings, every backend, argument checks and configs."""

import json
import math

import numpy as np
import pytest
from conftest import HAS_TORCH, assert_close

import backprop as bp
from backprop.backend import resolve
from backprop.layers import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)

torch = pytest.importorskip("torch") if HAS_TORCH else None
requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")
NUMPY = resolve("numpy")


def _tf_same_pads(size, k, s):
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def torch_pool(kind, x, pool, strides, padding):
    """The oracle, x (n, h, w, c) a torch tensor. 'same' max pooling pads with -inf; 'same'
    average pooling divides the window's sum by its number of real entries (TensorFlow)."""
    import torch.nn.functional as F

    xt = x.permute(0, 3, 1, 2)
    pads = (0, 0, 0, 0)
    if padding == "same":
        top, bottom = _tf_same_pads(x.shape[1], pool[0], strides[0])
        left, right = _tf_same_pads(x.shape[2], pool[1], strides[1])
        pads = (left, right, top, bottom)
    if kind == "max":
        y = F.max_pool2d(F.pad(xt, pads, value=-math.inf), pool, strides)
    else:
        area = pool[0] * pool[1]
        total = F.avg_pool2d(F.pad(xt, pads), pool, strides) * area
        count = F.avg_pool2d(F.pad(torch.ones_like(xt[:1, :1]), pads), pool, strides) * area
        y = total / count
    return y.permute(0, 2, 3, 1)


def _built(layer, backend, shape, dtype="float64"):
    layer.build_from_shape(shape, backend, np.random.default_rng(0), backend.dtype(dtype))
    return layer


def _keras_out(size, k, s, padding):
    return math.ceil(size / s) if padding == "same" else (size - k) // s + 1


# (h, w, c, pool_size, strides, padding)
CASES = [
    (4, 6, 2, 2, None, "valid"),
    (5, 7, 2, 2, None, "valid"),  # odd sizes: the last row and column are dropped
    (5, 7, 2, 2, None, "same"),  # odd sizes: padded at the bottom and right
    (6, 6, 1, 3, 1, "valid"),  # overlapping windows
    (7, 6, 2, 3, 2, "same"),
    (6, 7, 2, (2, 3), (1, 2), "same"),
    (5, 5, 1, 3, 3, "same"),  # pads on both sides
]
KINDS = {"max": MaxPooling2D, "avg": AveragePooling2D}


def _case_id(case):
    return "-".join(str(v).replace(" ", "") for v in case)


def _check_against_torch(backend, kind, case, x=None, seed=0):
    h, w, c, pool, strides, padding = case
    layer = _built(KINDS[kind](pool, strides, padding), backend, (h, w, c))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, h, w, c)) if x is None else x
    y = layer.forward(backend.asarray(x), training=True)
    (kh, kw), (sh, sw) = layer.pool_size, layer.strides
    out = (2, _keras_out(h, kh, sh, padding), _keras_out(w, kw, sw, padding), c)
    assert tuple(y.shape) == out and layer.compute_output_shape((h, w, c)) == out[1:]
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_pool(kind, xt, (kh, kw), (sh, sw), padding)
    dy = rng.normal(size=out)
    (yt * torch.tensor(dy)).sum().backward()
    dx = layer.backward(backend.asarray(dy))
    assert_close(y, yt.detach().numpy(), backend, rtol=1e-9, atol=1e-12)
    assert_close(dx, xt.grad.numpy(), backend, rtol=1e-9, atol=1e-12)
    return bp.to_numpy(dx)


@requires_torch
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_and_gradient_match_torch(kind, case):
    _check_against_torch(NUMPY, kind, case)


@requires_torch
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_every_backend_matches_torch(backend64, kind):
    _check_against_torch(backend64, kind, (5, 6, 2, 2, (2, 1), "same"))


@requires_torch
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_max_pooling_ties_send_the_gradient_to_the_first_maximum(case):
    """Constant regions tie every entry of a window: the gradient goes to one entry, the first
    in window order (row-major), as in torch, not split among the ties."""
    h, w, c = case[:3]
    x = np.zeros((2, h, w, c))
    x[1, h // 2 :, :, :] = 1.0  # two constant regions: ties within, a clear max across
    dx = _check_against_torch(NUMPY, "max", case, x=x)
    layer = _built(MaxPooling2D(*case[3:]), NUMPY, (h, w, c))
    y = layer.forward(NUMPY.asarray(x), training=True)
    dy = np.ones(y.shape)
    dx = bp.to_numpy(layer.backward(NUMPY.asarray(dy)))
    # every window's gradient lands whole on one entry: dx sums to the number of windows
    np.testing.assert_array_equal(dx.sum(), dy.sum())
    # image 0 is constant: each window's first real entry, its top-left one, gets it
    sh, sw = layer.strides
    top, _, left, _ = layer.pads
    expected = np.zeros((h, w))
    for p in range(y.shape[1]):
        for q in range(y.shape[2]):
            expected[max(p * sh - top, 0), max(q * sw - left, 0)] += 1
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_max_pooling_hand_case():
    x = np.array([[1.0, 5.0, 2.0, 2.0], [5.0, 0.0, 2.0, 2.0]]).reshape(1, 2, 4, 1)
    layer = _built(MaxPooling2D(), NUMPY, (2, 4, 1))
    y = layer.forward(NUMPY.asarray(x), training=True)
    np.testing.assert_array_equal(bp.to_numpy(y).ravel(), [5.0, 2.0])
    dx = layer.backward(NUMPY.asarray(np.array([10.0, 20.0]).reshape(1, 1, 2, 1)))
    np.testing.assert_array_equal(bp.to_numpy(dx)[0, :, :, 0], [[0, 10, 20, 0], [0, 0, 0, 0]])


def test_same_average_pooling_divides_by_the_real_entries():
    """A 3x3 image of ones, 2x2 windows, 'same': the border windows average 2 or 1 real
    entries, never the padded zeros, so every output is 1."""
    layer = _built(AveragePooling2D(2, 1, "same"), NUMPY, (3, 3, 1))
    y = layer.forward(NUMPY.asarray(np.ones((1, 3, 3, 1))), training=True)
    np.testing.assert_array_equal(bp.to_numpy(y), np.ones((1, 3, 3, 1)))


def test_float32_on_every_backend(backend):
    for layer in (MaxPooling2D(), AveragePooling2D(padding="same")):
        _built(layer, backend, (3, 4, 2), dtype="float32")
        x = backend.asarray(
            np.random.default_rng(1).normal(size=(2, 3, 4, 2)), backend.dtype("float32")
        )
        y = layer.forward(x, training=True)
        dx = layer.backward(y)
        assert backend.owns(y) and backend.owns(dx)
        assert y.dtype == x.dtype and dx.dtype == x.dtype and tuple(dx.shape) == (2, 3, 4, 2)


# -- global pooling ------------------------------------------------------------------------------
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling(backend64, keepdims):
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 2))
    layer = _built(GlobalAveragePooling2D(keepdims=keepdims), backend64, (4, 5, 2))
    y = layer.forward(backend64.asarray(x), training=True)
    assert_close(y, x.mean(axis=(1, 2), keepdims=keepdims), backend64)
    assert layer.compute_output_shape((4, 5, 2)) == ((1, 1, 2) if keepdims else (2,))
    dy = np.random.default_rng(1).normal(size=y.shape)
    dx = layer.backward(backend64.asarray(dy))
    expected = np.broadcast_to(dy.reshape(3, 1, 1, 2) / 20, x.shape)
    assert_close(dx, expected, backend64)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_max_pooling_routes_to_the_first_maximum(backend64, keepdims):
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 2))
    x[0, :, :, 1] = 7.0  # all tie: the first pixel (0, 0) gets the gradient
    x[1, 2, 3, 0] = x[1, 3, 1, 0] = 9.0  # two tie: the first in row-major order, (2, 3)
    layer = _built(GlobalMaxPooling2D(keepdims=keepdims), backend64, (4, 5, 2))
    y = layer.forward(backend64.asarray(x), training=True)
    assert_close(y, x.max(axis=(1, 2), keepdims=keepdims), backend64)
    dy = np.arange(1.0, 7.0).reshape(y.shape)
    dx = layer.backward(backend64.asarray(dy))
    expected = np.zeros_like(x)
    flat = x.reshape(3, 20, 2)
    for b in range(3):
        for c in range(2):
            i = int(np.argmax(flat[b, :, c]))
            expected[b, i // 5, i % 5, c] = dy.reshape(3, 2)[b, c]
    assert expected[0, 0, 0, 1] != 0 and expected[1, 2, 3, 0] != 0
    assert_close(dx, expected, backend64)


# -- arguments -----------------------------------------------------------------------------------
def test_keras_defaults():
    layer = MaxPooling2D()
    assert (layer.pool_size, layer.strides, layer.padding) == ((2, 2), (2, 2), "valid")
    assert AveragePooling2D(3).strides == (3, 3)
    assert MaxPooling2D(3, strides=1).strides == (1, 1)
    assert GlobalMaxPooling2D().keepdims is False
    assert _built(MaxPooling2D(), NUMPY, (5, 5, 3)).count_params() == 0


@pytest.mark.parametrize(
    "layer",
    [
        MaxPooling2D((3, 2), strides=(1, 2), padding="same", name="mp"),
        AveragePooling2D(3, input_shape=(9, 9, 3)),
        GlobalAveragePooling2D(keepdims=True),
        GlobalMaxPooling2D(name="gmp"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    again = bp.layers.from_config(type(layer).__name__, config)
    assert type(again) is type(layer) and again.get_config() == layer.get_config()


@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": (2, -1)}, "pool_size"),
        ({"strides": 0}, "strides"),
        ({"padding": "causal"}, "padding"),
    ],
)
def test_bad_arguments_are_refused(cls, kwargs, match):
    with pytest.raises(ValueError, match=f"{cls.__name__}.*{match}"):
        cls(**kwargs)


def test_bad_inputs_name_the_layer():
    with pytest.raises(ValueError, match=r"pool_big.*pool_size \(3, 3\) is larger"):
        _built(MaxPooling2D(3, name="pool_big"), NUMPY, (2, 5, 1))
    for cls in (MaxPooling2D, GlobalAveragePooling2D):
        with pytest.raises(ValueError, match=r"p_flat.*height, width, channels"):
            _built(cls(name="p_flat"), NUMPY, (16,))
    for cls in (AveragePooling2D, GlobalMaxPooling2D):
        layer = _built(cls(name="p_in"), NUMPY, (4, 4, 3))
        with pytest.raises(ValueError, match=r"p_in expected .*\(n, height, width, 3\)"):
            layer.forward(NUMPY.asarray(np.ones((2, 4, 4, 2))))
        with pytest.raises(ValueError, match=r"p_in expected .*received shape \(2, 48\)"):
            layer.forward(NUMPY.asarray(np.ones((2, 48))))
    with pytest.raises(TypeError, match="keepdims"):
        GlobalMaxPooling2D(keepdims="yes")
