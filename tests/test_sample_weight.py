"""Sample and class weights in fit and evaluate, as Keras 3 weighs them.

The loss of a batch is ``sum_i w_i L_i / n`` (Keras's ``"sum_over_batch_size"``); every engine
gathers the weights with the rows, so each must give the numbers of the eager steps.
"""

from __future__ import annotations

import numpy as np
import pytest
from distributed_helpers import ThreadGroup

import backprop as bp
from backprop import losses as _losses
from backprop.training import compiled as _compiled
from backprop.training import loop as _loop

N = 40


def _data(seed=0, k=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 3))
    if k == 1:
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
    else:
        y = np.argmax(X @ rng.normal(size=(3, k)), axis=1)
    w = rng.uniform(0.0, 3.0, size=N)
    return X, y, w


def _model(
    backend="numpy", loss="binary_crossentropy", out="sigmoid", k=1, lr=0.05, reg=None, wm=None
):
    name, _, device = str(backend).partition(":")
    model = bp.Sequential(
        [
            bp.layers.Dense(4, "tanh", input_dim=3, kernel_regularizer=reg),
            bp.layers.Dense(k, out),
        ],
        backend=name,
        device=device or None,
        dtype="float64",
        seed=1,
    )
    metrics = ["accuracy"] if out != "linear" else ["mae"]
    model.compile(loss, bp.optimizers.SGD(lr), metrics, weighted_metrics=wm)
    return model


@pytest.fixture
def spec(backend64):
    dev = getattr(backend64, "device", None)
    name = backend64.name
    if name == "array_api_strict" and dev is not None and "device1" in str(dev):
        return "array_api_strict:device1"
    return name


def _fit(model, X, y, **kw):
    kw.setdefault("epochs", 2)
    kw.setdefault("batch_size", 16)
    return model.fit(X, y, verbose=0, **kw)


@pytest.mark.parametrize("loss,out", [("binary_crossentropy", "sigmoid"), ("mse", "linear")])
def test_all_ones_weights_train_as_no_weights(spec, loss, out):
    X, y, _ = _data()
    a, b = _model(spec, loss, out), _model(spec, loss, out)
    ha = _fit(a, X, y)
    hb = _fit(b, X, y, sample_weight=np.ones(N))
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)  # w * g with w = 1 is g, to the last bit
    np.testing.assert_allclose(hb.history["loss"], ha.history["loss"], rtol=1e-14)


def test_weights_of_two_train_as_twice_the_learning_rate(spec):
    X, y, _ = _data()
    a, b = _model(spec, lr=0.1), _model(spec, lr=0.05)
    ha = _fit(a, X, y, epochs=1)
    hb = _fit(b, X, y, epochs=1, sample_weight=np.full(N, 2.0))
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-15)
    # the same weights at every step: the weighted loss is twice the plain one
    np.testing.assert_allclose(hb.history["loss"], 2 * np.array(ha.history["loss"]), rtol=1e-12)


