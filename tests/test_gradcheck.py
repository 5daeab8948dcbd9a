import numpy as np
import pytest

import backprop as bp
from backprop.layers import Dense


def _model(**kw):
    model = bp.Sequential(
        [Dense(5, "relu", input_dim=3), Dense(4, "tanh"), Dense(1, "sigmoid")], seed=0, **kw
    )
    model.compile(loss="binary_crossentropy", optimizer="adam")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 3)), rng.integers(0, 2, 8)


def test_correct_gradients_pass():
    X, y = _data()
    assert bp.gradcheck(_model(), X, y) < 1e-7


def test_a_wrong_backward_is_caught(monkeypatch):
    """A deliberately broken tanh derivative must produce a large error."""
    X, y = _data()
    monkeypatch.setattr(bp.activations.Tanh, "derivative", lambda self, z, y, xp: 1.0 - y)
    errors = bp.gradcheck(_model(), X, y, return_all=True)
    assert max(errors) > 1e-2
    # the layers above the broken one are unaffected
    assert errors[-1] < 1e-7 and errors[-2] < 1e-7


def test_float32_model_is_checked_in_float64_and_left_unchanged():
    X, y = _data()
    model = _model(dtype="float32")
    before = model.get_weights()
    assert bp.gradcheck(model, X, y) < 1e-7
    assert model.layers[0].params["W"].dtype == np.float32
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_runs_on_a_device_without_float64():
    X, y = _data()
    model = _model(backend="array_api_strict", device="no_float64")
    assert bp.gradcheck(model, X, y) < 1e-7


def test_relu_kinks_are_stepped_around():
    """Inputs at exact ReLU kinks (z = 0 for the zero bias of a zero input row) must not
    produce a spurious error."""
    X, y = _data()
    X[0] = 0.0
    assert bp.gradcheck(_model(), X, y) < 1e-7


def test_needs_compile():
    X, y = _data()
    model = bp.Sequential([Dense(1, input_dim=3)])
    with pytest.raises(RuntimeError, match="compile"):
        bp.gradcheck(model, X, y)
