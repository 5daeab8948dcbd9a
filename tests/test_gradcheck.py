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


# -- issue 19.6: arrays whose true gradient is 0, and return_all's order ----------------------


def _balanced_mae_model(backend):
    """A linear unit under MAE whose residuals are +1 and -1 equally often: dL/db = 0."""
    model = bp.Sequential([Dense(1, input_dim=2)], backend=backend.spec, seed=0)
    model.compile(loss="mae", optimizer="sgd")
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(2, 1)), rng.normal(size=1)
    model.set_weights([W, b])
    X = rng.normal(size=(8, 2))
    # residuals of balanced sign and uneven sizes: the loss's central difference in b is
    # round-off, not an exact 0
    y = (X @ W + b)[:, 0] + rng.uniform(0.5, 2.0, 8) * np.array([1.0, -1.0] * 4)
    return model, X, y


def test_an_array_with_zero_true_gradient_passes(backend):
    """Its central differences are round-off (~1e-10); divided by their own size they used to
    give an error of 1.0 for a correct gradient."""
    model, X, y = _balanced_mae_model(backend)
    _, grads = model.loss_and_gradients(X, y)
    assert abs(float(grads[1][0])) < 1e-12 and np.abs(grads[0]).max() > 1e-2
    errors = bp.gradcheck(model, X, y, return_all=True)
    assert max(errors) < 1e-7, errors
    assert bp.gradcheck(model, X, y) < 1e-7


def test_a_wrong_gradient_of_a_zero_gradient_array_is_still_caught(monkeypatch, backend):
    """The model-wide scale does not hide an error as large as the gradients around it."""
    model, X, y = _balanced_mae_model(backend)
    real = Dense.backward_from_logits

    def wrong_bias(self, dz):
        dx = real(self, dz)
        self._store_grad("b", self.grads["b"] + 0.5)  # db off by as much as dW is large
        return dx

    monkeypatch.setattr(Dense, "backward_from_logits", wrong_bias)
    errors = bp.gradcheck(model, X, y, return_all=True)
    assert errors[0] < 1e-7 and errors[1] > 1e-2, errors


def test_return_all_lines_up_with_get_weights():
    """With BatchNormalization, get_weights() has 8 arrays and 6 of them trainable: the errors
    used to be a list of 6, out of line with the weights they describe."""
    model = bp.Sequential(
        [Dense(4, "tanh", input_dim=3), bp.layers.BatchNormalization(), Dense(1, "sigmoid")],
        seed=0,
    )
    model.compile(loss="binary_crossentropy", optimizer="adam")
    X, y = _data()
    errors = bp.gradcheck(model, X, y, return_all=True)
    assert len(errors) == len(model.get_weights()) == 8
    # W, b, gamma, beta, moving_mean, moving_variance, W, b: the statistics are not checked
    assert [e is None for e in errors] == [False] * 4 + [True] * 2 + [False] * 2
    assert max(e for e in errors if e is not None) < 1e-7
    model.layers[0].trainable = False  # a frozen layer's weights are constants too
    errors = bp.gradcheck(model, X, y, return_all=True)
    assert [e is None for e in errors] == [True] * 2 + [False] * 2 + [True] * 2 + [False] * 2
