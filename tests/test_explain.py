"""``model.explain``: the printed equations name every term of the loss and the gradients."""

import numpy as np

import backprop as bp


def test_a_regularizer_is_named_in_the_loss_and_in_dW():
    model = bp.Sequential(
        [
            bp.layers.Dense(3, "relu", input_dim=2, kernel_regularizer=bp.regularizers.L2(10.0)),
            bp.layers.Dense(1, "sigmoid"),
        ],
        seed=0,
    )
    model.compile("binary_crossentropy", "sgd")
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    text = model.explain(X, y, print_fn=None)
    loss_line = next(line for line in text.splitlines() if line.startswith("Loss"))
    assert "binary_crossentropy(Y, A2) + R1(W1) =" in loss_line
    assert "dW1 = A0.T @ dZ1 + dR1/dW1" in text
    assert "dW2 = A1.T @ dZ2 " in text and "dR2" not in text  # no regularizer on layer 2
    value = float(loss_line.rsplit("=", 1)[1])
    loss, _ = model.loss_and_gradients(X, y)
    np.testing.assert_allclose(value, loss, rtol=1e-5)  # the printed L includes the penalty


def _row(text, start):
    """The printed row that starts with ``start``: its shape and its norm, min and max."""
    line = next(line.strip() for line in text.splitlines() if line.strip().startswith(start))
    shape = line[line.index("(", len(start)) : line.index(")", len(start)) + 1]
    numbers = [float(w.rstrip(",")) for w in line.split("norm", 1)[1].split()[::2]]
    return shape, numbers


def _check_stats(text, start, expected):
    shape, (norm, low, high) = _row(text, start)
    assert shape == str(expected.shape)
    np.testing.assert_allclose(
        [norm, low, high], [np.linalg.norm(expected), expected.min(), expected.max()], rtol=1e-3
    )


def test_normalization_statistics_are_printed_over_the_layers_axes():
    rng = np.random.default_rng(0)
    L = bp.layers
    cases = [  # input shape, layer, the axes it normalizes over, as printed
        ((6, 3), L.BatchNormalization(input_shape=(3,)), (0,), "axis=0"),
        ((6, 3), L.LayerNormalization(input_shape=(3,)), (-1,), "axis=-1"),
        ((6, 4, 4, 2), L.BatchNormalization(input_shape=(4, 4, 2)), (0, 1, 2), "axis=(0, 1, 2)"),
        ((6, 3, 2), L.LayerNormalization(input_shape=(3, 2)), (-1,), "axis=-1"),
    ]
    for shape, layer, axes, printed in cases:
        X = rng.normal(size=shape) * 3 + 1
        model = bp.Sequential([layer, L.Flatten(), L.Dense(2, "softmax")], seed=0, dtype="float64")
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
        text = model.explain(X, np.arange(6) % 2, batch=6, print_fn=None)
        mu = X.mean(axis=axes, keepdims=True)
        var = ((X - mu) ** 2).mean(axis=axes, keepdims=True)
        _check_stats(text, f"mu1 = mean(A0, {printed})", mu)
        _check_stats(text, f"var1 = mean((A0 - mu1)^2, {printed})", var)
        _check_stats(
            text, "Xhat1 = (A0 - mu1) / sqrt(var1 + eps)", (X - mu) / np.sqrt(var + layer.epsilon)
        )
        # beta and gamma were broadcast over every axis but the last: their sums too
        summed = "axis=0" if len(shape) == 2 else f"axis={tuple(range(len(shape) - 1))}"
        assert _row(text, f"dbeta1 = sum(dA1, {summed})")[0] == f"({shape[-1]},)"
        assert _row(text, f"dgamma1 = sum(dA1 * Xhat1, {summed})")[0] == f"({shape[-1]},)"
