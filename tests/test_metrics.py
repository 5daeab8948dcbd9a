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
    host = epoch_totals(metric, backend, dt, ys, ps)
    return metric.result(host, n=len(ys) * ys[0].shape[0], k=ys[0].shape[1])


def epoch_totals(metric, backend, dt, ys, ps):
    """The epoch's summed ``stats`` on the host."""
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
    return [float(bp.to_numpy(t)) for t in totals]


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


# -- AUC ---------------------------------------------------------------------------------------


def keras_thresholds(num_thresholds, dtype):
    t = num_thresholds
    return np.array([-1e-7] + [(i + 1) / (t - 1) for i in range(t - 2)] + [1 + 1e-7]).astype(dtype)


def keras_auc(y, p, num_thresholds=200, curve="ROC", summation_method="interpolation"):
    """Keras 3's AUC.result, in NumPy, from counts made by comparing with every threshold."""
    true = np.ravel(y) != 0
    p = np.clip(np.ravel(p), 0, 1)
    above = p[None, :] > keras_thresholds(num_thresholds, p.dtype)[:, None]
    tp = (above & true).sum(1).astype(np.float64)
    fp = (above & ~true).sum(1).astype(np.float64)
    fn, tn = true.sum() - tp, (~true).sum() - fp

    def div(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b != 0)

    if curve == "PR" and summation_method == "interpolation":
        dtp = tp[:-1] - tp[1:]
        pp = tp + fp
        slope = div(dtp, np.maximum(pp[:-1] - pp[1:], 0))
        intercept = tp[1:] - slope * pp[1:]
        both = (pp[:-1] > 0) & (pp[1:] > 0)
        ratio = np.where(both, div(pp[:-1], np.maximum(pp[1:], 0)), 1.0)
        return div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0)).sum()
    recall = div(tp, tp + fn)
    x, h = (div(fp, fp + tn), recall) if curve == "ROC" else (recall, div(tp, tp + fp))
    heights = {
        "interpolation": (h[:-1] + h[1:]) / 2,
        "minoring": np.minimum(h[:-1], h[1:]),
        "majoring": np.maximum(h[:-1], h[1:]),
    }[summation_method]
    return ((x[:-1] - x[1:]) * heights).sum()


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def rounded(arrays, dt):
    return np.concatenate([np.asarray(a, dtype=dt) for a in arrays])


@pytest.mark.parametrize("num_thresholds", [200, 7])
def test_auc_is_keras_formula_on_summed_counts(num_thresholds, backend, rng):
    ys, ps = binary_data(rng)
    ps[0][0, :3] = [0.0, 1.0, 1 / 3]  # the ends and a threshold of T = 7, clipped values below
    ps[1][0, :2] = [-0.5, 1.5]
    for dt in float_dtypes(backend):
        # the device part (the counts) is the same for every curve and summation method
        totals = epoch_totals(M.AUC(num_thresholds), backend, dt, ys, ps)
        for curve in ("ROC", "PR"):
            for method in ("interpolation", "minoring", "majoring"):
                m = M.AUC(num_thresholds, curve, method)
                expected = keras_auc(stack(ys), rounded(ps, dt), num_thresholds, curve, method)
                assert 0 < expected < 1
                # integer counts, summed exactly; the host sums T terms in float64
                got = m.result(totals, n=N * BATCHES, k=K)
                assert got == pytest.approx(expected, rel=num_thresholds * eps("float64"))


def test_auc_from_logits_applies_the_sigmoid_without_overflow(backend, rng):
    ys, _ = binary_data(rng)
    zs = [rng.normal(0, 3, (N, K)) for _ in range(BATCHES)]
    zs[0][0, :2] = [-1000.0, 1000.0]  # exp would overflow (warnings are errors here)
    for dt in float_dtypes(backend):
        with np.errstate(over="ignore"):
            expected = keras_auc(stack(ys), sigmoid(rounded(zs, dt)))
        got = epoch(M.AUC(from_logits=True), backend, dt, ys, zs)
        assert got == pytest.approx(expected, rel=200 * eps("float64"))


@pytest.mark.parametrize("num_thresholds", [200, 11])
def test_auc_roc_within_the_threshold_error_of_sklearn(num_thresholds, backend, rng):
    ys = [rng.integers(0, 2, (N, K)).astype(np.float64) for _ in range(BATCHES)]
    # scores that know the label a little: an AUC well inside (0, 1)
    ps = [np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1) for y in ys]
    y, p = stack(ys).ravel() != 0, stack(ps).ravel()
    exact = sk.roc_auc_score(y, p)
    # Keras's error: a positive and a negative between the same two thresholds count as half
    # a correctly ordered pair, so the error is at most half those pairs' share of all pairs
    bucket = (p[:, None] > keras_thresholds(num_thresholds, p.dtype)[None, :]).sum(1)
    same = sum((bucket[y] == b).sum() * (bucket[~y] == b).sum() for b in np.unique(bucket))
    bound = 0.5 * same / (y.sum() * (~y).sum())
    got = epoch(M.AUC(num_thresholds), backend, "float32", ys, ps)
    assert abs(got - exact) <= bound + 1e-12
    if num_thresholds == 11:  # coarse thresholds: the bound is tight enough to mean something
        assert 0 < bound < 0.2 and got != exact


def test_auc_under_the_pr_curve_is_near_average_precision(backend, rng):
    """A sanity check of the PR curve's orientation: close to scikit-learn's step sum."""
    ys = [rng.integers(0, 2, (N, K)).astype(np.float64) for _ in range(BATCHES)]
    ps = [np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1) for y in ys]
    ap = sk.average_precision_score(stack(ys).ravel(), stack(ps).ravel())
    got = epoch(M.AUC(curve="PR"), backend, "float32", ys, ps)
    assert got == pytest.approx(keras_auc(stack(ys), rounded(ps, "float32"), curve="PR"), rel=1e-12)
    # 60 points: interpolation and steps differ by about one point's share
    assert abs(got - ap) < 1 / 60 * 2


def test_auc_checks_its_arguments():
    with pytest.raises(ValueError, match="num_thresholds=1"):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve='prgain'"):
        M.AUC(curve="prgain")
    with pytest.raises(ValueError, match="summation_method='trapezoid'"):
        M.AUC(summation_method="trapezoid")
    with pytest.raises(TypeError, match="from_logits"):
        M.AUC(from_logits="yes")
    assert M.AUC(curve="pr").curve == "PR"
