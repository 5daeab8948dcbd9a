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
    """The epoch's summed ``stats`` on the host, stacked on the device as the engines do.

    On JAX, ``stats`` runs traced, as the compiled epoch runs it (one program instead of a
    compilation per operation: faster here); the model tests run it eagerly in evaluate.
    """
    xp = backend.xp

    def stacked(y, p):
        stats = metric.stats(y, p, xp)
        assert len(stats) == metric.n_stats
        assert all(s.shape == () for s in stats), "stats are 0-d arrays"
        return xp.stack(stats)

    stacked = backend.compile(stacked) or stacked
    total = None
    for y_host, p_host in zip(ys, ps, strict=True):
        y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
        sums = stacked(y, p)
        assert backend.owns(sums), "stats must stay on the device"
        assert sums.dtype == p.dtype
        total = sums if total is None else total + sums
    return [float(v) for v in bp.to_numpy(total)]


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


# -- Precision and Recall: thresholds, top_k, class_id ------------------------------------------


def top_k_mask(p, k):
    """The k largest of each row, ties to the lower index (what top_k picks)."""
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    mask = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


@pytest.mark.parametrize(
    ("settings", "predicted"),
    [
        ({"thresholds": 0.3}, lambda p: p > 0.3),
        ({"thresholds": [0.7]}, lambda p: p > 0.7),
        ({"top_k": 2}, lambda p: top_k_mask(p, 2)),
        ({"top_k": 2, "thresholds": 0.5}, lambda p: top_k_mask(p, 2) & (p > 0.5)),
        ({"class_id": 3}, lambda p: p > 0.5),
        ({"top_k": 1, "class_id": 0}, lambda p: top_k_mask(p, 1)),
    ],
    ids=["threshold", "one-threshold-list", "top_k", "top_k-threshold", "class_id", "both"],
)
def test_precision_recall_settings(settings, predicted, backend, rng):
    ys, _ = binary_data(rng)
    # quarters: ties inside rows, broken by index as top_k breaks them
    ps = [rng.integers(0, 5, (N, K)) / 4 for _ in range(BATCHES)]
    y, pred = stack(ys), predicted(stack(ps))
    if "class_id" in settings:
        c = settings["class_id"]
        y, pred = y[:, c], pred[:, c]
    for cls, score in ((M.Precision, sk.precision_score), (M.Recall, sk.recall_score)):
        expected = score(y.ravel(), pred.ravel(), zero_division=0)
        assert 0 < expected < 1
        for dt in float_dtypes(backend):
            got = epoch(cls(**settings), backend, dt, ys, ps)
            assert got == pytest.approx(expected, rel=2 * eps("float64"))


def test_precision_top_k_keras_examples(backend):
    """Keras's docstring: with equal outputs, top_k takes the first ones."""
    y, p = [np.array([[0.0, 0.0, 1.0, 1.0]])], [np.ones((1, 4))]
    assert epoch(M.Precision(top_k=2), backend, "float32", y, p) == 0.0
    assert epoch(M.Precision(top_k=4), backend, "float32", y, p) == 0.5


def test_precision_recall_refuse_bad_settings(backend):
    with pytest.raises(ValueError, match="one threshold"):
        M.Precision(thresholds=[0.3, 0.5])
    with pytest.raises(ValueError, match="top_k=0"):
        M.Recall(top_k=0)
    with pytest.raises(ValueError, match="class_id=-1"):
        M.Recall(class_id=-1)
    y = backend.asarray(np.zeros((2, 3)), "float32")
    with pytest.raises(ValueError, match="class_id < 3"):
        M.Precision(class_id=3).stats(y, y, backend.xp)


# -- F1Score -------------------------------------------------------------------------------


