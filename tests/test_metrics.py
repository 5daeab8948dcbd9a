"""Metrics: device-side sums per batch, host-side results per epoch, against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import eps

import backprop as bp
from backprop import metrics as M

sk = pytest.importorskip("sklearn.metrics")

N, K = 4, 5  # one batch shape for every test: JAX compiles each (op, shape, dtype) once
BATCHES = 3


def float_dtypes(backend) -> list[str]:
    return ["float32", "float64"] if backend.supports_float64 else ["float32"]


def epoch(metric, backend, dt, ys, ps):
    """What the model does: sum ``stats`` over the batches on the device, then ``result``."""
    xp = backend.xp
    totals = None
    for y_host, p_host in zip(ys, ps, strict=True):
        y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
        stats = metric.stats(y, p, xp)
        assert len(stats) == metric.n_stats
        for s in stats:
            assert backend.owns(s), "stats must stay on the device"
            assert s.shape == ()
            assert s.dtype == p.dtype
        totals = stats if totals is None else [a + b for a, b in zip(totals, stats, strict=True)]
    host = [float(bp.to_numpy(t)) for t in totals]
    k = ys[0].shape[1]
    return metric.result(host, n=len(ys) * ys[0].shape[0], k=k)


def binary_data(rng, k=K):
    ys = [rng.integers(0, 2, (N, k)).astype(np.float64) for _ in range(BATCHES)]
    ps = [rng.uniform(0, 1, (N, k)) for _ in range(BATCHES)]
    return ys, ps


def stack(arrays):
    return np.concatenate(arrays)


@pytest.mark.parametrize("k", [1, K], ids=["single", "multilabel"])
def test_binary_accuracy(k, backend, rng):
    ys, ps = binary_data(rng, k)
    # elementwise accuracy over all n * k outputs (Keras's binary_accuracy)
    expected = sk.accuracy_score(stack(ys).ravel(), stack(ps).ravel() > 0.5)
    assert 0 < expected < 1
    for dt in float_dtypes(backend):
        assert epoch(M.BinaryAccuracy(), backend, dt, ys, ps) == pytest.approx(expected, abs=0)


def test_binary_accuracy_threshold(backend, rng):
    ys, ps = binary_data(rng)
    expected = sk.accuracy_score(stack(ys).ravel(), stack(ps).ravel() > 0.8)
    assert expected != sk.accuracy_score(stack(ys).ravel(), stack(ps).ravel() > 0.5)
    for dt in float_dtypes(backend):
        assert epoch(M.BinaryAccuracy(0.8), backend, dt, ys, ps) == pytest.approx(expected, abs=0)


def test_categorical_accuracy(backend, rng):
    labels = [rng.integers(0, K, N) for _ in range(BATCHES)]
    ys = [np.eye(K)[lab] for lab in labels]
    # random rows, where about half get a boost on the labelled class: hits and misses
    ps = [rng.dirichlet(np.ones(K), N) + rng.integers(0, 2, (N, 1)) * y for y in ys]
    expected = sk.accuracy_score(stack(labels), stack(ps).argmax(axis=1))
    assert 0 < expected < 1  # the data can tell a right count from a wrong one
    for dt in float_dtypes(backend):
        assert epoch(M.CategoricalAccuracy(), backend, dt, ys, ps) == pytest.approx(expected, abs=0)


@pytest.mark.parametrize(
    ("cls", "score"),
    [(M.Precision, "precision_score"), (M.Recall, "recall_score")],
    ids=["precision", "recall"],
)
def test_precision_recall(cls, score, backend, rng):
    ys, ps = binary_data(rng)
    expected = getattr(sk, score)(stack(ys).ravel(), stack(ps).ravel() > 0.5, zero_division=0)
    assert 0 < expected < 1
    for dt in float_dtypes(backend):
        # ratios of integer counts below 2^24: exact up to the final division
        got = epoch(cls(), backend, dt, ys, ps)
        assert got == pytest.approx(expected, rel=2 * eps("float64"))


@pytest.mark.parametrize(
    ("cls", "score"),
    [(M.Precision, "precision_score"), (M.Recall, "recall_score")],
    ids=["precision", "recall"],
)
def test_precision_recall_without_positives(cls, score, backend):
    ys = [np.zeros((N, K))]
    ps = [np.full((N, K), 0.2)]
    expected = getattr(sk, score)(ys[0].ravel(), ps[0].ravel() > 0.5, zero_division=0)
    for dt in float_dtypes(backend):
        assert epoch(cls(), backend, dt, ys, ps) == expected == 0.0


@pytest.mark.parametrize(
    ("cls", "score"),
    [(M.MeanAbsoluteError, "mean_absolute_error"), (M.MeanSquaredError, "mean_squared_error")],
    ids=["mae", "mse"],
)
def test_regression_metrics(cls, score, backend, rng):
    ys = [rng.normal(size=(N, K)) for _ in range(BATCHES)]
    ps = [rng.normal(size=(N, K)) for _ in range(BATCHES)]
    for dt in float_dtypes(backend):
        # the reference sees the inputs as rounded to dt
        y = np.concatenate([np.asarray(a, dtype=dt) for a in ys]).astype(np.float64)
        p = np.concatenate([np.asarray(a, dtype=dt) for a in ps]).astype(np.float64)
        expected = getattr(sk, score)(y, p)  # uniform average over outputs = mean over all
        got = epoch(cls(), backend, dt, ys, ps)
        # a recursive sum of n terms has a relative error below n eps
        assert got == pytest.approx(expected, rel=y.size * eps(dt))


@pytest.mark.parametrize(
    ("loss_kind", "n_outputs", "cls"),
    [
        ("binary", 1, M.BinaryAccuracy),
        ("binary", 3, M.BinaryAccuracy),
        ("categorical", 3, M.CategoricalAccuracy),
        ("sparse", 3, M.CategoricalAccuracy),
        ("regression", 1, M.BinaryAccuracy),
        ("regression", 3, M.CategoricalAccuracy),
    ],
)
@pytest.mark.parametrize("name", ["accuracy", "acc", "Accuracy"])
def test_accuracy_follows_the_loss(name, loss_kind, n_outputs, cls):
    assert type(M.get(name, loss_kind, n_outputs)) is cls


def test_get_defaults_to_binary_accuracy():
    assert isinstance(M.get("accuracy"), M.BinaryAccuracy)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("binary_accuracy", M.BinaryAccuracy),
        ("categorical_accuracy", M.CategoricalAccuracy),
        ("sparse_categorical_accuracy", M.CategoricalAccuracy),
        ("precision", M.Precision),
        ("recall", M.Recall),
        ("mae", M.MeanAbsoluteError),
        ("mean_absolute_error", M.MeanAbsoluteError),
        ("mse", M.MeanSquaredError),
        ("MEAN_SQUARED_ERROR", M.MeanSquaredError),
    ],
)
def test_get_by_name(name, cls):
    assert type(M.get(name)) is cls


def test_get_instance_unknown_and_bad_type():
    m = M.Recall()
    assert M.get(m) is m
    with pytest.raises(ValueError, match="nope") as info:
        M.get("nope")
    for name in M.names():
        assert name in str(info.value)
    with pytest.raises(TypeError, match="metrics"):
        M.get(3)
