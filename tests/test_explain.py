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