def f1_predicted(p, threshold):
    if threshold is not None:
        return p > threshold
    return (p >= p.max(axis=1, keepdims=True)) & (np.abs(p) > 1e-9)


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_f1_score_is_sklearn_f1(threshold, backend, rng):
    ys, ps = binary_data(rng)
    ys[0][:, 4] = 0  # a class without labels: F1 0 in the average, as Keras and zero_division=0
    ps[1][0] = 0.0  # a row of zeros predicts nothing without a threshold
    y, pred = stack(ys).astype(int), f1_predicted(stack(ps), threshold).astype(int)
    for dt in float_dtypes(backend):
        # the per-class sums serve every average but micro
        per_class = epoch_totals(M.F1Score("macro", threshold), backend, dt, ys, ps)
        for average in ("micro", "macro", "weighted", None):
            expected = sk.f1_score(y, pred, average=average, zero_division=0)
            m = M.F1Score(average, threshold)
            if average == "micro":
                got = epoch(m, backend, dt, ys, ps)
            else:
                got = m.result(per_class, n=N * BATCHES, k=K)
            np.testing.assert_allclose(got, expected, rtol=4 * eps("float64"), atol=0)


def test_f1_score_per_class_needs_an_average_to_be_logged():
    with pytest.raises(ValueError, match="average='macro'"):
        M.get(M.F1Score())
    assert M.get(M.F1Score("macro"), "categorical", 4).n_stats == 16
    assert M.F1Score("micro").n_stats == 3
    with pytest.raises(ValueError, match="average="):
        M.F1Score("samples")
    with pytest.raises(ValueError, match="0 < threshold <= 1"):
        M.F1Score(threshold=0.0)


def test_f1_score_serves_the_width_it_was_compiled_for(backend):
    m = M.get(M.F1Score("macro"), "categorical", 3)
    y = backend.asarray(np.eye(4), "float32")
    with pytest.raises(ValueError, match="3 classes"):
        m.stats(y, y, backend.xp)


# -- top-k categorical accuracy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "cls"),
    [
        (1, M.TopKCategoricalAccuracy),
        (2, M.TopKCategoricalAccuracy),
        (2, M.SparseTopKCategoricalAccuracy),
        (K, M.TopKCategoricalAccuracy),
    ],
)
def test_top_k_categorical_accuracy(k, cls, backend, rng):
    labels = [rng.integers(0, K, N) for _ in range(BATCHES)]
    ys = [np.eye(K)[lab] for lab in labels]
    ps = [rng.integers(0, 4, (N, K)) / 4 for _ in range(BATCHES)]  # ties, counted as hits
    ps[0][0, labels[0][0]] = np.nan  # NaN at the label ranks last
    p, lab = stack(ps), stack(labels)
    at_label = np.nan_to_num(p[np.arange(len(lab)), lab], nan=-np.inf)
    with np.errstate(invalid="ignore"):
        expected = np.mean((p > at_label[:, None]).sum(axis=1) < k)
    assert 0 < expected < 1 or k == K
    for dt in float_dtypes(backend):
        assert epoch(cls(k), backend, dt, ys, ps) == pytest.approx(expected, abs=0)


def test_top_k_checks_k():
    with pytest.raises(ValueError, match="k=0"):
        M.TopKCategoricalAccuracy(k=0)


# -- names and configs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("auc", M.AUC),
        ("AUC", M.AUC),
        ("top_k_categorical_accuracy", M.TopKCategoricalAccuracy),
        ("sparse_top_k_categorical_accuracy", M.SparseTopKCategoricalAccuracy),
    ],
)
def test_get_new_metrics_by_keras_name(name, cls):
    assert type(M.get(name)) is cls


@pytest.mark.parametrize(
    "metric",
    [
        M.AUC(50, "PR", "majoring", from_logits=True),
        M.AUC(curve="PR", name="pr_auc"),
        M.Precision(0.3, top_k=2, class_id=1),
        M.Recall(name="recall_of_1", class_id=1),
        M.F1Score("weighted", 0.4),
        M.TopKCategoricalAccuracy(3, name="top3"),
        M.BinaryAccuracy(0.7, name="acc_07"),
        M.MeanSquaredError(name="mse_2"),
    ],
    ids=repr,
)
def test_config_rebuilds_the_metric(metric):
    copy = M.get(metric.get_config(), "categorical", 4)
    assert type(copy) is type(metric)
    assert copy.get_config() == metric.get_config()
    assert copy.name == metric.name
    assert repr(copy) == repr(metric)


def test_a_config_of_earlier_files_still_loads():
    assert M.get({"name": "precision"}).get_config() == M.Precision().get_config()
    assert M.get({"name": "Mean_Squared_Error"}).name == "mse"


# -- through compile, fit, evaluate, save and load: as a user would ---------------------------


CLASSES = 3