def _bce_rows(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


@pytest.mark.parametrize("batch_size", [None, 7])
def test_the_weighted_loss_is_the_sum_over_the_batch_size(batch_size):
    X, y, w = _data()
    model = _model(reg=bp.regularizers.L2(1e-2))
    _fit(model, X, y, epochs=1)
    p = np.asarray(model.predict(X))[:, 0]
    W1 = model.get_weights()[0]
    penalty = 1e-2 * np.sum(W1 * W1)
    expected = np.sum(w * _bce_rows(y, p)) / N + penalty  # divided by n, not by sum(w)
    got = model.evaluate(X, y, batch_size=batch_size, sample_weight=w)
    np.testing.assert_allclose(got["loss"], expected, rtol=1e-12)
    # the metrics stay unweighted
    assert got["accuracy"] == model.evaluate(X, y)["accuracy"]


@pytest.mark.parametrize(
    "loss,out,k",
    [("binary_crossentropy", "sigmoid", 1), ("mse", "linear", 1), ("huber", "linear", 2)],
)
def test_one_step_follows_the_gradient_of_the_weighted_loss(loss, out, k):
    """A full-batch SGD step moves the weights by -lr times the weighted loss's gradient."""
    X, y, w = _data()
    y = y if k == 1 else np.stack([y, 1 - y], axis=1)
    lr = 0.1
    model = _model(loss=loss, out=out, k=k, lr=lr, reg=bp.regularizers.L2(1e-2))
    _fit(model, X, y, epochs=1, batch_size=N, shuffle=False, sample_weight=w)
    after = model.get_weights()
    ref = _model(loss=loss, out=out, k=k, lr=lr, reg=bp.regularizers.L2(1e-2))
    ref.build((3,))
    start = ref.get_weights()
    h = 1e-6
    for i, W in enumerate(start):
        grad = np.zeros_like(W)
        for j in np.ndindex(W.shape):
            value = []
            for s in (h, -h):
                trial = [v.copy() for v in start]
                trial[i][j] += s
                ref.set_weights(trial)
                value.append(ref.evaluate(X, y, sample_weight=w)["loss"])
            grad[j] = (value[0] - value[1]) / (2 * h)
        np.testing.assert_allclose((start[i] - after[i]) / lr, grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["binary", "sparse", "categorical"])
def test_class_weight_is_the_matching_sample_weight(kind):
    k = 1 if kind == "binary" else 3
    X, y, _ = _data(k=k)
    loss = {
        "binary": "binary_crossentropy",
        "sparse": "sparse_categorical_crossentropy",
        "categorical": "categorical_crossentropy",
    }[kind]
    labels = np.eye(3)[y] if kind == "categorical" else y
    cw = {0: 0.5, 1: 3.0, 7: 9.0}  # class 2 missing: weighs 1; class 7 unknown: ignored
    w = np.array([cw.get(int(c), 1.0) for c in y])
    out = "sigmoid" if k == 1 else "softmax"
    a, b = _model(loss=loss, out=out, k=k), _model(loss=loss, out=out, k=k)
    ha = _fit(a, X, labels, class_weight=cw)
    hb = _fit(b, X, labels, sample_weight=w)
    assert ha.history == hb.history
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)
    c = _model(loss=loss, out=out, k=k)
    _fit(c, X, labels)
    assert not np.array_equal(c.get_weights()[0], a.get_weights()[0])  # the weights matter


def test_validation_data_takes_sample_weights():
    X, y, _ = _data()
    Xv, yv, wv = _data(seed=5)
    model = _model()
    h = _fit(model, X, y, epochs=1, validation_data=(Xv, yv, wv))
    expected = model.evaluate(Xv, yv, sample_weight=wv)
    assert h.history["val_loss"] == [expected["loss"]]
    assert h.history["val_accuracy"] == [expected["accuracy"]]
    assert expected["loss"] != model.evaluate(Xv, yv)["loss"]


def test_validation_split_takes_the_weights_of_its_rows():
    X, y, w = _data()
    model = _model()
    h = _fit(model, X, y, epochs=1, validation_split=0.25, sample_weight=w)
    expected = model.evaluate(X[30:], y[30:], sample_weight=w[30:])
    np.testing.assert_allclose(h.history["val_loss"], [expected["loss"]], rtol=1e-14)


# -- weighted metrics: compile(weighted_metrics=...) ---------------------------------------------


def _predicted(model, X):
    return np.asarray(bp.to_numpy(model.predict(X)), dtype=np.float64)[:, 0]


