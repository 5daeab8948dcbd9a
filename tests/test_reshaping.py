"""Inputs of any rank (issue 22): Flatten, Reshape, Dense on the last axis, N-D models end to end.

The model of most tests takes samples of shape (3, 4), reshapes them to (6, 2), applies a
Dense layer and a softmax on the last axis, flattens and classifies: every layer of the
plumbing sees an input of rank 3.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from distributed_helpers import ThreadGroup

import backprop as bp
from backprop import backend as B

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None


def _layers(first_shape=(3, 4)):
    return [
        bp.layers.Reshape((6, 2), input_shape=first_shape),
        bp.layers.Dense(5, "tanh"),  # on the last axis: (6, 2) -> (6, 5)
        bp.layers.Activation("softmax"),  # over the last axis
        bp.layers.Flatten(),  # (30,)
        bp.layers.Dense(3, "softmax"),
    ]


def _net(backend="numpy", device=None, dtype="float64", seed=0, capture=True, built=True):
    layers = _layers() if built else [bp.layers.Reshape((6, 2)), *_layers()[1:]]
    model = bp.Sequential(
        layers, backend=backend, device=device, dtype=dtype, seed=seed, capture=capture
    )
    model.compile("categorical_crossentropy", bp.optimizers.Adam(0.01), ["accuracy"])
    return model


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3, 4))
    y = np.eye(3)[(X[:, 0, 0] + X[:, 1, 2] > 0).astype(int) + (X[:, 2, 3] > 1)]
    return X, y


# -- the layers ---------------------------------------------------------------------------------


def test_flatten_is_keras_row_major_order_and_its_backward_the_inverse(backend):
    layer = bp.layers.Flatten()
    layer.build_from_shape((2, 3, 4), backend, np.random.default_rng(0), backend.dtype("float32"))
    x = np.arange(2 * 24, dtype=np.float32).reshape(2, 2, 3, 4)
    y = layer.forward(backend.asarray(x, backend.dtype("float32")), training=True)
    np.testing.assert_array_equal(bp.to_numpy(y), x.reshape(2, 24))  # (h, w, c) row-major
    dy = backend.asarray(np.arange(48, dtype=np.float32).reshape(2, 24) * 2, y.dtype)
    np.testing.assert_array_equal(bp.to_numpy(layer.backward(dy)), x * 2)
    assert layer.compute_output_shape((28, 28, 1)) == (784,) and layer.count_params() == 0


def test_reshape_infers_one_minus_one_and_round_trips(backend):
    layer = bp.layers.Reshape((-1, 2))
    assert layer.compute_output_shape((3, 4)) == (6, 2)
    layer.build_from_shape((3, 4), backend, np.random.default_rng(0), backend.dtype("float32"))
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    y = layer.forward(backend.asarray(x, backend.dtype("float32")), training=True)
    np.testing.assert_array_equal(bp.to_numpy(y), x.reshape(2, 6, 2))
    np.testing.assert_array_equal(bp.to_numpy(layer.backward(y)), x)


@pytest.mark.parametrize(
    ("target", "match"),
    [((5, 5), r"target_shape=\(5, 5\) does not fit samples of shape \(3, 4\): they hold 12"),
     ((-1, 5), r"which 5 does not divide")],
)  # fmt: skip
def test_a_reshape_whose_size_does_not_match_names_the_layer(target, match):
    with pytest.raises(ValueError, match=match):
        bp.Sequential([bp.layers.Reshape(target, input_shape=(3, 4), name="r")])
    model = bp.Sequential([bp.layers.Reshape(target, name="r2"), bp.layers.Flatten()])
    model.compile("mse")
    with pytest.raises(ValueError, match="r2: .*" + match):
        model.fit(np.zeros((4, 3, 4)), np.zeros((4, 1)), verbose=0)
    assert not model.layers[0].built  # refused before anything was built


@pytest.mark.parametrize("target", [(), (-1, -1), (0, 4), (2.5,), "ab", None])
def test_reshape_refuses_a_bad_target_shape(target):
    with pytest.raises(ValueError, match="Expected target_shape"):
        bp.layers.Reshape(target)


@pytest.mark.parametrize("shape", [(0, 28, 1), (28, -1), (), (1.5,), "28"])
def test_input_shape_with_non_positive_entries_is_refused_naming_the_layer(shape):
    with pytest.raises(ValueError, match=r"Flatten: Expected input_shape .* positive integers"):
        bp.layers.Flatten(input_shape=shape)
    with pytest.raises(ValueError, match=r"Dense: Expected input_shape"):
        bp.layers.Dense(2, input_shape=shape)


def test_dense_input_dim_is_short_for_input_shape():
    a = bp.Sequential([bp.layers.Dense(2, input_dim=3)])
    b = bp.Sequential([bp.layers.Dense(2, input_shape=(3,))])
    assert a.input_shape == b.input_shape == (3,) and a.input_dim == b.input_dim == 3
    with pytest.raises(ValueError, match=r"input_dim=4 and input_shape=.* disagree"):
        bp.layers.Dense(2, input_dim=4, input_shape=(3,))


def test_dropout_and_activations_are_elementwise_on_nd_inputs(backend):
    model = bp.Sequential(
        [bp.layers.Dropout(0.5, name="drop"), bp.layers.Activation("relu"), bp.layers.Flatten()],
        backend=backend,
        seed=0,
    )
    model.build((2, 3, 4))
    x = backend.asarray(np.random.default_rng(0).normal(size=(5, 2, 3, 4)), model.dtype)
    y = model.forward(x, training=True)
    mask = bp.to_numpy(model.layers[0].mask)
    assert mask.shape == (5, 2, 3, 4) and set(np.unique(mask)) == {0.0, 2.0}
    expected = np.maximum(bp.to_numpy(x) * mask, 0).reshape(5, 24)
    np.testing.assert_allclose(bp.to_numpy(y), expected, rtol=1e-6)
    dx = model.backward(backend.asarray(np.ones((5, 24)), model.dtype))
    np.testing.assert_array_equal(bp.to_numpy(dx), (expected.reshape(5, 2, 3, 4) > 0) * mask)


# -- gradients ------------------------------------------------------------------------------------


def _torch_loss_and_grads(model, X, y):
    import torch

    W1, b1, W2, b2 = (
        torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in model.get_weights()
    )
    a = torch.tensor(X, dtype=torch.float64).reshape(X.shape[0], 6, 2)
    a = torch.softmax(torch.tanh(a @ W1 + b1), dim=-1)
    a = torch.softmax(a.reshape(X.shape[0], -1) @ W2 + b2, dim=1)
    loss = -(torch.tensor(y) * torch.log(a)).sum(dim=1).mean()
    loss.backward()
    return loss.item(), [w.grad.numpy() for w in (W1, b1, W2, b2)]


@pytest.mark.skipif(not HAS_TORCH, reason="torch is the oracle")
def test_nd_gradients_equal_torch_autograd(backend64):
    model = _net(backend64)
    X, y = _data(16, seed=1)
    loss, grads = model.loss_and_gradients(X, y)
    t_loss, t_grads = _torch_loss_and_grads(model, X, y)
    assert loss == pytest.approx(t_loss, rel=1e-9)
    for g, tg in zip(grads, t_grads, strict=True):
        np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-13)


def test_nd_gradcheck(backend64):
    X, y = _data(6, seed=2)
    assert bp.gradcheck(_net(backend64), X, y) < 1e-7


# -- training: every backend, every engine --------------------------------------------------------


def _fit(model, X, y, **kw):
    model.fit(X, y, epochs=2, batch_size=16, verbose=0, **kw)
    return model


def test_nd_training_is_the_same_on_every_backend(backend64):
    X, y = _data()
    ref = _fit(_net(), X, y, validation_data=_data(10, seed=3))
    got = _fit(_net(backend64), X, y, validation_data=_data(10, seed=3))
    for key, values in ref.history.history.items():
        np.testing.assert_allclose(got.history.history[key], values, rtol=1e-9, err_msg=key)
    for a, b in zip(got.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not HAS_JAX, reason="the compiled epoch is JAX's")
def test_nd_compiled_epoch_equals_the_eager_steps():
    X, y = _data()
    eager = _fit(_net(), X, y)
    model = _fit(_net("jax"), X, y)
    assert model.history.params["engine"].startswith("compiled")
    for key, values in eager.history.history.items():
        np.testing.assert_allclose(model.history.history[key], values, rtol=1e-9)


@pytest.mark.parametrize("spec", ["numpy", "array_api_strict:device1"])
def test_nd_captured_steps_equal_eager_steps(monkeypatch, spec):
    """The captured engine on CPU, its recording a stand-in (see tests/test_captured.py)."""
    calls = []

    def capture(self, fn):
        calls.append(fn)
        fn()
        return fn

    monkeypatch.setattr(B.Backend, "can_capture", property(lambda self: True))
    monkeypatch.setattr(B.Backend, "capture", capture)
    name, _, device = spec.partition(":")
    X, y = _data(37)
    eager = _fit(_net(name, device or None, capture=False), X, y)
    rec = _fit(_net(name, device or None), X, y)
    assert rec.history.params["engine"].startswith("captured") and len(calls) == 2
    for a, b in zip(rec.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_nd_data_parallel_over_threads_equals_one_process():
    X, y = _data(30)
    alone = _fit(_net(), X, y)

    def rank_fit(rank, comm):
        return _fit(_net(), X, y, distributed=comm).get_weights()

    results = ThreadGroup(3, timeout=20).run(rank_fit)
    for weights in results:
        assert not isinstance(weights, BaseException), repr(weights)
        for a, b in zip(weights, alone.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# -- the model around N-D inputs ------------------------------------------------------------------


def test_a_model_built_by_fit_takes_the_sample_shape_of_x():
    X, y = _data()
    model = _fit(_net(built=False), X, y)
    assert model.input_shape == (3, 4) and model.output_shape == (3,)
    assert [layer.input_shape for layer in model.layers] == [(3, 4), (6, 2), (6, 5), (6, 5), (30,)]
    assert model.predict(X[:2]).shape == (2, 3)


def test_predict_in_batches_equals_predict_at_once():
    X, _ = _data(23)
    model = _net()
    np.testing.assert_allclose(model.predict(X, batch_size=5), model.predict(X), rtol=1e-12)


def test_wrong_image_shape_names_the_first_layer_and_suggests_the_channel_axis():
    model = bp.Sequential([bp.layers.Flatten(input_shape=(28, 28, 1), name="flat")])
    with pytest.raises(ValueError) as info:
        model.predict(np.zeros((2, 28, 28)))
    message = str(info.value)
    assert "'flat'" in message and "(n, 28, 28, 1)" in message and "(2, 28, 28)" in message
    assert "X[..., None]" in message
    with pytest.raises(ValueError, match=r"X of shape \(n, 28, 28, 1\).*received shape \(2, 784\)"):
        model.predict(np.zeros((2, 784)))


def test_validation_data_of_another_sample_shape_is_refused():
    X, y = _data()
    with pytest.raises(ValueError, match=r"X_val of shape \(n, 3, 4\).*received shape \(5, 4, 3\)"):
        _net(built=False).fit(X, y, validation_data=(np.zeros((5, 4, 3)), y[:5]), verbose=0)


def test_a_model_whose_output_is_not_flat_is_refused_for_training():
    model = bp.Sequential([bp.layers.Dense(2, input_shape=(3, 4))])
    with pytest.raises(ValueError, match=r"outputs samples of shape \(3, 2\).*Flatten"):
        model.compile("mse")
    unbuilt = bp.Sequential([bp.layers.Dense(2)])
    unbuilt.compile("mse")
    with pytest.raises(ValueError, match=r"outputs samples of shape \(3, 2\).*Flatten"):
        unbuilt.fit(np.zeros((5, 3, 4)), np.zeros((5, 2)), verbose=0)
    assert model.predict(np.zeros((5, 3, 4))).shape == (5, 3, 2)  # predict needs no loss


def test_nan_in_an_image_is_located_by_its_index():
    X, y = _data()
    X[7, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"the first: nan at index \(7, 2, 1\)"):
        _net().fit(X, y, verbose=0)


def test_clone_and_save_load_keep_the_input_shape(tmp_path):
    X, y = _data()
    model = _fit(_net(built=False), X, y)
    clone = bp.clone_model(model)
    assert clone.input_shape == (3, 4) and clone.output_shape == (3,)
    path = tmp_path / "nd.npz"
    model.save(path)
    loaded = bp.load(path)
    assert loaded.input_shape == (3, 4)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_summary_shows_the_output_shape_of_every_layer():
    text = _net().summary(print_fn=None)
    for shape, count in [
        ("(None, 6, 2)", "0"),
        ("(None, 6, 5)", "15"),
        ("(None, 30)", "0"),
        ("(None, 3)", "93"),
    ]:
        assert any(shape in line and line.split()[-1] == count for line in text.splitlines())
    assert "Total params: 108" in text


def test_a_file_without_input_shape_still_loads_from_the_first_layers_input_dim(tmp_path):
    """Files written before input shapes were saved: the header's model has no input_shape."""
    import json

    from backprop import io as _io

    X = np.random.default_rng(0).normal(size=(5, 2))
    model = bp.Sequential([bp.layers.Dense(3, "relu", input_dim=2), bp.layers.Dense(1)], seed=0)
    path = tmp_path / "old.npz"
    model.save(path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays.pop("__config__")))
    assert header["model"].pop("input_shape") == [2]
    del header["checksum"]
    header["checksum"] = _io._checksum(arrays, header["arrays"], header)
    with open(path, "wb") as f:
        np.savez(f, __config__=np.array(json.dumps(header)), **arrays)
    loaded = bp.load(path)
    assert loaded.input_shape == (2,)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_the_sklearn_estimators_stay_2d():
    sklearn = pytest.importorskip("backprop.sklearn")
    with pytest.raises(ValueError, match="dim 3"):
        sklearn.MLPClassifier(max_iter=1).fit(np.zeros((10, 3, 2)), np.arange(10) % 2)