def _classes(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (np.argmax(X[:, :CLASSES] + rng.normal(0, 0.7, (n, CLASSES)), axis=1)).astype(int)
    return X, y


def _user_metrics():
    return [
        "auc",
        M.AUC(curve="PR", name="pr_auc"),
        "precision",
        "recall",
        M.Precision(top_k=1, name="precision_top1"),
        M.Recall(class_id=1, name="recall_1"),
        M.F1Score("macro", name="f1_macro"),
        M.F1Score("weighted", 0.4, name="f1_weighted"),
        M.TopKCategoricalAccuracy(2, name="top2"),
    ]


def _references(y, p):
    """Every metric of ``_user_metrics`` from the predictions, computed in NumPy/scikit-learn."""
    onehot = np.eye(CLASSES)[y]
    top1 = top_k_mask(p, 1)
    at_label = p[np.arange(len(y)), y]
    return {
        "auc": keras_auc(onehot, p),
        "pr_auc": keras_auc(onehot, p, curve="PR"),
        "precision": sk.precision_score(onehot.ravel(), p.ravel() > 0.5, zero_division=0),
        "recall": sk.recall_score(onehot.ravel(), p.ravel() > 0.5, zero_division=0),
        "precision_top1": sk.precision_score(onehot.ravel(), top1.ravel(), zero_division=0),
        "recall_1": sk.recall_score(onehot[:, 1], p[:, 1] > 0.5, zero_division=0),
        "f1_macro": sk.f1_score(onehot, f1_predicted(p, None), average="macro", zero_division=0),
        "f1_weighted": sk.f1_score(
            onehot, f1_predicted(p, 0.4), average="weighted", zero_division=0
        ),
        "top2": np.mean((p > at_label[:, None]).sum(axis=1) < 2),
    }


def _classifier(**kwargs):
    model = bp.Sequential(
        [bp.layers.Dense(8, "tanh", input_dim=4), bp.layers.Dense(CLASSES, "softmax")],
        seed=0,
        **kwargs,
    )
    model.compile("sparse_categorical_crossentropy", bp.optimizers.Adam(0.05), _user_metrics())
    return model


def test_metrics_through_fit_and_evaluate(backend, tmp_path):
    X, y = _classes()
    model = _classifier(backend=backend, dtype="float32")
    history = model.fit(X, y, epochs=2, batch_size=16, validation_data=(X, y), verbose=0)
    if backend.name == "jax":  # the epoch traced as one program, the metrics' stats included
        assert history.params["engine"] == "compiled"
    names = [name for name, _ in model.metrics]
    assert names == list(_references(y, np.full((len(y), CLASSES), 0.5)))
    for name in names:
        assert len(history.history[name]) == len(history.history["val_" + name]) == 2
    p = bp.to_numpy(model.predict(X, batch_size=len(X))).astype(np.float64)
    expected = _references(y, np.asarray(p, dtype=np.float32))
    assert all(0 < expected[name] < 1 for name in names)
    got = model.evaluate(X, y, batch_size=len(X))
    for name in names:
        # counts of the same predictions: exact up to the host's float64 arithmetic
        assert got[name] == pytest.approx(expected[name], rel=1e-12), name
        assert history.history["val_" + name][-1] == pytest.approx(expected[name], rel=1e-12)
    if backend.name == "numpy":  # saved with the model, names and settings included
        model.save(tmp_path / "m.npz")
        loaded = bp.load(tmp_path / "m.npz")
        assert [(n, m.get_config()) for n, m in loaded.metrics] == [
            (n, m.get_config()) for n, m in model.metrics
        ]
        assert loaded.evaluate(X, y, batch_size=len(X)) == pytest.approx(got, rel=1e-6)


def test_metrics_are_exact_under_data_parallelism():
    """Two ranks (threads) train on halves of each batch; their summed counts are the whole's."""
    from distributed_helpers import ThreadGroup

    X, y = _classes(seed=1)
    Xv, yv = _classes(n=30, seed=2)

    def rank_fit(rank, comm):
        model = _classifier(dtype="float64")
        h = model.fit(X, y, epochs=2, batch_size=16, validation_data=(Xv, yv), verbose=0,
                      distributed=comm)  # fmt: skip
        return h.history, model.predict(Xv)

    results = ThreadGroup(2, timeout=30).run(rank_fit)
    for r in results:
        assert not isinstance(r, BaseException), repr(r)
    (history, p), (history_1, _) = results
    assert history == history_1  # every rank logs the sums over all ranks
    single = _classifier(dtype="float64").fit(X, y, epochs=2, batch_size=16, verbose=0)
    expected = _references(yv, np.asarray(p))
    for name, value in expected.items():
        # validation rows split over the ranks, counts summed: the metric of all the rows
        assert history["val_" + name][-1] == pytest.approx(value, rel=1e-12), name
        # training: the same steps as one process, up to the order of the gradient sums
        assert history[name] == pytest.approx(single.history[name], rel=1e-9), name


# -- new-user checks: names, thresholds, directions ---------------------------------------------


def test_f1_score_string_builds_the_macro_average_and_compiles():
    # the string is in names(), so it must compile and log a number (Keras's per-class
    # vector cannot be logged)
    assert "f1_score" in M.names()
    metric = M.get("f1_score", "categorical", 3)
    assert (type(metric), metric.average, metric.name) == (M.F1Score, "macro", "f1_score")
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.arange(12) % 3
    model = bp.Sequential([bp.layers.Dense(3, "softmax", input_dim=3)], seed=0)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["f1_score"])
    logs = model.evaluate(X, y)
    expected = sk.f1_score(y, model.predict(X).argmax(1), average="macro", zero_division=0)
    np.testing.assert_allclose(logs["f1_score"], expected, rtol=1e-5)