def test_weighted_metrics_weigh_by_the_sample_weights_under_their_own_names(spec):
    skm = pytest.importorskip("sklearn.metrics")
    X, y, w = _data()
    model = _model(spec, wm=["accuracy", "auc", "mae"])
    _fit(model, X, y, epochs=1)
    p = _predicted(model, X)
    got = model.evaluate(X, y, sample_weight=w)
    # Keras 3: a weighted metric named like an unweighted one gets the prefix "weighted_"
    assert list(got) == ["loss", "accuracy", "weighted_accuracy", "auc", "mae"]
    expected = skm.accuracy_score(y, p > 0.5, sample_weight=w)
    assert got["weighted_accuracy"] == pytest.approx(expected, rel=1e-12)
    assert got["weighted_accuracy"] != got["accuracy"]
    assert got["accuracy"] == skm.accuracy_score(y, p > 0.5)  # unweighted stays unweighted
    np.testing.assert_allclose(got["mae"], np.average(np.abs(p - y), weights=w), rtol=1e-12)
    # within Keras's threshold error (200 thresholds, 40 rows: a few pairs share a bucket)
    assert abs(got["auc"] - skm.roc_auc_score(y, p, sample_weight=w)) < 0.02
    # without weights a weighted metric is the unweighted one
    plain = model.evaluate(X, y)
    assert plain["weighted_accuracy"] == plain["accuracy"]
    np.testing.assert_allclose(plain["mae"], np.mean(np.abs(p - y)), rtol=1e-12)


def test_weighted_metrics_in_fit_use_the_fit_and_the_validation_weights():
    X, y, w = _data()
    Xv, yv, wv = _data(seed=5)
    model = _model(wm=["accuracy", "precision"])
    h = _fit(model, X, y, epochs=1, batch_size=N, shuffle=False, sample_weight=w,
             validation_data=(Xv, yv, wv))  # fmt: skip
    val = model.evaluate(Xv, yv, sample_weight=wv)
    assert h.history["val_weighted_accuracy"] == [val["weighted_accuracy"]]
    assert h.history["val_precision"] == [val["precision"]]
    assert val["weighted_accuracy"] != model.evaluate(Xv, yv)["weighted_accuracy"]
    # one full batch: the epoch's metrics are those of the weights before its step
    start = _model(wm=["accuracy", "precision"])
    before = start.evaluate(X, y, sample_weight=w)
    assert h.history["weighted_accuracy"] == [before["weighted_accuracy"]]
    assert h.history["precision"] == [before["precision"]]


def test_class_weight_weighs_the_weighted_metrics():
    X, y, _ = _data()
    cw = {0: 0.25, 1: 4.0}
    a, b = _model(wm=["accuracy"]), _model(wm=["accuracy"])
    ha = _fit(a, X, y, class_weight=cw)
    hb = _fit(b, X, y, sample_weight=np.array([cw[int(c)] for c in y]))
    assert ha.history == hb.history
    assert ha.history["weighted_accuracy"] != ha.history["accuracy"]


def test_integer_weights_weigh_as_repeated_rows():
    X, y, w = _data()
    w = np.round(w).astype(int)
    model = _model(wm=["accuracy", "precision", "recall", "mse"])
    _fit(model, X, y, epochs=1)
    got = model.evaluate(X, y, sample_weight=w)
    repeated = model.evaluate(np.repeat(X, w, axis=0), np.repeat(y, w))
    for name in ("precision", "recall", "mse"):
        assert got[name] == pytest.approx(repeated[name], rel=1e-12), name
    assert got["weighted_accuracy"] == pytest.approx(repeated["accuracy"], rel=1e-12)


def test_weighted_metric_names_follow_keras_and_clashes_are_refused():
    model = _model(wm=["accuracy"])  # the model's metrics=["accuracy"]
    assert [n for n, _ in model.metrics] == ["accuracy", "weighted_accuracy"]
    model = _model(wm=["auc", bp.metrics.AUC(curve="PR")])
    assert [n for n, _ in model.metrics] == ["accuracy", "auc", "weighted_auc"]
    # Keras would number a third; here, as for metrics=, a clash is told at compile
    with pytest.raises(ValueError, match=r"named 'weighted_accuracy' \(BinaryAccuracy and Bin"):
        _model(wm=["accuracy", bp.metrics.BinaryAccuracy(name="accuracy")])


