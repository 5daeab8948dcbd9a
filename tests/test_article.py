"""The article's results, reproduced: accuracy of the demo setting over 20 seeds, the moons
notebook's setup, and ten-class digits."""

import warnings

import numpy as np
import pytest

import backprop as bp
from backprop.layers import Dense


def demo_accuracy(seed: int) -> tuple[float, bool]:
    """The demo's setting for one seed: data, split, weights and shuffling all from ``seed``."""
    X, y = bp.datasets.make_circles(1000, factor=0.3, noise=0.1, seed=seed)
    Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.1, seed=seed)
    model = bp.Sequential(
        [Dense(4, "relu", input_dim=2), Dense(6, "relu"), Dense(6, "relu"), Dense(4, "relu"),
         Dense(1, "sigmoid")],
        seed=seed,
    )  # fmt: skip
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bp.model.DeadNetworkWarning)
        model.fit(Xtr, ytr, epochs=50, batch_size=32, verbose=0)
    dead = any(issubclass(w.category, bp.model.DeadNetworkWarning) for w in caught)
    return model.evaluate(Xte, yte)["accuracy"], dead


@pytest.mark.slow
def test_demo_setting_reaches_098_for_most_seeds():
    results = [demo_accuracy(seed) for seed in range(20)]
    accuracies = np.array([a for a, _ in results])
    assert (accuracies >= 0.98).sum() >= 16, accuracies
    # every failure is a collapsed network, and fit warned about it
    for accuracy, dead in results:
        if accuracy < 0.98:
            assert dead, accuracies


@pytest.mark.slow
def test_moons_notebook_setup():
    """2-25-50-50-25-1, full-batch gradient descent, lr 0.01, 10,000 iterations."""
    X, y = bp.datasets.make_moons(1000, noise=0.2, seed=0)
    Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.1, seed=0)
    model = bp.Sequential(
        [Dense(25, "relu", input_dim=2), Dense(50, "relu"), Dense(50, "relu"), Dense(25, "relu"),
         Dense(1, "sigmoid")],
        seed=0,
    )  # fmt: skip
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.SGD(0.01), metrics=["acc"])
    model.fit(Xtr, ytr, epochs=10_000, batch_size=len(Xtr), verbose=0)
    assert model.evaluate(Xte, yte)["acc"] >= 0.97


@pytest.mark.slow
def test_digits_ten_classes():
    X, y = bp.datasets.load_digits()
    Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.2, seed=0, stratify=y)
    model = bp.Sequential(
        [Dense(128, "relu", input_dim=64), Dense(64, "relu"), Dense(10, "softmax")], seed=0
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(Xtr, ytr, epochs=20, batch_size=64, verbose=0)
    assert model.evaluate(Xte, yte)["accuracy"] >= 0.95


def test_dead_network_is_reported_at_initialisation():
    """A ReLU layer whose weights and bias send every input below zero is dead from the start."""
    model = bp.Sequential(
        [Dense(3, "relu", input_dim=2, bias_initializer=bp.initializers.Constant(-100.0)),
         Dense(1, "sigmoid")],
        seed=0,
    )  # fmt: skip
    model.compile(loss="binary_crossentropy", optimizer="adam")
    X, y = bp.datasets.make_circles(100, factor=0.3, noise=0.1, seed=0)
    assert model.dead_layers(X) == [model.layers[0].name]
    with pytest.warns(bp.model.DeadNetworkWarning, match=r"at initialisation.*he_uniform"):
        model.fit(X, y, epochs=3, verbose=0)
    text = model.explain(X, y, print_fn=None)
    assert "DEAD LAYER" in text


def test_no_warning_for_a_healthy_network():
    X, y = bp.datasets.make_circles(100, factor=0.3, noise=0.1, seed=0)
    model = bp.Sequential([Dense(8, "relu", input_dim=2), Dense(1, "sigmoid")], seed=0)
    model.compile(loss="binary_crossentropy", optimizer="adam")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X, y, epochs=2, verbose=0)
    assert model.dead_layers(X) == []