@pytest.mark.parametrize("cls", [M.Precision, M.Recall])
@pytest.mark.parametrize("thresholds", [1.5, -0.1, [1.5]])
def test_precision_recall_refuse_thresholds_outside_0_1(cls, thresholds):
    with pytest.raises(ValueError, match=r"thresholds must be in \[0, 1\], received"):
        cls(thresholds=thresholds)
    assert cls(thresholds=0.0).thresholds == 0.0 and cls(thresholds=1).thresholds == 1.0


def test_each_metric_knows_its_direction():
    up = [M.BinaryAccuracy(), M.CategoricalAccuracy(), M.TopKCategoricalAccuracy()]
    up += [M.SparseTopKCategoricalAccuracy(), M.Precision(), M.Recall(), M.AUC()]
    up += [M.F1Score("macro"), M.get("accuracy")]
    assert [m.direction for m in up] == ["up"] * len(up)
    assert M.get("mae").direction == M.get("mse").direction == "down"
    assert all(M.get(name).direction in ("up", "down") for name in M.names())

    class Custom(M.Metric):
        name = "custom"

    assert Custom().direction is None


@pytest.mark.parametrize(
    ("named", "match"),
    [
        ([("auc", M.AUC()), ("auc", M.AUC(curve="PR"))], r"Two metrics are named 'auc'.*'auc_1'"),
        ([("accuracy", M.BinaryAccuracy()), ("accuracy", M.BinaryAccuracy())], "'accuracy_1'"),
        ([("loss", M.MeanAbsoluteError(name="loss"))], r"named 'loss'.*name='my_loss'"),
        ([("val_ba", M.BinaryAccuracy(name="val_ba"))], "starts with 'val_'"),
        ([("learning_rate", M.AUC(name="learning_rate"))], "named 'learning_rate'"),
    ],
)
def test_check_names_refuses_clashing_log_keys(named, match):
    with pytest.raises(ValueError, match=match):
        M._check_names(named)


def test_check_names_accepts_distinct_names():
    M._check_names([("auc", M.AUC()), ("prauc", M.AUC(curve="PR", name="prauc")), ("acc", None)])


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        (lambda: [M.AUC(), M.AUC(curve="PR")], "Two metrics are named 'auc'"),
        (lambda: ["accuracy", "accuracy"], "named 'accuracy'"),
        (lambda: [M.AUC(name="loss")], "loss"),
    ],
)
def test_compile_refuses_clashing_metric_names_and_leaves_the_model_as_it_was(metrics, match):
    model = bp.Sequential([bp.layers.Dense(1, "sigmoid", input_dim=2)], seed=0)
    model.compile("binary_crossentropy", "sgd", metrics=["precision"])
    with pytest.raises(ValueError, match=match):
        model.compile("binary_crossentropy", "adam", metrics=metrics())
    assert [name for name, _ in model.metrics] == ["precision"]
    assert type(model.optimizer).__name__ == "SGD"