def test_compile_refuses_bad_weighted_metrics_and_leaves_the_model_as_it_was():
    class Unweighable(bp.metrics.Metric):
        name = "unweighable"

        def stats(self, y, y_hat, xp):
            return [xp.sum(y_hat)]

        def result(self, totals, n, k):
            return totals[0] / n

    model = _model(wm=["precision"])
    with pytest.raises(TypeError, match="sample_weight"):
        model.compile("binary_crossentropy", "adam", weighted_metrics=[Unweighable()])
    with pytest.raises(TypeError, match="weighted_metrics must be a list"):
        model.compile("binary_crossentropy", "adam", weighted_metrics=3)
    with pytest.raises(ValueError, match="Unknown metric"):
        model.compile("binary_crossentropy", "adam", weighted_metrics=["nope"])
    assert [n for n, _ in model.metrics] == ["accuracy", "precision"]
    assert type(model.optimizer).__name__ == "SGD"
    # a custom metric that takes sample_weight is weighed
    model.compile("binary_crossentropy", "sgd", weighted_metrics=[bp.metrics.MeanSquaredError()])
    assert [n for n, _ in model.metrics] == ["mse"]


# -- every engine gives the eager numbers ------------------------------------------------------


# the engines' tests log weighted metrics too: their sums ride with the unweighted ones
WEIGHTED = ["accuracy", "precision", "mse"]
WEIGHTED_KEYS = ["weighted_accuracy", "precision", "mse"]


def _reference(spec="numpy", **kw):
    X, y, w = _data()
    model = _model(spec, wm=WEIGHTED, **kw)
    h = _fit(model, X, y, epochs=2, batch_size=12, sample_weight=w)
    assert set(WEIGHTED_KEYS) <= set(h.history)
    return h.history, model.get_weights()


def _same(history, weights, ref, rtol=1e-12):
    for key in ref[0]:
        np.testing.assert_allclose(history[key], ref[0][key], rtol=rtol, err_msg=key)
    for u, v in zip(weights, ref[1], strict=True):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-14)


def test_the_compiled_epoch_weighs_as_the_eager_steps(monkeypatch):
    ref = _reference()
    # the program JAX compiles, run uncompiled on NumPy: the same code path as under jax.jit
    monkeypatch.setattr(bp.Backend, "compile", lambda self, fn: fn)
    monkeypatch.setattr(
        _loop, "choose_engine", lambda m, *a: _compiled.Compiled(_compiled.program(m, 12))
    )
    X, y, w = _data()
    model = _model(wm=WEIGHTED)
    h = _fit(model, X, y, epochs=2, batch_size=12, sample_weight=w)
    _same(h.history, model.get_weights(), ref)


def test_jax_compiled_epoch_weighs_as_numpy():
    pytest.importorskip("jax")
    ref = _reference()
    X, y, w = _data()
    model = _model("jax", wm=WEIGHTED)
    h = _fit(model, X, y, epochs=2, batch_size=12, sample_weight=w)
    assert h.params["engine"] == "compiled"
    _same(h.history, model.get_weights(), ref)


def test_the_captured_step_weighs_as_the_eager_steps(recorder):
    ref = _reference()
    X, y, w = _data()
    model = _model(wm=WEIGHTED)
    h = _fit(model, X, y, epochs=2, batch_size=12, sample_weight=w)
    assert h.params["engine"] == "captured" and recorder
    _same(h.history, model.get_weights(), ref)


@pytest.mark.parametrize("ranks", [2, 3])
def test_data_parallel_weights_equal_one_process(ranks):
    ref = _reference()
    X, y, w = _data()

    def rank_fit(rank, comm):
        model = _model(wm=WEIGHTED)
        h = _fit(model, X, y, epochs=2, batch_size=12, sample_weight=w, distributed=comm)
        return h.history, model.get_weights()

    for result in ThreadGroup(ranks, timeout=10).run(rank_fit):
        assert not isinstance(result, BaseException), repr(result)
        _same(*result, ref)


# -- no weights: the fast path is the one it was ---------------------------------------------


def test_without_weights_no_weighted_code_runs(monkeypatch, spec):
    def refuse(*a, **k):
        raise AssertionError("the weighted path ran in a fit without weights")

    monkeypatch.setattr(_losses.Loss, "weighted", refuse)
    monkeypatch.setattr(_losses.Loss, "per_sample", refuse)
    X, y, _ = _data()
    for loss, out in [("binary_crossentropy", "sigmoid"), ("mse", "linear")]:
        model = _model(spec, loss, out)
        _fit(model, X, y, validation_data=(X, y))
        model.evaluate(X, y)