# -- sample weights: each metric's sums weighted as Keras weighs them ----------------------------


def weighted_epoch(metric, backend, dt, ys, ps, ws):
    """``epoch`` with weights: the weighted sums over the batches, the total weight as ``n``."""
    xp = backend.xp

    def stacked(y, p, w):
        stats = metric.stats(y, p, xp, sample_weight=w)
        assert len(stats) == metric.n_stats
        assert all(s.shape == () for s in stats), "stats are 0-d arrays"
        return xp.stack(stats)

    stacked = backend.compile(stacked) or stacked
    total = None
    for y_host, p_host, w_host in zip(ys, ps, ws, strict=True):
        y, p = backend.asarray(y_host, dt), backend.asarray(p_host, dt)
        sums = stacked(y, p, backend.asarray(w_host, dt))
        assert backend.owns(sums) and sums.dtype == p.dtype
        total = sums if total is None else total + sums
    host = [float(v) for v in bp.to_numpy(total)]
    return metric.result(host, n=float(np.sum(ws)), k=ys[0].shape[1])


def binary_weights(rng):
    # integer weights (exact sums in float32 too), a zero weight among them
    ws = [rng.integers(0, 6, N).astype(np.float64) for _ in range(BATCHES)]
    ws[0][0] = 0.0
    return ws


def _repeat(w, k):
    return np.repeat(stack(w), k)


def _weighted_references(ys, ps, ws):
    y, p, w = stack(ys), stack(ps), stack(ws)
    flat, wk = y.ravel(), _repeat(ws, K)
    return {
        "binary_accuracy": sk.accuracy_score(flat, p.ravel() > 0.5, sample_weight=wk),
        "categorical_accuracy": sk.accuracy_score(y.argmax(1), p.argmax(1), sample_weight=w),
        "precision": sk.precision_score(flat, p.ravel() > 0.5, sample_weight=wk),
        "recall": sk.recall_score(flat, p.ravel() > 0.5, sample_weight=wk),
        "mae": sk.mean_absolute_error(y, p, sample_weight=w),
        "mse": sk.mean_squared_error(y, p, sample_weight=w),
    }


@pytest.mark.parametrize(
    "metric",
    [
        M.BinaryAccuracy,
        M.CategoricalAccuracy,
        M.Precision,
        M.Recall,
        M.MeanAbsoluteError,
        M.MeanSquaredError,
    ],
    ids=lambda c: c.name,
)
def test_weighted_metrics_are_sklearns_with_sample_weight(metric, backend, rng):
    ys, ps = binary_data(rng)
    ys[1][:, 0] = 0  # distinct argmax rows for categorical accuracy
    ws = binary_weights(rng)
    expected = _weighted_references(ys, ps, ws)[metric.name]
    assert expected != _weighted_references(ys, ps, [np.ones(N)] * BATCHES)[metric.name]
    for dt in float_dtypes(backend):
        got = weighted_epoch(metric(), backend, dt, ys, ps, ws)
        # counts of integer weights are exact; the regression sums round in dt
        rtol = 0 if metric not in (M.MeanAbsoluteError, M.MeanSquaredError) else 64 * eps(dt)
        assert got == pytest.approx(expected, rel=rtol, abs=0)


def test_weighted_f1_score_is_sklearns_with_sample_weight(backend, rng):
    ys, ps = binary_data(rng)
    ws = binary_weights(rng)
    y, pred, w = stack(ys).astype(int), f1_predicted(stack(ps), None).astype(int), stack(ws)
    for dt in float_dtypes(backend):
        for average in ("micro", "macro", "weighted"):
            expected = sk.f1_score(y, pred, average=average, sample_weight=w, zero_division=0)
            assert expected != sk.f1_score(y, pred, average=average, zero_division=0)
            m = M.get(M.F1Score(average), "binary", K)
            got = weighted_epoch(m, backend, dt, ys, ps, ws)
            np.testing.assert_allclose(got, expected, rtol=4 * eps("float64"), atol=0)


@pytest.mark.parametrize("k", [1, 2, K])
def test_weighted_top_k_accuracy_is_the_weighted_mean_of_hits(k, backend, rng):
    labels = [rng.integers(0, K, N) for _ in range(BATCHES)]
    ys = [np.eye(K)[a] for a in labels]
    ps = [rng.uniform(0, 1, (N, K)) for _ in range(BATCHES)]
    ws = binary_weights(rng)
    p, label = stack(ps), stack(labels)
    hit = (p > p[np.arange(len(label)), label][:, None]).sum(1) < k
    expected = np.average(hit, weights=stack(ws))
    for dt in float_dtypes(backend):
        got = weighted_epoch(M.TopKCategoricalAccuracy(k), backend, dt, ys, ps, ws)
        assert got == pytest.approx(expected, rel=4 * eps("float64"), abs=0)


def weighted_keras_auc(y, p, w, num_thresholds=200, curve="ROC"):
    """``keras_auc`` of integer weights: each output repeated as often as its weight."""
    reps = np.repeat(w, y.shape[1]).astype(int)
    return keras_auc(np.repeat(y.ravel(), reps), np.repeat(p.ravel(), reps), num_thresholds, curve)


@pytest.mark.parametrize("curve", ["ROC", "PR"])
def test_weighted_auc_counts_the_weights(curve, backend, rng):
    ys = [rng.integers(0, 2, (N, K)).astype(np.float64) for _ in range(BATCHES)]
    ps = [np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1) for y in ys]
    ws = binary_weights(rng)
    y, w = stack(ys), stack(ws)
    for dt in float_dtypes(backend):
        p = rounded(ps, dt)
        # Keras's formula on the weighted confusion counts: integer weights are repeated rows
        expected = weighted_keras_auc(y, p, w, curve=curve)
        assert expected != pytest.approx(keras_auc(y, p, curve=curve), rel=1e-6)
        got = weighted_epoch(M.AUC(curve=curve), backend, dt, ys, ps, ws)
        assert got == pytest.approx(expected, rel=200 * eps("float64"))
        if curve == "ROC":  # and within the threshold error of scikit-learn's weighted AUC
            exact = sk.roc_auc_score(y.ravel() != 0, p.ravel(), sample_weight=_repeat(ws, K))
            assert abs(got - exact) < 0.01


def test_weighted_auc_of_fractional_weights_is_sklearns_within_the_threshold_error(backend, rng):
    ys = [rng.integers(0, 2, (N, K)).astype(np.float64) for _ in range(BATCHES)]
    ps = [np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1) for y in ys]
    ws = [rng.uniform(0.1, 3.0, N) for _ in range(BATCHES)]
    y, p = stack(ys).ravel() != 0, stack(ps).ravel()
    wk = _repeat(ws, K)
    exact = sk.roc_auc_score(y, p, sample_weight=wk)
    t = 11
    # the weighted share of positive-negative pairs that fall between the same two thresholds
    bucket = (p[:, None] > keras_thresholds(t, p.dtype)[None, :]).sum(1)
    same = sum(
        wk[y & (bucket == b)].sum() * wk[~y & (bucket == b)].sum() for b in np.unique(bucket)
    )
    bound = 0.5 * same / (wk[y].sum() * wk[~y].sum())
    got = weighted_epoch(M.AUC(t), backend, "float64" if backend.supports_float64 else "float32",
                         ys, ps, ws)  # fmt: skip
    assert 0 < bound < 0.2 and got != exact
    assert abs(got - exact) <= bound + 1e-6


def test_without_weights_a_metric_gives_its_unweighted_sums(backend, rng):
    ys, ps = binary_data(rng)
    xp = backend.xp
    for metric in (
        M.BinaryAccuracy(),
        M.Precision(),
        M.AUC(7),
        M.get(M.F1Score("macro"), n_outputs=K),
    ):
        y, p = backend.asarray(ys[0], "float32"), backend.asarray(ps[0], "float32")
        plain = [float(v) for v in bp.to_numpy(xp.stack(metric.stats(y, p, xp)))]
        none = [float(v) for v in bp.to_numpy(xp.stack(metric.stats(y, p, xp, sample_weight=None)))]
        ones = xp.ones((N,), dtype=p.dtype, device=M._device(p))
        by_one = [
            float(v) for v in bp.to_numpy(xp.stack(metric.stats(y, p, xp, sample_weight=ones)))
        ]
        assert plain == none == by_one