# -- bad input: a clear error before training, the model untouched -----------------------------


@pytest.mark.parametrize(
    "kw,error,match",
    [
        (dict(sample_weight=np.ones(N - 1)), ValueError, r"shape \(40,\)"),
        (dict(sample_weight=np.ones((N, 2))), ValueError, "one weight per sample"),
        (dict(sample_weight=-np.ones(N)), ValueError, ">= 0"),
        (dict(sample_weight=np.r_[np.ones(N - 1), np.nan]), ValueError, "row 39"),
        (dict(sample_weight=np.r_[np.inf, np.ones(N - 1)]), ValueError, "finite"),
        (dict(sample_weight=np.array(["a"] * N)), TypeError, "numbers"),
        (dict(sample_weight="heavy"), TypeError, "sample_weight"),
        (dict(class_weight=[1.0, 2.0]), TypeError, "dict"),
        (dict(class_weight={"0": 1.0}), TypeError, "integer class"),
        (dict(class_weight={0: -1.0}), ValueError, ">= 0"),
        (dict(class_weight={0: float("nan")}), ValueError, "finite"),
        (dict(class_weight={0: "x"}), TypeError, "number"),
        (dict(sample_weight=np.ones(N), class_weight={0: 1.0}), ValueError, "not both"),
        (dict(validation_data=(np.ones((5, 3)), np.ones(5), np.ones(4))), ValueError, "(5,)"),
    ],
)
def test_bad_weights_are_refused_before_training(kw, error, match):
    X, y, _ = _data()
    trained = _model()
    _fit(trained, X, y, epochs=1)
    before, steps = trained.get_weights(), trained.optimizer.iterations
    with pytest.raises(error, match=match):
        _fit(trained, X, y, **kw)
    assert trained.optimizer.iterations == steps
    for u, v in zip(trained.get_weights(), before, strict=True):
        np.testing.assert_array_equal(u, v)


def test_evaluate_refuses_bad_weights():
    X, y, _ = _data()
    model = _model()
    with pytest.raises(ValueError, match="one weight per sample"):
        model.evaluate(X, y, sample_weight=np.ones(3))


def test_weights_of_any_library_list_or_column_weigh_alike():
    X, y, w = _data()
    ref = _model()
    expected = _fit(ref, X, y, sample_weight=w).history
    givens = [list(w), w[:, None]]
    torch = pytest.importorskip("torch")
    givens.append(torch.tensor(w))
    for given in givens:
        model = _model()
        assert _fit(model, X, y, sample_weight=given).history == expected


@pytest.mark.parametrize("store", [False, True])
def test_class_weight_leaves_the_validation_split_unweighted(tmp_path, store):
    """As Keras 3, class_weight weighs the training rows only: the rows validation_split holds
    out are evaluated as evaluate() evaluates them (they were class-weighted)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), np.arange(20) % 3
    if store:
        np.save(tmp_path / "X.npy", X)
        X = np.load(tmp_path / "X.npy", mmap_mode="r")
    model = bp.Sequential([bp.layers.Dense(3, "softmax", input_dim=3)], seed=0, dtype="float64")
    model.compile("sparse_categorical_crossentropy", bp.optimizers.SGD(1e-300), ["accuracy"],
                  weighted_metrics=["accuracy"])  # fmt: skip
    history = model.fit(X, y, epochs=1, batch_size=5, shuffle=False, verbose=0,
                        class_weight={0: 0.1, 1: 1.0, 2: 5.0}, validation_split=0.5)  # fmt: skip
    expected = model.evaluate(np.asarray(X)[10:], y[10:])
    assert history.history["val_loss"][0] == pytest.approx(expected["loss"], rel=1e-12)
    assert history.history["val_weighted_accuracy"][0] == pytest.approx(
        expected["accuracy"], rel=1e-12
    )
